"""``nightcramp analyze`` and ``simulate``: recordings in, summaries and simulated nights out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dashboard.cli import common


def add_parsers(sub) -> None:
    """This group's commands on the ``nightcramp`` parser."""
    a = sub.add_parser("analyze", help="analyse a recording (EDF, EDF+, BDF, CSV), or a cohort of them "
                       "(a directory or glob, with --jobs or --dask)")
    a.add_argument("recording", type=Path, help="a recording; or a directory (searched recursively) or a "
                   "quoted glob of recordings: a cohort, one JSON per night and a table under --out")
    out = a.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help="print the analysis object (schema nightcramp.analysis/1)")
    out.add_argument("--csv", action="store_true", help="print the events table as CSV")
    a.add_argument("--config", type=Path,
                   help="detector configuration TOML (default detector.toml on the configuration search "
                   "path: $NIGHTCRAMP_CONFIG_DIR, ~/.config/nightcramp, the shipped defaults)")
    a.add_argument("--alias", action="append", default=[], metavar="LABEL=NAME",
                   help="map a file's label to a leg channel, e.g. 'Leg 1=EMG L-TibAnt' (repeatable)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    co = a.add_argument_group("cohorts (a directory or glob of recordings)")
    where = co.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, metavar="N",
                       help="analyse on N local processes (default: the number of CPUs)")
    where.add_argument("--dask", metavar="ADDRESS",
                       help="analyse on a Dask distributed cluster, e.g. tcp://scheduler:8786 (its workers "
                       "must see the recordings and --out at the same paths)")
    co.add_argument("--out", type=Path, help="where the cohort's results go: nights/*.json, cohort.csv, "
                    "failures.csv (default ./nightcramp-cohort)")
    co.add_argument("--force", action="store_true",
                    help="analyse every recording again (default: keep results whose recording is unchanged)")
    a.set_defaults(func=_analyze)

    s = sub.add_parser("simulate", help="write a simulated night (EDF+) and its truth (JSON)")
    s.add_argument("output", type=Path)
    s.add_argument("--hours", type=float, default=8.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--fs-emg", type=float, default=1000.0, help="EMG sampling rate, Hz")
    s.add_argument("--fs-acc", type=float, default=50.0, help="accelerometer sampling rate, Hz")
    s.add_argument("--mains", type=float, default=50.0, choices=[0.0, 50.0, 60.0],
                   help="mains hum, Hz (0: none)")
    s.add_argument("--emg-unit", default="uV", choices=["uV", "mV"])
    s.add_argument("--acc-unit", default="g", choices=["g", "mg", "m/s2"])
    s.add_argument("--cramps-per-night", type=float, default=2.0,
                   help="mean cramps in 8 hours (scaled to --hours)")
    s.set_defaults(func=_simulate)

    s.add_argument("--live", action="store_true", help="publish over MQTT as virtual sensors instead of "
                   "writing a file (output is then the truth directory)")
    s.add_argument("--speed", type=float, default=60.0, help="with --live: times real time")
    s.add_argument("--wearers", type=int, default=1, help="with --live: how many wearers (sim-1, sim-2, …)")
    s.add_argument("--frame-s", type=float, default=None,
                   help="with --live: seconds of samples per MQTT frame (default: 0.1 s like a real sensor, "
                   "longer when --speed is high: speed/100, at most 10 s)")
    s.add_argument("--services", type=Path,
                   help="services TOML (default services.toml on the configuration search path)")



def _analyze(args) -> int:
    from dashboard.report import events_csv, text_summary
    from ingest.recordings.open import open_recording

    spec = str(args.recording)
    if args.jobs is not None or args.dask or args.out or args.force or args.recording.is_dir() \
            or any(c in spec for c in "*?["):
        return _cohort(args, spec)
    cfg = common.config(args.config)
    rec = open_recording(args.recording, aliases=common.aliases(args.alias))
    analysis = run(rec, cfg, quiet=args.quiet)
    if args.json:
        json.dump(analysis.to_json(), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    elif args.csv:
        sys.stdout.write(events_csv(analysis))
    else:
        print(text_summary(analysis))
    return 0


def _cohort(args, spec: str) -> int:
    """A cohort: every recording analysed once into ``--out``, a progress bar, failures at the end."""
    import os

    from tqdm import tqdm

    from detector import cohort

    if args.json or args.csv:
        raise ValueError("--json and --csv are for one recording; a cohort writes nights/*.json and "
                         "cohort.csv under --out")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: at least 1")
    out = args.out or Path("nightcramp-cohort")
    jobs = cohort.plan(spec, out)
    aliases = common.aliases(args.alias) or None
    config_path = str(args.config.resolve()) if args.config else None
    if args.config:
        common.config(args.config)  # a broken configuration stops here, not once per recording
    where = f"Dask at {args.dask}" if args.dask else f"{args.jobs or os.cpu_count() or 1} processes"
    print(f"{len(jobs)} recordings -> {out}/ on {where}", file=sys.stderr)
    with tqdm(total=len(jobs), desc="nights", unit="night", disable=args.quiet or None, file=sys.stderr,
              leave=True) as bar:
        step = max(1, len(jobs) // 10)

        def done(o: cohort.Outcome) -> None:
            bar.update(1)
            if o.status == "failed":
                bar.set_postfix_str(f"{Path(o.recording).name} failed", refresh=False)
            if bar.disable and not args.quiet and (bar.n % step == 0 or bar.n == len(jobs)):
                # no terminal (a log file, a batch job): a line per tenth instead of a bar
                print(f"nights: {bar.n}/{len(jobs)} done", file=sys.stderr, flush=True)

        if args.dask:
            outcomes = cohort.run_dask(jobs, args.dask, config_path=config_path, aliases=aliases,
                                       force=args.force, done=done)
        else:
            outcomes = cohort.run_local(jobs, processes=args.jobs or os.cpu_count() or 1,
                                        config_path=config_path, aliases=aliases, force=args.force, done=done)
    table, fails = cohort.write_table(out, outcomes)
    counts = {k: sum(1 for o in outcomes if o.status == k) for k in ("analysed", "kept", "failed")}
    print(f"{counts['analysed']} analysed, {counts['kept']} kept from an earlier run (unchanged), "
          f"{counts['failed']} failed; table {table}")
    failed = sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.recording)
    if failed:
        print(f"failed ({fails}):")
        for o in failed:
            print(f"  {o.recording}: {o.reason}")
        return 1
    return 0


def run(rec, cfg, *, quiet: bool):
    import threading

    from tqdm import tqdm

    from detector.advice.rules import AdviceError, default_rules, with_advice
    from detector.analyze import analyze_recording

    # Loading the rules builds rule-engine's parser (pure Python, ~0.6 s); it overlaps with the
    # analysis, which spends most of its time in NumPy and SciPy with the GIL released.
    rules: list = []

    def load() -> None:
        try:
            rules.append(default_rules())
        except AdviceError:  # with_advice loads again and puts the reason in the notes
            pass

    loader = threading.Thread(target=load, name="advice-rules", daemon=True)
    loader.start()
    show = not quiet and rec.duration_s > 1800
    with tqdm(total=100, desc=f"analysing {rec.name}", unit="%", disable=not show or None,
              file=sys.stderr, leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}") as bar:
        def progress(frac: float) -> None:
            bar.update(round(100 * frac) - bar.n)
        analysis = analyze_recording(rec, cfg, progress=progress)
    loader.join()
    return with_advice(analysis, rules=rules[0] if rules else None)


def _simulate(args) -> int:
    from ingest.simulate import NightOptions, plan_night, write_night

    if args.live:
        from dashboard.cli.live import simulate_live

        return simulate_live(args)
    if not args.output.suffix.lower() == ".edf":
        raise ValueError(f"{args.output}: the simulator writes EDF+; use a .edf file name")
    if args.hours <= 0 or args.hours > 24:
        raise ValueError(f"--hours {args.hours}: must be between 0 and 24")
    opts = NightOptions(hours=args.hours, seed=args.seed, fs_emg=args.fs_emg, fs_acc=args.fs_acc,
                        mains_hz=args.mains, emg_unit=args.emg_unit, acc_unit=args.acc_unit,
                        cramps_per_night=args.cramps_per_night)
    plan = plan_night(opts)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    truth = write_night(plan, args.output, progress=lambda k: print(f"  channel {k}/8 written",
                                                                    file=sys.stderr))
    kinds: dict[str, int] = {}
    for e in plan.truth:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    print(f"wrote {args.output} ({args.hours:g} h, seed {args.seed}) and {truth}")
    print("truth: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    return 0


def compare_table(events: list[dict], truth: list[dict]) -> str:
    """How detected events (analysis JSON or store rows) compare with the simulator's truth."""
    from detector.engine.events import compare_events

    rows: list[tuple[str, dict]] = [("cramp", {}), ("awakening", {"sided": False}),
            ("limb_movement", {"subtypes": ("lm",), "ignore_kinds": ("voluntary", "cramp", "bed_exit",
                                                                      "artifact:lead_off")}),
            ("plm_series", {"sided": False, "subtypes": ("sleep",)}), ("rollover", {"sided": False}),
            ("bed_exit", {"sided": False})]
    lines = ["Compared with the simulator's truth (match = overlap, same side):",
             f"  {'kind':<14}{'truth':>6}{'found':>6}{'missed':>7}{'extra':>6}{'F1':>7}{'onset err':>11}"]
    for kind, kw in rows:
        m = compare_events(events, truth, kind, **kw).as_dict()
        err = m["median_onset_error_s"]
        f1 = m["f1"]
        lines.append(f"  {kind:<14}{m['tp'] + m['fn']:>6}{m['tp']:>6}{m['fn']:>7}{m['fp']:>6}"
                     f"{'' if f1 != f1 else f'{f1:.2f}':>7}{'' if err != err else f'{err:.1f} s':>11}")
    return "\n".join(lines)
