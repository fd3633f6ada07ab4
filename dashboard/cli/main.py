"""The ``nightcramp`` parser: each command group adds its commands; errors become one line."""

from __future__ import annotations

import argparse
import os
import sys

from dashboard.cli import advice, live, local, recordings, scoring, web

# Each command imports what it needs when it runs (numpy, scipy, pydantic, FastAPI …): building
# the parser stays quick, so `nightcramp --help` answers at once.


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from detector.engine.config import ConfigError
    from ingest.recordings.recording import RecordingError

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into head and the like: not an error
        sys.stderr.close()
        return 0
    except (RecordingError, ConfigError, ValueError, OSError) as exc:
        print(f"nightcramp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nightcramp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a user never sees a traceback unless asked for one
        if os.environ.get("NIGHTCRAMP_DEBUG"):
            raise
        print(f"nightcramp: internal error ({type(exc).__name__}: {exc}); rerun with "
              "NIGHTCRAMP_DEBUG=1 for details and report it", file=sys.stderr)
        return 1


class _Parser(argparse.ArgumentParser):
    """argparse that says what was probably meant: a mistyped command or option gets the
    nearest known one (``did you mean 'analyze'?``). Subcommands use the same class."""

    def error(self, message: str):
        import difflib
        import re

        hint = ""
        if m := re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message):
            choices = re.findall(r"'([^']*)'", m.group(2))
            near = difflib.get_close_matches(m.group(1), choices, n=1)
            hint = f" — did you mean {near[0]!r}?" if near else ""
        elif message.startswith("unrecognized arguments:"):
            options = sorted(_all_options(self))
            guesses = []
            for word in message.split(":", 1)[1].split():
                flag = word.split("=", 1)[0]
                near = difflib.get_close_matches(flag, options, n=1) if flag.startswith("-") else []
                if near:
                    guesses.append(near[0])
            hint = f" — did you mean {' and '.join(guesses)}?" if guesses else ""
        super().error(message + hint)


def _all_options(parser: argparse.ArgumentParser) -> set[str]:
    """Every option string of ``parser`` and of its subcommands."""
    out: set[str] = set(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _all_options(sub)
    return out


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="nightcramp", description="Sleep-related leg cramps, leg "
                                "movements and night awakenings from leg EMG and acceleration.")
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(metavar="COMMAND")
    recordings.add_parsers(sub)
    live.add_parsers(sub)
    advice.add_parsers(sub)
    web.add_parsers(sub)
    scoring.add_scoring_parser(sub)
    local.add_parsers(sub)
    return p


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked for (importlib.metadata costs ~40 ms)."""

    def __init__(self, option_strings, dest, **kw) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the installed version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"nightcramp {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nightcramp")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"
