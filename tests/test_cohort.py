"""Cohorts: `nightcramp analyze DIR --jobs N` and `--dask ADDRESS` analyse every night once, write
one JSON per night and a table, list failures with their reasons, and survive a Dask worker killed
mid-run."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from detector import cohort
from ingest.simulate import NightOptions, plan_night, write_night

pytestmark = pytest.mark.scale


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Eight short simulated nights in two folders (two files share a name), and one broken file."""
    root = tmp_path_factory.mktemp("cohort-in")
    for k in range(8):
        d = root / ("clinic-a" if k < 4 else "clinic-b")
        d.mkdir(exist_ok=True)
        name = f"night{k % 4}.edf"
        write_night(plan_night(NightOptions(hours=0.4, seed=700 + k, fs_emg=250.0, fs_acc=25.0,
                                            cramps_per_night=60.0)), d / name)
    (root / "clinic-b" / "broken.edf").write_bytes(b"0       not an EDF header")
    return root


def rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_cohort_on_a_process_pool_is_analysed_once_per_night(recordings, tmp_path, cli):
    out = tmp_path / "out"
    r = subprocess.run([cli, "analyze", str(recordings), "--jobs", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr  # one recording failed, and the exit status says so
    assert "8 analysed, 0 kept from an earlier run (unchanged), 1 failed" in r.stdout
    assert "broken.edf" in r.stdout.split("failed (")[1] and "EDF" in r.stdout.split("failed (")[1]
    assert "9 recordings ->" in r.stderr and "nights:" in r.stderr  # the progress bar
    table = rows(out / "cohort.csv")
    assert sorted(Path(t["recording"]).relative_to(recordings).as_posix() for t in table) == [
        f"clinic-{c}/night{k}.edf" for c in "ab" for k in range(4)]
    assert len({t["result"] for t in table}) == 8  # the two night0.edf do not overwrite each other
    fails = rows(out / "failures.csv")
    assert [Path(f["recording"]).name for f in fails] == ["broken.edf"] and fails[0]["reason"]
    # each result is what `nightcramp analyze FILE --json` gives for that file
    one = max(table, key=lambda t: int(t["cramps"]))
    mine = json.loads((out / "nights" / one["result"]).read_text())
    single = json.loads(subprocess.run([cli, "analyze", one["recording"], "--json"], capture_output=True,
                                       text=True, check=True).stdout)
    assert mine["events"] == single["events"] and mine["summary"] == single["summary"]
    assert int(one["cramps"]) == single["summary"]["cramps"] > 0
    # run again: nothing analysed twice; --force analyses all again
    again = subprocess.run([cli, "analyze", str(recordings), "--jobs", "2", "--out", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=600)
    assert "0 analysed, 8 kept from an earlier run (unchanged), 1 failed" in again.stdout
    forced = subprocess.run([cli, "analyze", str(recordings / "clinic-a" / "*.edf"), "--jobs", "1", "--out",
                             str(out), "--force", "--quiet"], capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0 and "4 analysed, 0 kept" in forced.stdout, forced.stdout + forced.stderr


def test_the_cli_says_no_to_a_cohort_it_cannot_run(recordings, tmp_path, cli):
    r = subprocess.run([cli, "analyze", str(tmp_path / "nothing-here" / "*.edf"), "--jobs", "2"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "no recordings there" in r.stderr
    r = subprocess.run([cli, "analyze", str(recordings), "--json"], capture_output=True, text=True)
    assert r.returncode != 0 and "--json and --csv are for one recording" in r.stderr
    r = subprocess.run([cli, "analyze", str(recordings), "--jobs", "0"], capture_output=True, text=True)
    assert r.returncode != 0 and "--jobs 0" in r.stderr


def test_a_dask_worker_killed_mid_run_loses_no_night(recordings, tmp_path):
    from distributed import Client, LocalCluster

    jobs = cohort.plan(str(recordings / "**" / "night*.edf"), tmp_path / "out")
    assert len(jobs) == 8
    killed: list[int] = []
    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_port=0, host="127.0.0.1") as cluster, Client(cluster) as client:
        def done(o: cohort.Outcome) -> None:
            if killed:
                return
            # a worker with a night in hand dies without a word (SIGKILL): the scheduler gives its
            # night to another worker
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        outcomes = cohort.run_dask(jobs, client, done=done)
    assert killed, "no worker was busy after the first night: nothing was killed"
    assert sorted(o.recording for o in outcomes) == sorted(r for r, _ in jobs)  # each night once
    assert {o.status for o in outcomes} == {"analysed"}, [o.reason for o in outcomes]
    table, fails = cohort.write_table(tmp_path / "out", outcomes)
    assert len(rows(table)) == 8 and rows(fails) == []
    for _, res in jobs:
        obj = json.loads(Path(res).read_text())
        assert obj["schema"] == "nightcramp.analysis/1" and obj["recording"]["duration_s"] > 0
    # no half-written result: every result parsed above, and the temporary file of a write the
    # kill cut short is cleared once the cohort's table is written
    assert not list((tmp_path / "out" / "nights").glob(".*.tmp"))
