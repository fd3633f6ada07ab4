"""Write a simulated night as EDF+ (signals + truth annotations) and a truth JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import edfio
import numpy as np

from ingest.simulate.plan import NightPlan
from ingest.simulate.render import acc_labels, emg_labels, render

_EMG_RANGE_UV = 3000.0
_ACC_RANGE_G = 8.0
_UNIT_FROM_INTERNAL = {"uV": 1.0, "mV": 1e-3, "V": 1e-6, "g": 1.0, "mg": 1e3,
                       "m/s2": 9.80665, "m/s^2": 9.80665}


def truth_path(edf_path: str | Path) -> Path:
    p = Path(edf_path)
    return p.with_name(p.stem + ".truth.json")


def truth_json(plan: NightPlan) -> dict:
    """The truth as stored beside the EDF file (times in seconds from the recording start)."""
    o = plan.options
    return {
        "schema": "nightcramp.truth/1",
        "seed": o.seed, "hours": o.hours, "fs_emg": o.fs_emg, "fs_acc": o.fs_acc,
        "mains_hz": o.mains_hz, "emg_unit": o.emg_unit, "acc_unit": o.acc_unit,
        "start": o.start.isoformat(), "duration_s": plan.duration_s,
        "floors_uV": plan.floors,
        "sleep": [{"start_s": round(a, 3), "end_s": round(b, 3), "state": s}
                  for a, b, s in plan.sleep],
        "events": [e.as_dict() for e in plan.truth],
    }


def write_night(plan: NightPlan, path: str | Path, *, progress=None) -> Path:
    """Write ``plan`` to an EDF+ file at ``path`` and its truth beside it; returns the truth path.

    ``progress`` is called with the number of channels done, if given.
    """
    o = plan.options
    path = Path(path)
    signals = []
    for i, label in enumerate([*emg_labels(plan), *acc_labels()]):
        is_emg = label.startswith("EMG")
        fs = o.fs_emg if is_emg else o.fs_acc
        n = round(plan.duration_s * fs)
        unit = o.emg_unit if is_emg else o.acc_unit
        factor = _UNIT_FROM_INTERNAL[unit]
        rng = (_EMG_RANGE_UV if is_emg else _ACC_RANGE_G) * factor
        data = render(plan, label, 0, n)
        digital = np.round(np.clip(data * (factor / rng), -1, 1) * 32767).astype(np.int16)
        del data
        signals.append(edfio.EdfSignal.from_digital(
            digital, fs, label=label, physical_dimension=unit,
            physical_range=(-rng, rng), digital_range=(-32767, 32767),
            transducer_type="surface EMG" if is_emg else "3-axis accelerometer"))
        if progress:
            progress(i + 1)
    annotations = [edfio.EdfAnnotation(e.start_s, e.end_s - e.start_s, _annotation_text(e))
                   for e in plan.truth]
    edf = edfio.Edf(signals, starttime=o.start.time().replace(tzinfo=None),
                    recording=edfio.Recording(startdate=o.start.date()),
                    annotations=annotations, data_record_duration=1.0)
    edf.write(path)
    tp = truth_path(path)
    tp.write_text(json.dumps(truth_json(plan), indent=1))
    return tp


def _annotation_text(e) -> str:
    side = f" {e.side}" if e.side else ""
    sub = f" {e.subtype}" if e.subtype else ""
    return f"truth:{e.kind}{side}{sub}"
