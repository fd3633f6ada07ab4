"""Detection accuracy on simulated nights with ground truth, beside a fixed-threshold baseline.

Nights use seeds never used while tuning (default 1000..1019), mixed EMG/ACC rates, mains and
units, and go through the EDF+ writer and reader like a real file. Also counts activations in
the real tibialis EMG of ../shared/testdata (56 according to its authors).

    .venv/bin/python bench/accuracy.py [--nights 20] [--hours 8] [--seed0 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.analyze import analyze_recording  # noqa: E402
from detector.config import DetectorConfig  # noqa: E402
from detector.events import match_intervals  # noqa: E402
from detector.frontend import EmgFrontEnd  # noqa: E402
from ingest.edf import read_edf_recording  # noqa: E402
from ingest.simulate import NightOptions, plan_night, write_night  # noqa: E402

LM_IGNORE = ("voluntary", "cramp", "bed_exit", "artifact:lead_off")
FS_EMG = (250.0, 500.0, 512.0, 1000.0, 2000.0)
FS_ACC = (25.0, 50.0, 100.0)
MAINS = (50.0, 60.0, 0.0)
EMG_UNITS = ("uV", "mV")
ACC_UNITS = ("g", "mg", "m/s2")


def night_options(seed: int, hours: float) -> NightOptions:
    k = seed - 1000
    return NightOptions(hours=hours, seed=seed, fs_emg=FS_EMG[k % 5], fs_acc=FS_ACC[k % 3],
                        mains_hz=MAINS[k % 3 if k % 4 else 0], emg_unit=EMG_UNITS[k % 2],
                        acc_unit=ACC_UNITS[(k // 2) % 3])


def truth_plm_index(plan) -> float:
    """PLMS per hour of true sleep: periodic movements of the truth (both legs once) in sleep."""
    sleep = [(a, b) for a, b, s in plan.sleep if s == "sleep"]
    onset, end = sleep[0][0], sleep[-1][1]
    tst = sum(min(b, end) - max(a, onset) for a, b in sleep if b > onset and a < end)
    onsets = sorted(e.start_s for e in plan.truth if e.kind == "limb_movement" and e.subtype == "plm")
    combined = [t for i, t in enumerate(onsets) if i == 0 or t - onsets[i - 1] > 0.5]
    n = sum(1 for t in combined if any(a <= t < b for a, b in sleep))
    return n / (tst / 3600.0)


def fixed_threshold_baseline(rec, truth: list[dict]) -> dict:
    """A plain detector with fixed µV thresholds on the same envelope: what adapting buys."""
    cfg = DetectorConfig()
    det_lm, det_cramp = [], []
    for i, c in enumerate(rec.channels):
        if c.kind != "emg":
            continue
        fe = EmgFrontEnd(c.fs, cfg)
        fr = fe.update(rec.read(i, 0, c.n_samples))
        mav = np.concatenate([fr.mav, fe.finish().mav])
        env = np.convolve(mav, np.ones(5) / 5, mode="same")
        on = env > 10.0  # µV: a typical LM threshold for a 2 µV resting tibialis
        edges = np.flatnonzero(np.diff(np.r_[0, on.astype(int), 0]))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            t0, t1 = a * 0.05, b * 0.05
            if 0.5 <= t1 - t0 <= 10:
                det_lm.append((t0, t1, c.side))
            elif t1 - t0 >= 5:
                det_cramp.append((t0, t1, c.side))
    ref = lambda k: [(t["start_s"], t["end_s"], t["side"]) for t in truth if t["kind"] == k]  # noqa: E731
    ign = [(t["start_s"], t["end_s"], t["side"]) for t in truth
           if t["kind"] in LM_IGNORE or f"{t['kind']}:{t['subtype']}" in LM_IGNORE]
    return {"cramp": match_intervals(det_cramp, ref("cramp"), kind="cramp").as_dict(),
            "limb_movement": match_intervals(det_lm, [r for r in ref("limb_movement")],
                                             kind="limb_movement", ignore=ign).as_dict()}


def one_night(args: tuple[int, float, str]) -> dict:
    seed, hours, tmp = args
    opts = night_options(seed, hours)
    plan = plan_night(opts)
    path = Path(tmp) / f"night-{seed}.edf"
    write_night(plan, path)
    rec = read_edf_recording(path)
    t0 = time.perf_counter()
    a = analyze_recording(rec, DetectorConfig())
    elapsed = time.perf_counter() - t0
    truth = [e.as_dict() for e in plan.truth]
    res = {
        "seed": seed, "fs_emg": opts.fs_emg, "fs_acc": opts.fs_acc, "mains": opts.mains_hz,
        "units": f"{opts.emg_unit}/{opts.acc_unit}", "analyse_s": elapsed,
        "cramp": a.compare(truth, "cramp").as_dict(),
        "cramp_onset_errors": a.compare(truth, "cramp").onset_errors_s,
        "awakening": a.compare(truth, "awakening", sided=False).as_dict(),
        "limb_movement": a.compare(truth, "limb_movement", subtypes=("lm",),
                                   ignore_kinds=LM_IGNORE).as_dict(),
        "plm_series": a.compare(truth, "plm_series", sided=False, subtypes=("sleep",)).as_dict(),
        "rollover": a.compare(truth, "rollover", sided=False).as_dict(),
        "bed_exit": a.compare(truth, "bed_exit", sided=False).as_dict(),
        "plmi_truth": truth_plm_index(plan), "plmi": a.summary["plms_index_per_h"] or 0.0,
        "mains_found": sorted({v.get("mains_hz") for v in a.summary["signal_quality"].values()
                               if v["kind"] == "emg"}),
        "baseline": fixed_threshold_baseline(rec, truth),
    }
    path.unlink()
    return res


def pooled(rows: list[dict], kind: str, key=lambda r, k: r[k]) -> dict:
    tp = sum(key(r, kind)["tp"] for r in rows)
    fp = sum(key(r, kind)["fp"] for r in rows)
    fn = sum(key(r, kind)["fn"] for r in rows)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "f1": f1,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}


def real_tibialis() -> dict:
    import scipy.io

    from ingest.recording import array_recording
    path = ROOT / ".." / "shared" / "testdata" / "emg" / "emggo-tibialis-ballistic" / "Sample_Data.mat"
    m = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    x = np.asarray(m["EMG"].channelData, float)
    rec = array_recording("emggo", dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                          {"EMG L-TibAnt": (x, float(m["EMG"].fs))})
    a = analyze_recording(rec, DetectorConfig())
    lms = a.of_kind("limb_movement")
    return {"activations_found": len(lms), "activations_by_authors": 56,
            "of_which_longer_than_10s": sum(1 for e in lms if e.subtype == "long"),
            "cramps_found": len(a.of_kind("cramp"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=20)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "accuracy.json")
    args = ap.parse_args()
    seeds = list(range(args.seed0, args.seed0 + args.nights))
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Pool(args.jobs) as pool:
        for r in pool.imap(one_night, [(s, args.hours, tmp) for s in seeds]):
            rows.append(r)
            print(f"  night {r['seed']} ({r['fs_emg']:g}/{r['fs_acc']:g} Hz, mains {r['mains']:g}, "
                  f"{r['units']}): cramps {r['cramp']['tp']}/{r['cramp']['fp']}/{r['cramp']['fn']}  "
                  f"awakenings {r['awakening']['tp']}/{r['awakening']['fp']}/{r['awakening']['fn']}  "
                  f"LM F1 {r['limb_movement']['f1']:.3f}  PLMI {r['plmi']:.1f} vs {r['plmi_truth']:.1f}",
                  flush=True)
    errors = [abs(e) for r in rows for e in r["cramp_onset_errors"]]
    plmi_err = [r["plmi"] - r["plmi_truth"] for r in rows]
    summary = {
        "nights": len(rows), "hours": args.hours, "seeds": [seeds[0], seeds[-1]],
        "cramp": pooled(rows, "cramp"),
        "cramp_median_onset_error_s": float(np.median(errors)) if errors else None,
        "awakening": pooled(rows, "awakening"),
        "limb_movement": pooled(rows, "limb_movement"),
        "plm_series": pooled(rows, "plm_series"),
        "rollover": pooled(rows, "rollover"),
        "bed_exit": pooled(rows, "bed_exit"),
        "plmi_abs_error_max": float(np.max(np.abs(plmi_err))),
        "plmi_abs_error_median": float(np.median(np.abs(plmi_err))),
        "plmi_within_5_per_h": sum(abs(e) <= 5 for e in plmi_err),
        "mains_detected_correctly": sum(r["mains_found"] == [r["mains"] or None] or
                                        (r["mains"] == 0 and r["mains_found"] in ([0.0], [None]))
                                        for r in rows),
        "baseline_fixed_threshold": {
            "cramp": pooled(rows, "cramp", key=lambda r, k: r["baseline"][k]),
            "limb_movement": pooled(rows, "limb_movement", key=lambda r, k: r["baseline"][k]),
        },
        "median_analyse_s_per_night": float(np.median([r["analyse_s"] for r in rows])),
        "real_tibialis_emg": real_tibialis(),
        "wall_s": time.time() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "nights": rows}, indent=1, default=float))
    s = summary
    print()
    print(f"{len(rows)} simulated {args.hours:g}-h nights, seeds {seeds[0]}-{seeds[-1]} "
          f"(never used while tuning)")
    print(f"{'':22}{'nightcramp':>28}{'fixed-threshold baseline':>28}")
    for kind in ("cramp", "limb_movement"):
        m, b = s[kind], s["baseline_fixed_threshold"][kind]
        print(f"  {kind + ' F1':<20}{m['f1']:>10.3f} (tp {m['tp']} fp {m['fp']} fn {m['fn']})"
              f"{b['f1']:>10.3f} (tp {b['tp']} fp {b['fp']} fn {b['fn']})")
    for kind in ("awakening", "plm_series", "rollover", "bed_exit"):
        m = s[kind]
        print(f"  {kind + ' F1':<20}{m['f1']:>10.3f} (tp {m['tp']} fp {m['fp']} fn {m['fn']})")
    print(f"  cramp median onset error   {s['cramp_median_onset_error_s']:.2f} s")
    print(f"  PLM index |error|          median {s['plmi_abs_error_median']:.2f}/h, max "
          f"{s['plmi_abs_error_max']:.2f}/h; within ±5/h on {s['plmi_within_5_per_h']}/{len(rows)} nights")
    print(f"  mains detected correctly   {s['mains_detected_correctly']}/{len(rows)} nights")
    t = s["real_tibialis_emg"]
    print(f"  real tibialis EMG          {t['activations_found']} activations found "
          f"({t['of_which_longer_than_10s']} longer than 10 s), authors count {t['activations_by_authors']}; "
          f"cramps {t['cramps_found']}")
    print(f"written {args.out} in {s['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
