"""nightcramp as a user installs it: the wheel carries its defaults, the configuration search
path (``$NIGHTCRAMP_CONFIG_DIR``, the user's directory, the shipped defaults) holds for every file,
and an installed copy outside the repository simulates and analyses a night."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from setuptools import find_packages

from detector.advice.rules import default_rules, load_rules, rules_path
from detector.engine.config import load_config
from detector.service.settings import load_services
from ingest.ble.profile import load_profile
from ingest.paths import config_file, search_dirs

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_lists_every_package_of_the_source_tree():
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = find_packages(str(ROOT), include=["ingest*", "detector*", "dashboard*"])
    assert sorted(listed) == sorted([*found, "nightcramp_config"])


def test_each_file_comes_from_the_first_directory_that_has_it(tmp_path, monkeypatch):
    env_dir, xdg = tmp_path / "env", tmp_path / "xdg"
    (env_dir / "sensors").mkdir(parents=True)
    (xdg / "nightcramp").mkdir(parents=True)
    monkeypatch.setenv("NIGHTCRAMP_CONFIG_DIR", str(env_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    shipped = search_dirs()[-1]
    assert search_dirs() == [env_dir, xdg / "nightcramp", shipped] and (shipped / "detector.toml").is_file()
    # detector.toml in the user's directory; services.toml nowhere but the defaults
    (xdg / "nightcramp" / "detector.toml").write_text("[detector.cramp]\nmin_duration_s = 7.5\n")
    assert load_config().cramp.min_duration_s == 7.5
    assert config_file("services.toml") == shipped / "services.toml"
    assert load_services().service.night_close_silence_s == 600.0
    # $NIGHTCRAMP_CONFIG_DIR wins over the user's directory, for the advice rules too
    (env_dir / "detector.toml").write_text("[detector.cramp]\nmin_duration_s = 6.0\n")
    assert load_config().cramp.min_duration_s == 6.0
    rules = (shipped / "advice.toml").read_text()
    assert 'title = "A cramp lasted more than 10 minutes"' in rules
    (env_dir / "advice.toml").write_text(rules.replace("A cramp lasted more than 10 minutes",
                                                       "A very long cramp (local wording)", 1))
    assert rules_path() == env_dir / "advice.toml"
    titles = {lr.rule.id: lr.rule.title for lr in default_rules()}
    assert titles["long-cramp"] == "A very long cramp (local wording)"
    assert len(titles) == len(load_rules(shipped / "advice.toml"))
    # and a sensor profile
    prof = (shipped / "sensors" / "nightcramp-leg-v1.toml").read_text()
    assert "fs = 1000.0" in prof
    (env_dir / "sensors" / "nightcramp-leg-v1.toml").write_text(prof.replace("fs = 1000.0", "fs = 800.0", 1))
    assert load_profile("nightcramp-leg-v1").streams["emg"].fs == 800.0


def test_an_installed_wheel_simulates_and_analyses_outside_the_repository(tmp_path):
    # Built from a copy of the tracked tree: the build leaves nothing in the checkout.
    src = tmp_path / "src"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True,
                             check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                        str(src)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("nightcramp-*.whl")
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    py = env / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True,
                       timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("NIGHTCRAMP_CONFIG_DIR", "PYTHONPATH")}
    clean["XDG_CONFIG_HOME"] = str(tmp_path / "no-user-config")
    cli = str(env / "bin" / "nightcramp")
    r = subprocess.run([cli, "simulate", "--hours", "0.5", "--seed", "3", "night.edf"], capture_output=True,
                       text=True, timeout=600, cwd=work, env=clean)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([cli, "analyze", "--json", "night.edf"], capture_output=True, text=True, timeout=600,
                       cwd=work, env=clean)
    assert r.returncode == 0, r.stderr[-2000:]
    a = json.loads(r.stdout)
    assert a["schema"] == "nightcramp.analysis/1" and a["events"]
    where = subprocess.run([str(py), "-c", "import ingest.paths as p; print(p.defaults_dir())"],
                           capture_output=True, text=True, cwd=work, env=clean).stdout.strip()
    assert "site-packages" in where and str(ROOT) not in where
