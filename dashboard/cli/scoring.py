"""`nightcramp scoring FILE`: read another scorer's events (a Noxturnal export or EDF+ annotations),
check its PLM series against nightcramp's rules, and with ``--against`` report how far nightcramp's
analysis of the same night agrees with it (events per kind, sleep/wake epochs with Cohen's kappa)."""

from __future__ import annotations

import argparse
import datetime as dt


def add_scoring_parser(sub) -> None:
    p = sub.add_parser("scoring", help="read a PSG scoring (Noxturnal CSV, EDF+ annotations), check its "
                       "PLM series, and compare nightcramp with it (--against)")
    p.add_argument("file", help="the scoring: a Noxturnal export (UTF-16 or UTF-8 CSV) or an EDF+ "
                   "file's annotations")
    p.add_argument("--rules", choices=["aasm", "wasm"], default="aasm", help="periodicity rules")
    p.add_argument("--against", metavar="NIGHT",
                   help="the same night as nightcramp sees it: a recording (EDF/BDF/CSV, analysed now) "
                        "or the JSON of 'nightcramp analyze --json'; prints the agreement per kind and "
                        "per epoch")
    p.add_argument("--json", action="store_true", help="with --against: the agreement as one JSON object")
    p.set_defaults(func=_scoring)


def _scoring(args: argparse.Namespace) -> int:
    from detector.engine.config import DetectorConfig, Plm
    from detector.engine.events import Event
    from detector.engine.plm import find_series
    from ingest.recordings.scoring import read_scoring

    sc = read_scoring(args.file)
    if args.against:
        return _agreement(sc, args)
    kinds: dict[str, int] = {}
    for e in sc.events:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"{sc.source}: {len(sc.events)} scored events from {sc.start:%Y-%m-%d %H:%M:%S}")
    print("  " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    if sc.unmapped:
        print("  kept as 'other' (not in config/scoring.toml): "
              + ", ".join(f"{k} {n}" for k, n in sorted(sc.unmapped.items())))
    moves = [Event("limb_movement", *sc.seconds(e), None, None, 1.0, "lm")
             for e in sc.of_kind("limb_movement")]
    ours = find_series(moves, DetectorConfig(plm=Plm(rules=args.rules)))
    theirs = [sc.seconds(e) for e in sc.of_kind("plm_series")]

    def clock(s: float) -> str:
        return f"{sc.start + dt.timedelta(seconds=s):%H:%M:%S}"

    print(f"  PLM series from its {len(moves)} leg movements by {args.rules.upper()} rules: {len(ours)}")
    for s in ours:
        same = any(abs(a - s.start_s) < 1 and abs(b - s.end_s) < 1 for a, b in theirs)
        print(f"    {clock(s.start_s)}-{clock(s.end_s)}  {len(s.onsets)} movements"
              f"{'  (as scored)' if same else '  (not in the scoring)'}")
    for a, b in theirs:
        if not any(abs(a - s.start_s) < 1 and abs(b - s.end_s) < 1 for s in ours):
            print(f"    scored but not found: {clock(a)}-{clock(b)}")
    return 0


def _agreement(sc, args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from detector.agreement import agreement

    path = Path(args.against)
    if path.suffix.casefold() == ".json":
        try:
            analysis = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            print(f"nightcramp: {path}: not an analysis JSON ({exc})", file=sys.stderr)
            return 2
    else:
        from detector.analyze import analyze_recording
        from detector.engine.config import load_config
        from ingest.recordings.open import open_recording

        analysis = analyze_recording(open_recording(path), load_config()).to_json()
    try:
        ag = agreement(analysis, sc)
    except ValueError as exc:
        print(f"nightcramp: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(ag.as_dict()))
        return 0
    print(f"nightcramp against {sc.source} on {path.name}:")

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    for k in ag.kinds:
        onset = "" if k.onset_median_s is None else f", onsets {k.onset_median_s:.1f} s apart (median)"
        print(f"  {k.kind}: theirs {k.theirs}, ours {k.ours}, in both {k.matched}; recall {pct(k.recall)}, "
              f"precision {pct(k.precision)}, F1 {'-' if k.f1 is None else f'{k.f1:.2f}'}{onset}")
    e = ag.epochs
    if e is not None:
        kappa = "undefined" if e.kappa is None else f"{e.kappa:.2f}"
        print(f"  sleep/wake, {e.epochs} epochs of {e.epoch_s:g} s scored by both: "
              f"agreement {pct(e.accuracy)}, Cohen's kappa {kappa}; wake both {e.both_wake}, "
              f"only ours {e.wake_ours_only}, only theirs {e.wake_theirs_only}; "
              f"wake found {pct(e.wake_sensitivity)}")
    else:
        print("  sleep/wake: the scoring has no sleep stages (or the analysis no hypnogram); not compared")
    if ag.not_compared:
        print("  scored, not reported by nightcramp: " + ", ".join(f"{k} {n}" for k, n in
                                                                  sorted(ag.not_compared.items())))
    return 0
