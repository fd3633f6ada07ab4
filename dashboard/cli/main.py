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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nightcramp", description="Sleep-related leg cramps, leg "
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
