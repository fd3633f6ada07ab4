"""The detector's configuration: one typed tree loaded from TOML, every threshold with a unit.

Each field's description starts with its unit in brackets and gives a one-line reason. The
defaults here and ``config/detector.toml`` are kept equal by a test, and the resolved
configuration is echoed into every analysis result.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ingest.paths import config_dir


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FrontEnd(_Section):
    bandpass_low_hz: float = Field(20.0, gt=0, description="[Hz] EMG high-pass edge: removes motion, baseline wander and most ECG energy")
    bandpass_high_hz: float = Field(450.0, gt=0, description="[Hz] EMG low-pass edge, capped at 0.45 x fs: surface EMG holds little above it")
    bandpass_order: int = Field(4, ge=1, le=8, description="[-] Butterworth order of each band edge: steep enough, stable as second-order sections")
    mains_detect_s: float = Field(10.0, gt=0, description="[s] data used to decide 50 vs 60 Hz mains before anything is filtered")
    mains_min_ratio: float = Field(3.0, gt=1, description="[-] mains line power over neighbouring spectrum needed to switch the notch on")
    notch_q: float = Field(30.0, gt=0, description="[-] notch quality factor: ~2 Hz wide at 50 Hz, leaves EMG around it")
    notch_harmonics: int = Field(5, ge=1, description="[-] highest mains harmonic notched; only odd ones (1st, 3rd, 5th), which dominate hum")
    frame_s: float = Field(0.05, gt=0, description="[s] envelope frame: mean absolute value per frame, 20 Hz time resolution")
    smooth_s: float = Field(0.35, gt=0, description="[s] moving median of the fast envelope used for limb-movement onset/offset (longer than a QRS complex, shorter than a leg movement)")
    slow_s: float = Field(1.0, gt=0, description="[s] moving median of the slow envelope used for sustained (cramp) activity")


class Baseline(_Section):
    block_s: float = Field(10.0, gt=0, description="[s] block over which one resting level is measured")
    block_quantile: float = Field(0.4, gt=0, lt=1, description="[-] quantile of the fast median envelope in a block: below the bursts, near the resting level")
    window_s: float = Field(600.0, gt=0, description="[s] history of blocks the resting baseline is taken from (adapts to electrode drift)")
    quantile: float = Field(0.5, gt=0, lt=1, description="[-] quantile of the block levels in the window that is the baseline")
    max_active_fraction: float = Field(0.3, ge=0, le=1, description="[-] blocks more active than this are kept out of the baseline (a cramp must not raise its own baseline)")
    min_uV: float = Field(0.2, gt=0, description="[µV] lowest baseline accepted: guards ratios against a dead-quiet amplifier")


class Activation(_Section):
    onset_above_uV: float = Field(8.0, gt=0, description="[µV] AASM 2016: leg-movement onset when the envelope is this far above resting")
    offset_above_uV: float = Field(2.0, gt=0, description="[µV] AASM 2016: leg-movement offset when the envelope is within this of resting")
    onset_min_ratio: float = Field(2.0, gt=1, description="[-] onset also needs the envelope at this multiple of resting (noisy electrodes)")
    offset_max_ratio: float = Field(1.5, gt=1, description="[-] offset also allowed below this multiple of resting (noisy electrodes)")
    offset_quiet_s: float = Field(0.5, gt=0, description="[s] AASM: the envelope must stay under the offset level this long to end a movement")
    min_duration_s: float = Field(0.5, gt=0, description="[s] AASM: shorter activations are twitches, not leg movements")
    max_lm_s: float = Field(10.0, gt=0, description="[s] AASM/WASM: longer activity is not a leg movement (large movement or sustained)")
    max_bilateral_lm_s: float = Field(15.0, gt=0, description="[s] WASM 2016: a bilateral leg movement may last up to this")
    bilateral_gap_s: float = Field(0.5, ge=0, description="[s] WASM 2016: leg movements on both legs closer than this are one bilateral movement")


class Cramp(_Section):
    on_ratio: float = Field(1.7, gt=1, description="[-] slow envelope over resting that starts sustained activity (cramps rise 2-6x, Chaney & Sherman)")
    on_above_uV: float = Field(1.5, gt=0, description="[µV] sustained activity must also exceed resting by this much")
    off_ratio: float = Field(1.4, gt=1, description="[-] sustained activity ends below this multiple of resting (residual tension stays under it)")
    off_hold_s: float = Field(2.0, gt=0, description="[s] time below the off level that ends sustained activity (rides over waxing/waning)")
    min_duration_s: float = Field(4.0, gt=0, description="[s] shortest sustained activity considered a cramp (Delphi consensus: seconds to ~10 min; the 1-s median shortens a 5-s contraction by ~1 s)")
    red_flag_s: float = Field(600.0, gt=0, description="[s] a cramp longer than this is flagged for a clinician (DOMAIN red flags)")
    prior_window_s: float = Field(60.0, gt=0, description="[s] look-back for movement before onset: a cramp starts out of quiet sleep (DOMAIN.md), so none is reported before this much recording")
    prior_skip_s: float = Field(2.0, ge=0, description="[s] the last seconds before onset are skipped (the onset jerk belongs to the cramp)")
    max_prior_intensity: float = Field(5.0, ge=0, description="[s] movement intensity (as in sleep scoring) allowed in the look-back; wake movement scores 20+, a periodic leg movement 1-2")
    during_skip_s: float = Field(1.5, ge=0, description="[s] the onset jerk: seconds after onset not checked for accompanying movement")
    during_window_s: float = Field(10.0, gt=0, description="[s] early part of the contraction (at most its first half) checked for accompanying movement")
    max_during_intensity: float = Field(5.0, ge=0, description="[s] movement intensity allowed early in the contraction; a voluntary contraction moves the leg, a cramp holds it")
    max_coactivation: float = Field(0.5, ge=0, le=1, description="[-] share of the event with the other leg also active above which it is a body movement")
    twitch_window_s: float = Field(60.0, gt=0, description="[s] look-back for fasciculation-like twitches (Minetto 2009: fasciculations precede cramps)")
    min_twitches: int = Field(2, ge=1, description="[-] twitches in the look-back that count as evidence for a cramp shorter than activation.max_lm_s")
    after_window_s: float = Field(30.0, gt=0, description="[s] window after the contraction searched for stretching movement (must stay below engine.lookahead_s)")
    min_after_intensity: float = Field(10.0, ge=0, description="[s] movement intensity after a contraction shorter than activation.max_lm_s that counts as stretching (evidence for a cramp)")


class Acc(_Section):
    frame_s: float = Field(1.0, gt=0, description="[s] accelerometer frame for activity and orientation")
    move_g: float = Field(0.015, gt=0, description="[g] dynamic acceleration (RMS over a frame) that counts as moving; sensor noise is ~0.005 g")
    shank_axis: Literal["X", "Y", "Z"] = Field("X", description="[-] sensor axis along the shank: vertical when standing")
    vertical_deg: float = Field(50.0, gt=0, lt=90, description="[deg] shank elevation above which the wearer is upright (bed exit)")
    bed_exit_min_s: float = Field(10.0, gt=0, description="[s] shortest upright period reported as a bed exit")
    rotation_deg: float = Field(30.0, gt=0, description="[deg] change of the gravity vector between two still postures that is a position change")
    still_deg_per_s: float = Field(3.0, gt=0, description="[deg/s] orientation drift allowed within a still posture")
    still_min_s: float = Field(4.0, gt=0, description="[s] a posture must hold this long to anchor a rotation")
    max_rollover_s: float = Field(30.0, gt=0, description="[s] longest transition between postures counted as one rollover")


class Plm(_Section):
    rules: Literal["aasm", "wasm"] = Field("aasm", description="[-] periodicity rules: AASM 2018 (5-90 s) or WASM 2016 (10-90 s)")
    min_count: int = Field(4, ge=2, description="[-] AASM/WASM: at least this many leg movements in a row make a series")
    max_interval_s: float = Field(90.0, gt=0, description="[s] AASM/WASM: longest onset-to-onset interval inside a series")
    aasm_min_interval_s: float = Field(5.0, gt=0, description="[s] AASM 2018: shortest onset-to-onset interval inside a series")
    wasm_min_interval_s: float = Field(10.0, gt=0, description="[s] WASM 2016: shortest onset-to-onset interval inside a series")


class Sleep(_Section):
    epoch_s: float = Field(30.0, gt=0, description="[s] scoring epoch, as in polysomnography")
    weights: tuple[float, ...] = Field((0.04, 0.06, 0.08, 0.12, 0.30, 0.12, 0.08), description="[-] Cole-Kripke-style weights on epoch activity, epochs -4..+2")
    intensity_cap: float = Field(10.0, gt=0, description="[-] per-second cap on movement intensity (in units of acc.move_g above it) so walking does not swamp the count")
    wake_threshold: float = Field(6.0, gt=0, description="[s] weighted activity (seconds x intensity) above which an epoch is wake; periodic leg movements in sleep stay below ~5")
    emg_wake_threshold: float = Field(3.0, gt=0, description="[s] weighted EMG-active seconds above which an epoch is wake, used only without an accelerometer")
    min_sleep_run_s: float = Field(90.0, ge=0, description="[s] sleep runs shorter than this between wake are rescored wake (one awakening, not two)")
    onset_run_s: float = Field(300.0, gt=0, description="[s] sleep onset is the first sleep run at least this long")
    awakening_min_s: float = Field(60.0, gt=0, description="[s] an awakening is a wake bout at least this long after sleep onset (stated in every summary)")
    cramp_link_window_s: float = Field(300.0, gt=0, description="[s] an awakening is linked to a cramp that began at most this long before it")


class Artifact(_Section):
    pop_step_uV: float = Field(300.0, gt=0, description="[µV] step of the 0.2-s raw level that marks an electrode pop (EMG stays below it)")
    pop_blank_s: float = Field(1.5, gt=0, description="[s] time after a pop during which the channel is not scored (exponential recovery)")
    lead_off_mains_uV: float = Field(150.0, gt=0, description="[µV] mains-band envelope above which the electrode is off (hum dominates)")
    lead_off_ratio: float = Field(0.3, gt=0, lt=1, description="[-] envelope below this multiple of resting means the signal vanished")
    lead_off_min_s: float = Field(5.0, gt=0, description="[s] shortest lead-off reported; shorter dips are ignored")
    clip_uV: float = Field(1000.0, gt=0, description="[µV] samples at a repeated extreme above this level are saturation")
    merge_gap_s: float = Field(2.0, ge=0, description="[s] artefact intervals closer than this are one event")


class Engine(_Section):
    lookahead_s: float = Field(40.0, gt=0, description="[s] how long after an interval ends the engine waits before classifying it (context after the event)")
    alert_step_s: float = Field(0.5, gt=0, le=1.0, description="[s] live service: new data between looks for a cramp in progress; with the 1-s slow median a suspected cramp is announced about 1 s after the criteria are met (goal: within 2 s)")


class DetectorConfig(_Section):
    front_end: FrontEnd = FrontEnd()
    baseline: Baseline = Baseline()
    activation: Activation = Activation()
    cramp: Cramp = Cramp()
    acc: Acc = Acc()
    plm: Plm = Plm()
    sleep: Sleep = Sleep()
    artifact: Artifact = Artifact()
    engine: Engine = Engine()


    @model_validator(mode="after")
    def _context_within_lookahead(self) -> DetectorConfig:
        la = self.engine.lookahead_s
        if self.cramp.after_window_s >= la:
            raise ValueError(f"cramp.after_window_s ({self.cramp.after_window_s:g} s) must be shorter than "
                             f"engine.lookahead_s ({la:g} s): events are classified that long after they end")
        if self.acc.max_rollover_s + self.acc.still_min_s >= la:
            raise ValueError("acc.max_rollover_s + acc.still_min_s must be shorter than engine.lookahead_s")
        return self


class ConfigError(ValueError):
    """A configuration file is unusable; the message names the file and the key."""


def default_config_path() -> Path:
    return config_dir() / "detector.toml"


def load_config(path: str | Path | None = None) -> DetectorConfig:
    """Load the detector configuration (``config/detector.toml`` when ``path`` is None)."""
    return load_toml_model(Path(path) if path else default_config_path(), DetectorConfig, "detector")


def load_toml_model(path: Path, model: type[BaseModel], table: str | None = None):
    """Validate a TOML file (or its ``table``) against ``model``; ConfigError names file and keys."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(data.get(table, data) if table else data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def render_toml(cfg: DetectorConfig | None = None) -> str:
    """The configuration as commented TOML (how ``config/detector.toml`` is produced)."""
    cfg = cfg or DetectorConfig()
    lines = ["# nightcramp detector configuration: every threshold with [unit] and the reason for it.",
             "# Produced by detector.config.render_toml(); tests check it equals the code's defaults.",
             ""]
    for name in DetectorConfig.model_fields:
        section = getattr(cfg, name)
        lines.append(f"[detector.{name}]")
        for key, field in type(section).model_fields.items():
            lines.append(f"# {field.description}")
            lines.append(f"{key} = {_toml_value(getattr(section, key))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
