"""`nightcramp scoring FILE`: read another scorer's events (a Noxturnal export) and check its PLM
series against nightcramp's rules."""

from __future__ import annotations

import argparse
import datetime as dt


def add_scoring_parser(sub) -> None:
    p = sub.add_parser("scoring", help="read a PSG scoring export (Noxturnal CSV) and check its PLM series")
    p.add_argument("file", help="the export (UTF-16 or UTF-8 CSV)")
    p.add_argument("--rules", choices=["aasm", "wasm"], default="aasm", help="periodicity rules")
    p.set_defaults(func=_scoring)


def _scoring(args: argparse.Namespace) -> int:
    from detector.engine.config import DetectorConfig, Plm
    from detector.engine.events import Event
    from detector.engine.plm import find_series
    from ingest.recordings.scoring import read_noxturnal_csv

    sc = read_noxturnal_csv(args.file)
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
