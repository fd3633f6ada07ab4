"""The configuration file matches the code, every threshold has a unit, errors name the key."""

from __future__ import annotations

import re

import pytest

from detector.config import ConfigError, DetectorConfig, default_config_path, load_config, render_toml


def test_shipped_file_equals_the_defaults():
    assert default_config_path().read_text() == render_toml(), \
        "config/detector.toml is stale: regenerate it with detector.config.render_toml()"
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
