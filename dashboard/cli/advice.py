"""``nightcramp diary`` and ``nightcramp advice``: the check-ins and the advice of a night."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from contextlib import contextmanager
from pathlib import Path

from detector.advice.diary_answers import AGE_BANDS, EXERCISE, MEDICATIONS, SWELLING

# The advice engine, the store and the diary's models are imported by the commands that use them:
# building the parser (``nightcramp --help``) stays quick.

YES_NO = {"yes": True, "y": True, "no": False, "n": False}

# question, field, kind (for prompts); the flags below mirror these
EVENING_QUESTIONS = [
    (f"Exercise today ({'/'.join(EXERCISE)})", "exercise", EXERCISE),
    ("Minutes of exercise", "exercise_min", float),
    ("Litres of fluid drunk today", "fluids_l", float),
    ("Drinks with alcohol today", "alcohol_drinks", float),
    ("Drinks with caffeine today (coffee, tea, cola)", "caffeine_drinks", float),
    ("Did you stretch your calves before bed (yes/no)", "stretched", bool),
    (f"Regular medicines, comma-separated ({', '.join(MEDICATIONS)}; or none)", "medications", list),
    ("Are you pregnant (yes/no)", "pregnant", bool),
    (f"Age band ({'/'.join(AGE_BANDS)})", "age_band", AGE_BANDS),
]
MORNING_QUESTIONS = [
    ("Did a cramp wake you (yes/no)", "cramp_woke", bool),
    ("Is a calf still sore or tight (yes/no)", "soreness", bool),
    (f"Is a calf swollen ({'/'.join(SWELLING)})", "calf_swelling", SWELLING),
    ("Is a calf warm, red or tender (yes/no)", "calf_warm_red", bool),
    ("Does a leg feel weak or thinner than before (yes/no)", "leg_weakness", bool),
    ("Cramps also by day or elsewhere in the body (yes/no)", "daytime_cramps", bool),
]


def _yes_no(v: str) -> bool:
    try:
        return YES_NO[v.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{v!r}: answer yes or no") from None


def add_parsers(sub) -> None:
    d = sub.add_parser("diary", help="the evening and morning check-in of a night (stored in InfluxDB)")
    dsub = d.add_subparsers(metavar="PART")
    ev = dsub.add_parser("evening", help="before bed: exercise, fluids, drinks, medicines")
    ev.add_argument("--exercise", choices=EXERCISE)
    ev.add_argument("--exercise-min", type=float, metavar="MIN")
    ev.add_argument("--fluids-l", type=float, metavar="LITRES")
    ev.add_argument("--alcohol", dest="alcohol_drinks", type=float, metavar="DRINKS")
    ev.add_argument("--caffeine", dest="caffeine_drinks", type=float, metavar="DRINKS")
    ev.add_argument("--stretched", type=_yes_no, metavar="yes|no")
    ev.add_argument("--medication", dest="medications", action="append", choices=list(MEDICATIONS),
                    help="a regular medicine (repeatable)")
    ev.add_argument("--no-medications", action="store_true", help="no regular medicines")
    ev.add_argument("--pregnant", type=_yes_no, metavar="yes|no")
    ev.add_argument("--age-band", choices=AGE_BANDS)
    mo = dsub.add_parser("morning", help="on waking: the night and the legs now")
    mo.add_argument("--cramp-woke", type=_yes_no, metavar="yes|no")
    mo.add_argument("--soreness", type=_yes_no, metavar="yes|no")
    mo.add_argument("--swelling", dest="calf_swelling", choices=SWELLING)
    mo.add_argument("--warm-red", dest="calf_warm_red", type=_yes_no, metavar="yes|no")
    mo.add_argument("--weakness", dest="leg_weakness", type=_yes_no, metavar="yes|no")
    mo.add_argument("--daytime-cramps", type=_yes_no, metavar="yes|no")
    show = dsub.add_parser("show", help="print the stored check-ins of a night")
    for p, part in ((ev, "evening"), (mo, "morning"), (show, "show")):
        p.add_argument("--wearer", required=True)
        p.add_argument("--night", help="night date YYYY-MM-DD (default: evening: tonight; morning and "
                                        "show: the latest recorded night)",
                       metavar="DATE")
        p.add_argument("--services", type=Path)
        p.set_defaults(func=diary_command, part=part)

    a = sub.add_parser("advice", help="the advice for a night, and why each rule fired or not")
    src = a.add_mutually_exclusive_group()
    src.add_argument("--wearer", help="a stored night of this wearer (with history and diary)")
    src.add_argument("--analysis", type=Path, help="an analysis JSON file (nightcramp analyze --json)")
    a.add_argument("--night", help="night date YYYY-MM-DD (with --wearer; default: the latest stored)")
    a.add_argument("--explain", action="store_true", help="every rule: fired or not, and the facts read")
    a.add_argument("--json", action="store_true", help="print the advice list as JSON")
    a.add_argument("--rules", type=Path,
                   help="rule file (default advice.toml on the configuration search path)")
    a.add_argument("--features", action="store_true", help="list the features conditions may use")
    a.add_argument("--services", type=Path)
    a.set_defaults(func=advice_command)


@contextmanager
def _store(path: Path | None, *, create: bool = False):
    from detector.service.settings import load_services
    from detector.store.accounts import settings_for
    from detector.store.influx import StoreError
    from detector.store.shards import open_store

    sv = load_services(path)
    store = open_store(settings_for(sv.store, "dashboard"), sv.dashboard.users_db)
    try:
        if create:  # the first check-in may come before the first night
            store.setup()
        yield store
    except StoreError as exc:
        hint = ("no nights stored there yet" if "database not found" in str(exc)
                else "is it running? 'nightcramp stack up'")
        raise OSError(f"InfluxDB at {store.s.url}: {exc} ({hint})") from None
    finally:
        store.close()


def _ask(questions) -> dict:
    print("Press Enter to skip a question.", file=sys.stderr)
    out: dict = {}
    for text, key, kind in questions:
        while True:
            raw = input(f"{text}: ").strip()
            if not raw:
                break
            try:
                if kind is bool:
                    out[key] = _yes_no(raw)
                elif kind is float:
                    out[key] = float(raw)
                elif kind is list:
                    items = [m.strip() for m in raw.split(",") if m.strip()]
                    out[key] = [] if raw.lower() == "none" else items
                elif raw in kind:
                    out[key] = raw
                else:
                    raise ValueError(f"choose one of {', '.join(kind)}")
                break
            except (ValueError, argparse.ArgumentTypeError) as exc:
                print(f"  {exc}", file=sys.stderr)
    return out


def diary_command(args) -> int:
    from dashboard.review import refresh_advice
    from detector.advice.diary import save_checkin
    from detector.advice.rules import format_advice
    from detector.engine.summary import night_key

    with _store(args.services, create=args.part != "show") as store:
        night = args.night
        if night is None and args.part != "evening":
            # The morning check-in and `show` are about the night just recorded: the latest stored.
            stored_nights = sorted(n["night"] for n in store.nights(args.wearer))
            night = stored_nights[-1] if stored_nights else None
            if night:
                print(f"night of {night} (the latest recorded for {args.wearer}; another with --night)",
                      file=sys.stderr)
        night = night or night_key(dt.datetime.now(dt.UTC))
        dt.date.fromisoformat(night)  # a clear error for a bad date
        if args.part == "show":
            stored = store.diaries(args.wearer).get(night, {})
            print(json.dumps({"wearer": args.wearer, "night": night, **stored}, indent=1))
            return 0
        questions = EVENING_QUESTIONS if args.part == "evening" else MORNING_QUESTIONS
        given = {k: getattr(args, k) for _, k, _ in questions if getattr(args, k, None) is not None}
        if args.part == "evening" and args.no_medications:
            given["medications"] = []
        if not given:
            if not sys.stdin.isatty():
                raise ValueError(f"no answers given: pass them as options "
                                 f"(nightcramp diary {args.part} --help)")
            given = _ask(questions)
        answers = save_checkin(store, args.wearer, night, args.part, given)
        print(f"{args.part} check-in stored for {args.wearer}, night of {night}: "
              + ", ".join(f"{k}={v}" for k, v in answers.items() if v is not None))
        if store.analysis(args.wearer, night) is None:
            print("The night is not recorded yet; its advice will use these answers.")
            return 0
        _, items = refresh_advice(store, args.wearer, night)
        print(f"Advice for the night of {night}, updated:")
        print(format_advice(items))
    return 0


def advice_command(args) -> int:
    from dashboard.review import refresh_advice
    from detector.advice.rules import (
        DISCLAIMER,
        FEATURES,
        default_rules,
        evaluate,
        explain,
        format_advice,
        load_rules,
        night_features,
    )
    from detector.engine.summary import night_key

    rules = load_rules(args.rules) if args.rules else default_rules()
    if args.features:
        for name, (t, nullable, meaning) in FEATURES.items():
            print(f"{name:22} {t.name.lower():8} {'may be null' if nullable else '':12} {meaning}")
        return 0
    if args.analysis:
        obj = json.loads(args.analysis.read_text())
        if obj.get("schema") != "nightcramp.analysis/1":
            raise ValueError(f"{args.analysis}: not an analysis object (schema nightcramp.analysis/1)")
        start = dt.datetime.fromisoformat(obj["recording"]["start"])
        night, who = night_key(start), args.analysis.name
        f = night_features(obj["summary"], events=obj["events"], start=start)
        store_items = None
    elif args.wearer:
        with _store(args.services) as store:
            nights = sorted(n["night"] for n in store.nights(args.wearer))
            if not nights:
                raise ValueError(f"no stored nights for wearer {args.wearer!r}")
            night = args.night or nights[-1]
            if night not in nights:
                raise ValueError(f"no stored night {night} for {args.wearer!r} "
                                 f"(latest stored: {', '.join(nights[-7:])})")
            # the stored links follow the configured rules only
            f, store_items = refresh_advice(store, args.wearer, night, rules=rules,
                                            write=not args.rules)
        who = args.wearer
    else:
        raise ValueError("say which night: --wearer W [--night DATE], or --analysis FILE.json")
    items = store_items if store_items is not None else [a.to_json() for a in evaluate(rules, f)]
    if args.json:
        out = {"night": night, "advice": items, "disclaimer": DISCLAIMER}
        if args.explain:
            out["rules"] = [{"rule": lr.rule.id, "fired": fired, "when": lr.rule.when, "facts": facts}
                            for lr, fired, facts in explain(rules, f)]
        print(json.dumps(out, indent=1))
        return 0
    print(f"Advice for {who}, night of {night}:")
    print(format_advice(items))
    if args.explain:
        print("\nEvery rule, and why:")
        for lr, fired, facts in explain(rules, f):
            mark = "FIRED " if fired else "  -   "
            shown = ", ".join(f"{k}={'unknown' if v is None else v}" for k, v in facts.items())
            print(f" {mark}{lr.rule.id} [{lr.rule.level}]\n        when {lr.rule.when}\n        with {shown}")
    return 0
