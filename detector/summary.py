"""The nightly summary: sleep figures, counts and durations, PLM index, signal quality."""

from __future__ import annotations

import datetime as dt

import numpy as np

from detector.channel import LOST


def night_key(start: dt.datetime) -> str:
    """A night's key: the date the evening started (recordings starting before noon belong to
    the evening before), ISO format."""
    return (start - dt.timedelta(hours=12)).date().isoformat()


def summarize(engine, rec, events) -> dict:
    cfg = engine.cfg
    sl = engine.sleep
    epoch = cfg.sleep.epoch_s
    runs = sl.bouts()
    wake = sl.hypnogram().astype(bool)
    tib = rec.duration_s
    onset = sl.onset_epoch
    sleep_runs = [(a, b) for a, b, v in runs if not v]
    if onset is not None and sleep_runs:
        end_epoch = max(b for a, b in sleep_runs)
        period = wake[onset:end_epoch]
        # The last epoch may be cut short by the end of the recording: count what was recorded.
        length = np.clip(tib - np.arange(onset, end_epoch) * epoch, 0.0, epoch)
        tst = float(np.sum(length[~period]))
        waso = float(np.sum(length[period]))
        onset_s, end_s = onset * epoch, min(end_epoch * epoch, tib)
    else:
        tst = waso = 0.0
        onset_s = end_s = None
    cramps = [e for e in events if e.kind == "cramp"]
    awak = [e for e in events if e.kind == "awakening"]
    lms = [e for e in events if e.kind == "limb_movement" and e.subtype == "lm"]
    series = [e for e in events if e.kind == "plm_series"]
    plms = 0
    for s in engine.plm.series:
        if not s.in_sleep:
            continue
        for t in s.onsets:
            k = int(t // epoch)
            if onset is not None and onset <= k < len(wake) and not wake[k] and (end_s is None or t < end_s):
                plms += 1
    tst_h = tst / 3600.0
    durations = [c.duration_s for c in cramps]
    quality = {}
    for i in engine.emg:
        st = engine.emg_stage[i]
        bad = st.bad.view
        b = st.baseline.view
        quality[engine.channels[i].label] = {
            "kind": "emg",
            "baseline_uV": round(float(np.nanmedian(b)), 3) if b.size and np.isfinite(b).any() else None,
            "artifact_pct": round(100 * float(np.mean((bad & ~np.uint8(LOST)) > 0)), 2) if bad.size else 0.0,
            "lost_pct": round(100 * float(np.mean((bad & LOST) > 0)), 2) if bad.size else 0.0,
            "mains_hz": engine.emg_fe[i].mains_hz,
        }
    for side, leg in engine.legs.items():
        lost = leg.stage.lost.view
        quality[f"ACC {side}"] = {"kind": "acc",
                                  "lost_pct": round(100 * float(np.mean(lost)), 2) if lost.size else 0.0,
                                  "moving_pct": round(100 * float(np.mean(leg.stage.moving.view)), 2)
                                  if leg.stage.moving.n else 0.0}
    return {
        "time_in_bed_s": round(tib, 1),
        "sleep_onset_s": onset_s,
        "sleep_onset_latency_s": onset_s,
        "final_wake_s": end_s,
        "total_sleep_time_s": tst,
        "waso_s": waso,
        "sleep_efficiency": round(tst / tib, 4) if tib else None,
        "awakenings": len(awak),
        "awakenings_after_cramp": sum(1 for a in awak if a.subtype == "after_cramp"),
        "awakening_definition": sl.definition(),
        "cramps": len(cramps),
        "cramps_left": sum(1 for c in cramps if c.side == "left"),
        "cramps_right": sum(1 for c in cramps if c.side == "right"),
        "cramp_total_s": round(float(sum(durations)), 1),
        "cramp_longest_s": round(float(max(durations)), 1) if durations else 0.0,
        "cramps_over_red_flag": sum(1 for d in durations if d > cfg.cramp.red_flag_s),
        "red_flag_s": cfg.cramp.red_flag_s,
        "cramp_definition": (f"sustained calf/foot EMG at >= {cfg.cramp.on_ratio:g}x the wearer's resting "
                             f"level for >= {cfg.cramp.min_duration_s:g} s whose evidence (duration, level, "
                             "plateau, one-sidedness, movement before, at and after the onset, twitches) "
                             f"gives a cramp probability >= {cfg.cramp_model.threshold:g}"),
        "sustained_activity": sum(1 for e in events if e.kind == "sustained_activity"),
        "limb_movements": len(lms),
        "plm_series": sum(1 for e in series if e.subtype == "sleep"),
        "plm_series_in_wake": sum(1 for e in series if e.subtype == "wake"),
        "plm_rules": cfg.plm.rules,
        "plms": plms,
        "plms_index_per_h": round(plms / tst_h, 2) if tst_h > 0 else None,
        "rollovers": sum(1 for e in events if e.kind == "rollover"),
        "bed_exits": sum(1 for e in events if e.kind == "bed_exit"),
        "artifacts": sum(1 for e in events if e.kind == "artifact"),
        "signal_lost_s": round(sum(e.duration_s for e in events if e.kind == "signal_lost"), 1),
        "signal_quality": quality,
    }
