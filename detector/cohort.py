"""Many recordings at once: a cohort analysed on a process pool or a Dask cluster.

Each recording's analysis is written as ``nights/<name>.json`` under the output directory, by
the worker that analysed it, atomically (a temporary file renamed into place): a night analysed
twice (a Dask worker died after writing, its task ran again elsewhere) ends as one file with the
same content, and a run stopped half-way resumes where it stopped (a result whose recording has
not changed since is kept). The cohort table (``cohort.csv``, one row per night) and the list of
failures (``failures.csv``) are rebuilt from those files at the end of every run.

Dask workers read the recordings and write the results themselves: on a cluster, the input and
output directories must be on a filesystem every worker sees (docs/scaling.md).
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import hashlib
import json
import os
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

RECORDING_SUFFIXES = (".edf", ".bdf", ".rec", ".csv", ".txt")
# Columns of the cohort table after the file and night: the summary's numbers a study compares.
TABLE_SUMMARY = ("time_in_bed_s", "total_sleep_time_s", "sleep_efficiency", "waso_s", "awakenings",
                 "awakenings_after_cramp", "cramps", "cramps_left", "cramps_right", "cramp_total_s",
                 "cramp_longest_s", "sustained_activity", "limb_movements", "plms", "plms_index_per_h",
                 "plm_series", "rollovers", "bed_exits", "artifacts", "signal_lost_s")


class CohortError(ValueError):
    """A cohort that cannot be run as asked (no recordings, an output path that is a file, …)."""


@dataclass(frozen=True)
class Outcome:
    """What became of one recording: ``status`` analysed, kept (an up-to-date result was there)
    or failed (``reason``: one line)."""

    recording: str
    result: str  # the night's JSON file
    status: str
    reason: str = ""


def find_recordings(spec: str) -> list[Path]:
    """The recordings a DIR (searched recursively) or a glob names, sorted; CohortError when
    there are none."""
    p = Path(spec)
    if p.is_dir():
        found = [f for f in p.rglob("*") if f.is_file() and f.suffix.casefold() in RECORDING_SUFFIXES]
    elif p.is_file():
        found = [p]
    else:
        found = [Path(f) for f in glob.glob(spec, recursive=True) if Path(f).is_file()]
        found = [f for f in found if f.suffix.casefold() in RECORDING_SUFFIXES]
    if not found:
        raise CohortError(f"{spec}: no recordings there (looked for {', '.join(RECORDING_SUFFIXES)})")
    return sorted(found)


def result_name(path: Path, root: Path) -> str:
    """A recording's result file name: its path under ``root`` made flat and readable, plus a
    short hash of that path (two 'night1.edf' in different folders stay apart)."""
    rel = path.resolve().relative_to(root.resolve()) if path.resolve().is_relative_to(root.resolve()) \
        else Path(path.name)
    flat = "_".join(rel.with_suffix("").parts)[:120]
    h = hashlib.sha256(str(rel).encode()).hexdigest()[:8]
    return f"{flat}-{h}.json"


def _fingerprint(path: Path) -> dict:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def analyse_one(recording: str, result: str, config_path: str | None = None,
                aliases: dict[str, str] | None = None, force: bool = False) -> Outcome:
    """Analyse one recording and write its result JSON atomically (runs in a worker process).

    Never raises for a bad recording: the failure is written next to the result
    (``<result>.failed``, one line) and returned, so one broken file does not stop a cohort."""
    from detector.advice.rules import with_advice
    from detector.analyze import analyze_recording
    from detector.engine.config import load_config
    from ingest.recordings.open import open_recording
    from ingest.recordings.recording import RecordingError

    src, out = Path(recording), Path(result)
    failed = out.with_name(out.name + ".failed")
    try:
        fp = _fingerprint(src)
        if not force and out.exists():
            try:
                old = json.loads(out.read_text())
                if old.get("source", {}).get("fingerprint") == fp:
                    failed.unlink(missing_ok=True)
                    return Outcome(recording, result, "kept")
            except (OSError, ValueError):
                pass  # unreadable: analysed again
        cfg = load_config(Path(config_path)) if config_path else load_config()
        analysis = with_advice(analyze_recording(open_recording(src, aliases=aliases), cfg), rules=_rules())
        obj = analysis.to_json()
        obj["source"] = {"path": str(src), "fingerprint": fp}
        _write_atomic(out, json.dumps(obj, allow_nan=False))
        failed.unlink(missing_ok=True)
        return Outcome(recording, result, "analysed")
    except (RecordingError, ValueError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
    except Exception as exc:  # a bug shows as its type and place, and the cohort goes on
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
    try:
        _write_atomic(failed, reason + "\n")
    except OSError:
        pass  # the outcome still carries the reason
    return Outcome(recording, result, "failed", reason)


_RULES: list = []


def _rules():
    """The advice rules, loaded once per worker process (building them takes ~0.6 s); None
    when they do not load (with_advice then says why in the night's notes)."""
    from detector.advice.rules import AdviceError, default_rules

    if not _RULES:
        try:
            _RULES.append(default_rules())
        except AdviceError:
            _RULES.append(None)
    return _RULES[0]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plan(spec: str, out_dir: Path) -> list[tuple[str, str]]:
    """(recording, result file) for every recording of ``spec``; creates ``out_dir/nights``."""
    recs = find_recordings(spec)
    root = Path(spec) if Path(spec).is_dir() else Path(os.path.commonpath([r.parent.resolve() for r in recs]))
    if out_dir.exists() and not out_dir.is_dir():
        raise CohortError(f"{out_dir}: exists and is not a directory")
    (out_dir / "nights").mkdir(parents=True, exist_ok=True)
    return [(str(r), str(out_dir / "nights" / result_name(r, root))) for r in recs]


def run_local(jobs: list[tuple[str, str]], *, processes: int, config_path: str | None = None,
              aliases: dict[str, str] | None = None, force: bool = False,
              done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Analyse on a pool of ``processes`` local processes (1: in this process)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    out = []
    if processes <= 1:
        for rec, res in jobs:
            o = analyse_one(rec, res, config_path, aliases, force)
            out.append(o)
            if done:
                done(o)
        return out
    import multiprocessing

    # forkserver: workers do not inherit this process's threads (a progress bar's, a pool's)
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        futs = [pool.submit(analyse_one, rec, res, config_path, aliases, force) for rec, res in jobs]
        for f in as_completed(futs):
            o = f.result()
            out.append(o)
            if done:
                done(o)
    return out


def run_dask(jobs: list[tuple[str, str]], address, *, config_path: str | None = None,
             aliases: dict[str, str] | None = None, force: bool = False,
             done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Analyse on a Dask distributed cluster (``address`` of its scheduler, or a Client or
    cluster object). A worker that dies takes its running tasks with it; the scheduler runs
    them again on another worker, and the atomic, path-keyed result files make that harmless."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise CohortError("--dask needs Dask distributed: pip install 'nightcramp[scale]'") from None

    client = address if isinstance(address, Client) else Client(address)
    try:
        futs = [client.submit(analyse_one, rec, res, config_path, aliases, force, key=f"nightcramp-{res}",
                              pure=False, retries=2) for rec, res in jobs]
        out = []
        for f in as_completed(futs):
            try:
                o = f.result()
            except Exception as exc:  # the task itself was lost (its workers kept dying)
                rec, res = jobs[futs.index(f)]
                o = Outcome(rec, res, "failed", f"lost on the cluster: {' '.join(str(exc).split())}")
            out.append(o)
            if done:
                done(o)
        return out
    finally:
        if client is not address:
            client.close()


def write_table(out_dir: Path, outcomes: Iterable[Outcome]) -> tuple[Path, Path]:
    """``cohort.csv`` (one row per analysed night, from the result files) and ``failures.csv``
    (recording, reason) under ``out_dir``, both rewritten whole."""
    from detector.engine.summary import night_key

    rows, failures = [], []
    for o in sorted(outcomes, key=lambda o: o.recording):
        if o.status == "failed":
            failures.append({"recording": o.recording, "reason": o.reason})
            continue
        obj = json.loads(Path(o.result).read_text())
        s, rec = obj["summary"], obj["recording"]
        night = night_key(dt.datetime.fromisoformat(rec["start"])) if rec.get("start") else None
        rows.append({"recording": o.recording, "result": Path(o.result).name, "night": night,
                     "start": rec.get("start"), "duration_s": rec.get("duration_s"),
                     **{k: s.get(k) for k in TABLE_SUMMARY}})
    # Temporary files of writes cut short (a worker killed while writing; its night was written
    # again elsewhere): every task has ended, so none of them is still being written.
    for tmp in (out_dir / "nights").glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    table, fails = out_dir / "cohort.csv", out_dir / "failures.csv"
    cols = ["recording", "result", "night", "start", "duration_s", *TABLE_SUMMARY]
    _write_csv(table, cols, rows)
    _write_csv(fails, ["recording", "reason"], failures)
    return table, fails


def _write_csv(path: Path, cols: list[str], rows: list[dict]) -> None:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, cols, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    _write_atomic(path, buf.getvalue())
