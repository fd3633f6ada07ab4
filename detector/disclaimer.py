"""The words that go with every piece of advice, wherever it is shown (analysis JSON, morning
summary, dashboard, PDF). A module of its own so that the analysis can carry it without loading
the advice rules."""

DISCLAIMER = ("nightcramp is not a medical device. This is general information with its sources, "
              "not a diagnosis or medical advice. If you are worried, or something is new or severe, "
              "talk to a clinician.")
