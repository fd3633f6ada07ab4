"""Detection accuracy on simulated nights with ground truth, beside a fixed-threshold baseline.

Nights use seeds never used while tuning (default 1000..1019), mixed EMG/ACC rates, mains and
units, and go through the EDF+ writer and reader like a real file. Also counts activations in
the real tibialis EMG of ../shared/testdata (56 according to its authors).

    .venv/bin/python bench/accuracy.py [--nights 20] [--hours 8] [--seed0 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
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
from detector.engine.config import DetectorConfig  # noqa: E402
from detector.engine.events import match_intervals  # noqa: E402
from detector.engine.frontend import EmgFrontEnd  # noqa: E402
from ingest.recordings.edf import read_edf_recording  # noqa: E402
from ingest.simulate import NightOptions, plan_night, write_night  # noqa: E402

LM_IGNORE = ("voluntary", "cramp", "bed_exit", "artifact:lead_off")
FS_EMG = (250.0, 500.0, 512.0, 1000.0, 2000.0)
FS_ACC = (25.0, 50.0, 100.0)
MAINS = (50.0, 60.0, 0.0)
EMG_UNITS = ("uV", "mV")
ACC_UNITS = ("g", "mg", "m/s2")


EMG_DIR = ROOT.parent / "shared" / "testdata" / "emg"


def night_options(seed: int, hours: float, cramps_per_night: float = 2.0,
                  awake_fraction: float | None = None) -> NightOptions:
    """Rates, mains, units and the contraction carrier (Gaussian or real EMG) vary per night;
    ``awake_fraction`` overrides the simulator's share of cramps beginning in wake."""
    k = seed - 1000
    real = (k // 5) % 2 == 1 and EMG_DIR.is_dir()
    extra = {} if awake_fraction is None else {"cramp_awake_fraction": awake_fraction}
    return NightOptions(**extra, hours=hours, seed=seed, fs_emg=FS_EMG[k % 5], fs_acc=FS_ACC[k % 3],
                        mains_hz=MAINS[k % 3 if k % 4 else 0], emg_unit=EMG_UNITS[k % 2],
                        acc_unit=ACC_UNITS[(k // 2) % 3], cramps_per_night=cramps_per_night,
                        carrier="real" if real else "gaussian", carrier_dir=str(EMG_DIR) if real else "")


# Knobs of the simulated behaviour around a cramp (ingest.simulate.CrampBehaviour) and how the
# robustness matrix bins them.
def _bin_delay(v: float) -> str:
    return "0-30 s" if v < 30 else "30-60 s" if v < 60 else "60-90 s"


def _bin_size(v: float) -> str:
    return "2-3x" if v < 3 else "3-6x" if v < 6 else "6-20x" if v < 20 else "20-100x"


def _bin_duration(v: float) -> str:
    return "5-10 s" if v < 10 else "10-30 s" if v < 30 else "30-120 s" if v < 120 else "2-10 min"


KNOBS = {
    "action": lambda a: a["action"],
    "wake_delay": lambda a: _bin_delay(a["wake_delay_s"]),
    "awake_at_onset": lambda a: str(a["awake_at_onset"]),
    "twitches": lambda a: str(a["twitches"]),
    "jerk": lambda a: str(a["jerk"]),
    "size": lambda a: _bin_size(a["size_ratio"]),
    "duration": lambda a: _bin_duration(a["duration_s"]),
    "residual": lambda a: str(a.get("residual", True)),
    "spectral_mix": lambda a: "0-0.33" if a.get("spectral_mix", 1) < 0.33 else
    "0.33-0.66" if a.get("spectral_mix", 1) < 0.66 else "0.66-1",
}
NIGHT_KNOBS = ("fs_emg", "fs_acc", "mains", "units", "carrier")


def _overlaps_truth_cramp(e, truth: list[dict]) -> bool:
    return any(t["kind"] == "cramp" and t["side"] == e.side and t["start_s"] < e.end_s
               and t["end_s"] > e.start_s for t in truth)


def cramp_outcomes(a, truth: list[dict]) -> tuple[list[dict], int, list[tuple[float, bool]]]:
    """Per truth cramp: detected as a cramp, and covered by any event on its leg; how many
    cramp detections overlap no truth cramp; and (cramp probability, is a cramp) of every
    sustained interval reported (for the reliability table)."""
    found = a.of_kind("cramp")
    out = []
    for t in (t for t in truth if t["kind"] == "cramp"):
        on_leg = [e for e in a.events
                  if e.side == t["side"] and e.start_s < t["end_s"] and e.end_s > t["start_s"]]
        det = [e for e in on_leg if e.kind == "cramp"]
        out.append({"attrs": t["attrs"], "detected": bool(det), "covered": bool(on_leg),
                    "kinds": sorted({e.kind for e in on_leg}),
                    "confidence": max((e.confidence for e in det), default=None)})
    fp = sum(1 for e in found if not _overlaps_truth_cramp(e, truth))
    probs = [(e.features["cramp_probability"], _overlaps_truth_cramp(e, truth))
             for e in found + a.of_kind("sustained_activity")]
    return out, fp, probs


def candidates(a, truth: list[dict]) -> list[dict]:
    """Every weighed sustained interval reported: its log-odds terms, whether it is a true cramp
    and that cramp's behaviour (for leave-one-behaviour-out)."""
    out = []
    for e in a.of_kind("cramp") + a.of_kind("sustained_activity"):
        t = next((t for t in truth if t["kind"] == "cramp" and t["side"] == e.side
                  and t["start_s"] < e.end_s and t["end_s"] > e.start_s), None)
        out.append({"terms": e.features["why"]["terms"], "cramp": t is not None,
                    "attrs": t["attrs"] if t else None,
                    "features": {k: v for k, v in e.features.items() if isinstance(v, int | float | bool)}})
    return out


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


def one_night(args: tuple[int, float, str, float, float | None]) -> dict:
    seed, hours, tmp, cramps, awake = args
    opts = night_options(seed, hours, cramps, awake)
    plan = plan_night(opts)
    path = Path(tmp) / f"night-{seed}.edf"
    write_night(plan, path)
    rec = read_edf_recording(path)
    t0 = time.perf_counter()
    a = analyze_recording(rec, DetectorConfig())
    elapsed = time.perf_counter() - t0
    truth = [e.as_dict() for e in plan.truth]
    outcomes, cramp_fp, conf = cramp_outcomes(a, truth)
    res = {
        "cramp_outcomes": outcomes, "cramp_false": cramp_fp, "cramp_confidence": conf,
        "candidates": candidates(a, truth),
        "seed": seed, "fs_emg": opts.fs_emg, "fs_acc": opts.fs_acc, "mains": opts.mains_hz,
        "units": f"{opts.emg_unit}/{opts.acc_unit}", "carrier": opts.carrier, "analyse_s": elapsed,
        "cramp": a.compare(truth, "cramp").as_dict(),
        "cramp_onset_errors": a.compare(truth, "cramp").onset_errors_s,
        "awakening": a.compare(truth, "awakening", sided=False).as_dict(),
        "limb_movement": a.compare(truth, "limb_movement", subtypes=("lm",),
                                   ignore_kinds=LM_IGNORE).as_dict(),
        "plm_series": a.compare(truth, "plm_series", sided=False, subtypes=("sleep",)).as_dict(),
        "rollover": a.compare(truth, "rollover", sided=False).as_dict(),
        "bed_exit": a.compare(truth, "bed_exit", sided=False).as_dict(),
        "plmi_truth": truth_plm_index(plan), "plmi": a.summary.plms_index_per_h or 0.0,
        "mains_found": sorted({v.get("mains_hz") for v in a.summary.signal_quality.values()
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

    from ingest.recordings.recording import array_recording
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


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Weights (bias first) of an L2-regularised logistic regression, by Newton's method."""
    xb = np.c_[np.ones(len(x)), x]
    w = np.zeros(xb.shape[1])
    reg = l2 * np.eye(xb.shape[1])
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + reg @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def leave_one_behaviour_out(rows: list[dict]) -> list[dict]:
    """For each value of each behaviour knob: refit the weight of every evidence term with the
    cramps showing that behaviour left out (all other intervals kept), then score those cramps.
    Shows whether the evidence holds on behaviour it was not fitted on; the hand-set weights'
    recall on the same cramps is printed beside it."""
    cands = [c for r in rows for c in r["candidates"]]
    if not cands or not any(c["cramp"] for c in cands):
        return []
    names = sorted({k for c in cands for k in c["terms"]})
    x = np.array([[c["terms"].get(k, 0.0) for k in names] for c in cands])
    y = np.array([c["cramp"] for c in cands], float)
    m = DetectorConfig().cramp_model
    hand = m.bias + x.sum(axis=1) >= np.log(m.threshold / (1 - m.threshold))  # the configured decision
    out = []
    for knob, fn in KNOBS.items():
        values = sorted({fn(c["attrs"]) for c in cands if c["cramp"]})
        for v in values:
            held = np.array([c["cramp"] and fn(c["attrs"]) == v for c in cands])
            w = fit_logistic(x[~held], y[~held])
            z = w[0] + x[held] @ w[1:]
            out.append({"knob": knob, "value": v, "n": int(held.sum()),
                        "recall_fitted_without": float(np.mean(z >= 0)),
                        "recall_hand_set": float(np.mean(hand[held]))})
    return out


def robustness(rows: list[dict]) -> dict:
    """Cramp recall per value of each behaviour knob, and recall and precision per night knob."""
    outs = [o for r in rows for o in r["cramp_outcomes"]]
    matrix: dict[str, dict[str, dict]] = {}
    for knob, fn in KNOBS.items():
        cells: dict[str, list[dict]] = {}
        for o in outs:
            cells.setdefault(fn(o["attrs"]), []).append(o)
        matrix[knob] = {v: {"n": len(c), "recall": sum(o["detected"] for o in c) / len(c)}
                        for v, c in sorted(cells.items())}
    for knob in NIGHT_KNOBS:
        cells: dict[str, list[dict]] = {}
        for r in rows:
            cells.setdefault(f"{r[knob]:g}" if isinstance(r[knob], float) else str(r[knob]), []).append(r)
        matrix[knob] = {}
        for v, rs in sorted(cells.items()):
            tp = sum(o["detected"] for r in rs for o in r["cramp_outcomes"])
            n = sum(len(r["cramp_outcomes"]) for r in rs)
            fp = sum(r["cramp_false"] for r in rs)
            matrix[knob][v] = {"n": n, "recall": tp / n if n else float("nan"),
                               "precision": tp / (tp + fp) if tp + fp else float("nan")}
    vanished = [o for o in outs if not o["covered"]]
    return {"cells": matrix, "cramps": len(outs), "vanished": len(vanished),
            "vanished_attrs": [o["attrs"] for o in vanished],
            "covered_as": _count(k for o in outs if not o["detected"] for k in o["kinds"])}


def _count(items) -> dict:
    out: dict[str, int] = {}
    for k in items:
        out[k] = out.get(k, 0) + 1
    return out


def reliability(rows: list[dict], edges=(0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 0.9, 1.01)) -> list[dict]:
    """Predicted cramp probability vs observed share of true cramps, per probability bin, over
    every sustained interval reported (cramps: confidence = p; sustained activity: 1 - p)."""
    pairs = []
    for r in rows:
        for conf, true in r["cramp_confidence"]:
            pairs.append((conf, true))
    out = []
    for lo, hi in itertools.pairwise(edges):
        sel = [t for p, t in pairs if lo <= p < hi]
        if sel:
            mid = float(np.mean([p for p, _ in pairs if lo <= p < hi]))
            out.append({"bin": f"{lo:.1f}-{min(hi, 1.0):.1f}", "n": len(sel), "predicted": mid,
                        "observed": sum(sel) / len(sel)})
    return out


def print_robustness(rob: dict, rel: list[dict]) -> None:
    print(f"\n  robustness matrix: cramp recall (and precision for night-level knobs), "
          f"{rob['cramps']} cramps; {rob['vanished']} left no event on their leg")
    for knob, cells in rob["cells"].items():
        parts = []
        for v, c in cells.items():
            p = f"/P {c['precision']:.2f}" if "precision" in c else ""
            parts.append(f"{v}: R {c['recall']:.2f}{p} (n {c['n']})")
        print(f"    {knob:<15}" + "  ".join(parts))
    if rob["covered_as"]:
        print(f"  missed cramps were reported as: {rob['covered_as']}")
    print("  reliability (cramp probability of sustained intervals: predicted vs observed share of cramps)")
    for b in rel:
        print(f"    {b['bin']:>8}  n {b['n']:>4}  predicted {b['predicted']:.2f}  "
              f"observed {b['observed']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nights", type=int, default=20)
    ap.add_argument("--hours", type=float, default=8.0)
    ap.add_argument("--seed0", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cramps-per-night", type=float, default=2.0,
                    help="cramps per 8 h (more gives fuller robustness-matrix cells)")
    ap.add_argument("--awake-fraction", type=float, default=None,
                    help="share of cramps that begin while the wearer is awake in bed "
                         "(default: the simulator's, 0.25); more fills that cell of the matrix")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "accuracy.json")
    args = ap.parse_args()
    seeds = list(range(args.seed0, args.seed0 + args.nights))
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Pool(args.jobs) as pool:
        for r in pool.imap(one_night, [(s, args.hours, tmp, args.cramps_per_night, args.awake_fraction)
                                       for s in seeds]):
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
        "cramps_per_night": args.cramps_per_night, "awake_fraction": args.awake_fraction,
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
    summary["robustness"] = robustness(rows)
    summary["reliability"] = reliability(rows)
    summary["leave_one_behaviour_out"] = leave_one_behaviour_out(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "nights": rows}, indent=1, default=float))
    s = summary
    print()
    awake = "" if args.awake_fraction is None else f", {args.awake_fraction:.0%} of cramps awake at onset"
    print(f"{len(rows)} simulated {args.hours:g}-h nights, seeds {seeds[0]}-{seeds[-1]} "
          f"(never used while tuning), {args.cramps_per_night:g} cramps per 8 h{awake}")
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
    print_robustness(s["robustness"], s["reliability"])
    print("  leave-one-behaviour-out (cramps reported as cramp or sustained activity; evidence "
          "weights refitted without the behaviour, then tested on it):")
    for r in s["leave_one_behaviour_out"]:
        print(f"    {r['knob']:<15}{r['value']:<10} n {r['n']:>3}  recall fitted-without "
              f"{r['recall_fitted_without']:.2f}  hand-set {r['recall_hand_set']:.2f}")
    print(f"written {args.out} in {s['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
