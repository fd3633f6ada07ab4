"""The configuration file matches the code, every threshold has a unit, errors name the key."""

from __future__ import annotations

import re

import pytest

from detector.engine.config import ConfigError, DetectorConfig, default_config_path, load_config, render_toml


def test_shipped_file_equals_the_defaults():
    assert default_config_path().read_text() == render_toml(), \
        "config/detector.toml is stale: regenerate it with detector.engine.config.render_toml()"
    assert load_config() == DetectorConfig()


def test_every_threshold_has_a_unit_and_a_reason():
    for section in DetectorConfig.model_fields:
        for key, field in type(getattr(DetectorConfig(), section)).model_fields.items():
            desc = field.description or ""
            assert re.match(r"^\[[^\]]+\] \S.{15,}", desc), f"{section}.{key}: '{desc}'"


def test_errors_name_file_and_key(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[detector.cramp]\non_ratio = 'high'\nbogus = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    msg = str(exc.value)
    assert str(p) in msg and "cramp.on_ratio" in msg and "cramp.bogus" in msg


def test_partial_file_keeps_other_defaults(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[detector.plm]\nrules = 'wasm'\n")
    cfg = load_config(p)
    assert cfg.plm.rules == "wasm"
    assert cfg.cramp == DetectorConfig().cramp


def test_context_windows_must_fit_the_lookahead(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[detector.cramp]\nafter_window_s = 60.0\n")
    with pytest.raises(ConfigError, match=r"after_window_s .* must be shorter than engine\.lookahead_s"):
        load_config(p)


def _loaders():
    from detector.advice.rules import load_rules
    from detector.service.settings import load_services
    from ingest.ble.profile import load_profile
    from ingest.recordings.labels import _table
    from ingest.recordings.scoring import scoring_table

    return {
        "detector.toml": load_config,
        "services.toml": load_services,
        "advice.toml": load_rules,
        "channels.toml": _table,
        "scoring.toml": scoring_table,
        "sensors/bad.toml": lambda p: load_profile("bad", p.parent),
    }


@pytest.mark.parametrize("name", ["detector.toml", "services.toml", "advice.toml", "channels.toml",
                                  "scoring.toml", "sensors/bad.toml"])
def test_every_config_file_reports_a_broken_or_missing_file_the_same_way(tmp_path, name):
    """One TOML reader for every file in config/: a syntax error names the file, the line and
    the column; a missing file names the file — a ValueError for every loader, never a traceback
    from tomllib or open()."""
    load = _loaders()[name]
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[section]\nkey = "unterminated\n')
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: not valid TOML: .*line 2, column"):
        load(path)
    path.unlink()
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: .*not found"):
        load(path)
