"""The nightcramp command as a user runs it: outputs, and one-line errors instead of tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pytest

from detector.advice.rules import DISCLAIMER
from detector.engine.events import KINDS

from .conftest import EDF_DIR


def run(cli, *args, env=None):
    return subprocess.run([cli, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def sim_edf(tmp_path_factory, cli):
    out = tmp_path_factory.mktemp("sim") / "night.edf"
    r = run(cli, "simulate", out, "--hours", "1", "--seed", "7", "--fs-emg", "500", "--mains", "60",
            "--emg-unit", "mV", "--acc-unit", "mg")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and out.with_name("night.truth.json").exists()
    return out


def test_json_is_the_documented_analysis_object(cli, sim_edf):
    r = run(cli, "analyze", sim_edf, "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["schema"] == "nightcramp.analysis/1"
    assert set(obj) >= {"recording", "events", "summary", "advice"}
    rec = obj["recording"]
    assert rec["start"] == "2026-11-24T22:30:00+00:00" and rec["duration_s"] == 3600.0
    assert {"label", "kind", "side", "fs", "unit"} <= set(rec["channels"][0])
    assert [c["unit"] for c in rec["channels"]][:2] == ["mV", "mV"]
    for e in obj["events"]:
        assert e["kind"] in KINDS
        assert 0 <= e["start_s"] <= e["end_s"] <= 3600.0
        assert e["side"] in ("left", "right", None)
        assert {"start", "channel", "confidence"} <= set(e)
    assert obj["summary"]["signal_quality"]["EMG L-Gastroc"]["mains_hz"] == 60.0
    assert obj["config"]["plm"]["rules"] == "aasm", "the resolved configuration is echoed"


def test_csv_events_table(cli, sim_edf):
    r = run(cli, "analyze", sim_edf, "--csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and list(rows[0])[:3] == ["kind", "start_s", "end_s"]
    assert any(row["kind"] == "limb_movement" for row in rows)


def test_text_summary_reads_plainly(cli, sim_edf):
    r = run(cli, "analyze", sim_edf)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "night of 2026-11-24" in out and "Awakenings:" in out and "Cramps:" in out
    assert DISCLAIMER in " ".join(out.split())  # every surface with advice shows it
    assert "What may help" in out and "source: " in out
    assert "Traceback" not in out + r.stderr


def test_config_file_option(cli, sim_edf, tmp_path):
    cfg = tmp_path / "wasm.toml"
    cfg.write_text("[detector.plm]\nrules = 'wasm'\n")
    r = run(cli, "analyze", sim_edf, "--json", "--config", cfg)
    assert json.loads(r.stdout)["config"]["plm"]["rules"] == "wasm"
    bad = tmp_path / "bad.toml"
    bad.write_text("[detector.cramp]\non_ratio = -1\n")
    r = run(cli, "analyze", sim_edf, "--config", bad)
    assert r.returncode == 2 and "cramp.on_ratio" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("target, message", [
    ("missing.edf", "missing.edf: no such file"),
    (EDF_DIR / "edfize-testdata" / "zero-data-records.edf",
     "zero-data-records.edf: the file holds no data records"),
    (EDF_DIR / "edfize-testdata" / "invalid-date.edf", "invalid-date.edf: header start date"),
    (EDF_DIR / "edfio-testdata" / "short_psg.edf",
     "short_psg.edf: no leg EMG or accelerometer channels found (channels present: EEG Fpz-Cz, EEG Pz-Oz"),
    ("notes.txt.gz", "unknown recording format"),
])
def test_errors_are_one_clear_line(cli, target, message, tmp_path):
    r = run(cli, "analyze", target)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_alias_option_maps_a_psg_label(cli):
    r = run(cli, "analyze", EDF_DIR / "pyedflib-testdata" / "test_generator.edf", "--json",
            "--alias", "noise=EMG L-TibAnt")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert [c["label"] for c in obj["recording"]["channels"]] == ["noise"]
    assert "squarewave" in obj["recording"]["ignored_channels"]
    r = run(cli, "analyze", EDF_DIR / "pyedflib-testdata" / "test_generator.edf", "--alias", "noise")
    assert r.returncode == 2 and "expected LABEL=NAME" in r.stderr


def test_help_and_version_answer_without_loading_the_engine(cli):
    import sys

    probe = "\n".join([
        "import sys",
        "import dashboard.cli",
        "for argv in (['--help'], ['analyze', '--help'], ['advice', '--help'],",
        "             ['diary', 'evening', '--help']):",
        "    try:",
        "        dashboard.cli.main(argv)",
        "    except SystemExit:",
        "        pass",
        "heavy = ('numpy', 'scipy', 'pydantic', 'fastapi', 'rule_engine', 'httpx', 'paho', 'edfio',",
        "         'argon2')",
        "print('LOADED', [m for m in heavy if m in sys.modules])"])
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "usage: nightcramp" in r.stdout and "LOADED []" in r.stdout, r.stdout[-500:] + r.stderr[-500:]
    r = run(cli, "--version")
    assert r.returncode == 0 and r.stdout.strip().startswith("nightcramp 0.")


def test_night_close_says_no_without_a_detector_or_an_open_night(cli, tmp_path):
    import os
    import time

    services = tmp_path / "services.toml"
    state = tmp_path / "state"
    services.write_text(f"[service]\nstate_dir = \"{state}\"\n[stack]\ndata_dir = \"{tmp_path / 'var'}\"\n")
    r = run(cli, "night", "close", "--wearer", "sim-9", "--services", services, "--wait", "0")
    assert r.returncode == 2 and "no detector service is running here" in r.stderr, r.stderr
    r = run(cli, "stack", "status", "--services", services)
    assert "detector" not in r.stdout or "never ran" in r.stdout
    # A detector's status as it writes it every tick (this process stands in for its pid).
    state.mkdir()
    (state / "status.json").write_text(json.dumps({"pid": os.getpid(), "running": True, "tick_s": 1.0,
                                                   "open_nights": ["sim-1"], "at": time.time() + 3600}))
    r = run(cli, "night", "close", "--wearer", "sim-9", "--services", services, "--wait", "0")
    assert r.returncode == 2 and "no open night for wearer 'sim-9' (open nights: sim-1)" in r.stderr, r.stderr
    r = run(cli, "stack", "status", "--services", services)
    assert r.returncode == 0, r.stderr
    assert "detector   running" in r.stdout and "open nights: sim-1" in r.stdout, r.stdout


def test_collect_without_a_bluetooth_stack_says_so_and_fails(cli, tmp_path):
    import os

    services = tmp_path / "services.toml"
    services.write_text(f"[stack]\ndata_dir = \"{tmp_path / 'var'}\"\n")
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-bus'}"}
    r = run(cli, "collect", "--wearer", "w-1", "--sensor", "left-shank", "--address", "AA:BB:CC:DD:EE:FF",
            "--side", "L", "--services", services, env=env)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") <= 2 and "no Bluetooth stack" in r.stderr and "no-bus" in r.stderr, r.stderr


def test_a_mistyped_command_or_option_gets_a_suggestion(cli):
    r = run(cli, "analyse", "night.edf")
    assert r.returncode == 2 and "did you mean 'analyze'?" in r.stderr, r.stderr
    r = run(cli, "night", "close", "--wearer", "w-1", "--forse")
    assert r.returncode == 2, r.stderr
    assert "unrecognized arguments: --forse — did you mean --force?" in r.stderr, r.stderr
    r = run(cli, "--version")
    assert r.returncode == 0 and r.stdout.startswith("nightcramp ")
