"""Virtual sensors: seeded, physiologically grounded nights with ground truth.

``plan_night`` draws what happens (the truth); ``render`` turns the plan into samples for any
channel and time block; ``write_night`` stores an EDF+ file and its truth JSON.
"""

from ingest.simulate.plan import NightOptions, NightPlan, TruthEvent, plan_night
from ingest.simulate.render import render, render_recording
from ingest.simulate.writer import write_night

__all__ = ["NightOptions", "NightPlan", "TruthEvent", "plan_night", "render",
           "render_recording", "write_night"]
