"""Advice: the rules drawn from the source article, the features they read, the wearer's diary."""
