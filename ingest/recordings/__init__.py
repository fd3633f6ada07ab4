"""Recordings from files: EDF/EDF+/BDF, CSV, channel labels and units, another scorer's events."""
