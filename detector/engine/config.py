"""The detector's configuration: one typed tree loaded from TOML, every threshold with a unit.

Each field's description starts with its unit in brackets and gives a one-line reason. The
defaults here and ``config/detector.toml`` are kept equal by a test, and the resolved
configuration is echoed into every analysis result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ingest.paths import ConfigFileError, config_file, read_toml


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


class Rhythm(_Section):
    min_bursts: int = Field(3, ge=2, description="[-] bursts that make a train (walking, alternating leg muscle activation, foot tremor): each is its own event, none a leg movement for PLM scoring")
    dip_ratio: float = Field(0.3, gt=0, lt=1, description="[-] a train's bursts are parted by dips of the 0.15-s envelope below this share of the activity's peak level (90th percentile)")
    min_dip_s: float = Field(0.15, gt=0, description="[s] shortest dip that parts two bursts")
    min_burst_s: float = Field(0.15, gt=0, description="[s] shortest burst of a train")
    min_interval_s: float = Field(0.3, gt=0, description="[s] shortest time from one burst's start to the next (AASM foot tremor and ALMA reach 3-4 Hz)")
    max_interval_s: float = Field(3.0, gt=0, description="[s] longest time from one burst's start to the next (a slow stride)")
    max_spread: float = Field(2.0, ge=1, description="[-] largest ratio of the longest to the shortest burst interval in a train (rhythmic, not irregular)")
    min_peak_ratio: float = Field(5.0, gt=1, description="[-] a train's bursts peak (median over bursts) at least this many times resting: heartbeats bleeding into the EMG (0.5-1.5 s apart) and tone just over the onset level stay one movement")


class Cramp(_Section):
    on_ratio: float = Field(1.7, gt=1, description="[-] slow envelope over resting that starts sustained activity (cramps rise 2-6x, Chaney & Sherman)")
    on_above_uV: float = Field(1.5, gt=0, description="[µV] sustained activity must also exceed resting by this much")
    off_ratio: float = Field(1.4, gt=1, description="[-] sustained activity ends below this multiple of resting (residual tension stays under it)")
    cluster_max_fill: float = Field(0.6, gt=0, le=1, description="[-] sustained activity that is not a cramp, spends less than this share above the sustained level and has a median under on_ratio is leg movements with some tone between them: those movements are the events (on simulated nights 1 of 172 cramps has a fill under 0.6)")
    off_hold_s: float = Field(2.0, gt=0, description="[s] time below the off level that ends sustained activity (rides over waxing/waning)")
    min_duration_s: float = Field(3.0, gt=0, description="[s] shortest sustained activity weighed as a possible cramp (Delphi consensus: seconds to ~10 min); a 5-s cramp at 2-3x resting, with its rise and fall, stays above on_ratio for only ~3.5-4 s, and the 1-s median shortens it further")
    red_flag_s: float = Field(600.0, gt=0, description="[s] a cramp longer than this is flagged for a clinician (DOMAIN red flags)")
    prior_window_s: float = Field(60.0, gt=0, description="[s] look-back for movement before onset (a cramp often starts out of quiet sleep, DOMAIN.md); weighed as cramp_model.prior_intensity; before the recording began the wearer counts as awake and moving (cramp_model.prior_ref per window)")
    context_window_s: float = Field(180.0, gt=0, description="[s] look-back for the wearer's wake context: movement from this long before the onset up to cramp.prior_window_s before it (weighed as cramp_model.context_intensity); before the recording began the wearer counts as awake and moving")
    lead_in_s: float = Field(8.0, gt=0, description="[s] the seconds just before onset searched for movement leading into it (a voluntary contraction is preceded by movement)")
    lead_in_skip_s: float = Field(1.5, ge=0, description="[s] the last seconds before onset left out of the lead-in: the onset jerk, the onset's uncertainty and the 1-s accelerometer frame")
    early_skip_s: float = Field(1.5, ge=0, description="[s] the onset jerk: seconds after onset not counted as accompanying movement")
    ramp_level: float = Field(0.7, gt=0, le=1, description="[-] the contraction's build-up ends when its fast envelope first reaches this share of its median level (ramp_s); movement of the leg before that leads into it (weighed with cramp_model.lead_in_intensity): a voluntary contraction often begins as a movement whose EMG, weaker than the hold, merges into its onset, while a cramp's hardening comes first (on simulated nights no cramp moved the leg in its build-up)")
    ramp_skip_s: float = Field(1.0, ge=0, description="[s] seconds after onset not counted as movement in the build-up: a jerk at the onset and the 1-s accelerometer frame")
    early_window_s: float = Field(6.0, gt=0, description="[s] end of the early part after onset checked for accompanying movement (a voluntary contraction moves the leg from the start)")
    coactivation_window_s: float = Field(10.0, gt=0, description="[s] the first seconds (at most half) of the contraction in which the other leg's activity is measured: a body movement starts on both legs, a cramp on one; later activity is the wearer's reaction")
    twitch_window_s: float = Field(60.0, gt=0, description="[s] look-back for fasciculation-like twitches (Minetto 2009: fasciculations precede some cramps)")
    after_window_s: float = Field(30.0, gt=0, description="[s] window after the contraction searched for stretching, standing and walking (must stay below engine.lookahead_s)")
    onset_lookback_s: float = Field(3.0, gt=0, description="[s] how far before a sustained interval its onset is looked for on the fast envelope (the last frame below the sustained level)")
    posture_before_s: float = Field(5.0, ge=0, description="[s] a position change or standing that ends within this long before the onset counts as at the onset")
    rotation_onset_after_s: float = Field(2.0, ge=0, description="[s] a position change beginning within this long after the onset counts as at the onset (later: after it)")
    upright_onset_after_s: float = Field(1.0, ge=0, description="[s] standing within this long after the onset counts as at the onset (later: after it)")
    rotation_after_s: float = Field(10.0, ge=0, description="[s] a position change beginning up to this long after the interval's end counts as after the onset")
    lm_posture_margin_s: float = Field(5.0, ge=0, description="[s] a leg movement within this long of a position change or standing is covered by that event, not shown on its own")
    residual_skip_s: float = Field(5.0, ge=0, description="[s] residual tension is measured from this long after the contraction's end (the envelope's own decay first)")
    residual_min_s: float = Field(5.0, gt=0, description="[s] shortest clean stretch after the contraction over which residual tension is measured")
    residual_min_clean: float = Field(0.5, gt=0, le=1, description="[-] share of that stretch that must be free of artefacts")
    spectral_quiet_s: float = Field(30.0, gt=0, description="[s] resting noise for the spectral feature is taken from the quiet frames this long before the contraction")
    spectral_quiet_ratio: float = Field(1.5, gt=1, description="[-] frames below this multiple of resting count as quiet (resting noise)")
    spectral_active_ratio: float = Field(2.0, gt=1, description="[-] frames above this multiple of resting count as the contraction's activity")
    spectral_lms: int = Field(50, ge=1, description="[-] how many of the channel's last leg movements form its spectral reference")
    periodic_recent_s: float = Field(3.0, ge=0, description="[s] leg-movement onsets this close before a contraction are its own lead-in, not part of a series before it")
    periodic_merge_s: float = Field(5.0, ge=0, description="[s] leg-movement onsets (either leg) closer than this count once when looking for a regular series before a contraction")
    twitch_ecg_gap_s: float = Field(2.0, gt=0, description="[s] twitches with another this close are heartbeats bleeding into the EMG (recurring every 0.6-1.5 s), not fasciculations (seconds apart, Minetto 2009)")


class CrampModel(_Section):
    """Log-odds weights of the cramp decision (detector/engine/cramp_evidence.py); hand-set from DOMAIN.md."""

    threshold: float = Field(0.5, gt=0, lt=1, description="[-] probability at or above which sustained activity is called a cramp (else sustained_activity)")
    bias: float = Field(0.0, description="[-] log-odds before any evidence")
    duration_offset: float = Field(-1.0, description="[-] log-odds of a contraction exactly activation.max_lm_s long, all else neutral")
    w_duration_long: float = Field(2.0, ge=0, description="[-] log-odds per doubling of duration beyond activation.max_lm_s (a leg movement ends within it; a cramp holds)")
    duration_long_cap: float = Field(2.0, gt=0, description="[-] doublings beyond which duration adds nothing more")
    w_duration_short: float = Field(3.0, ge=0, description="[-] log-odds lost from activation.max_lm_s down to cramp.min_duration_s (as short as a leg movement: needs other evidence)")
    w_level: float = Field(0.6, ge=0, description="[-] log-odds per doubling of the level over resting above level_ref_ratio (capped at +1 doubling, -1.5 below)")
    level_ref_ratio: float = Field(2.5, gt=1, description="[-] neutral level over resting: cramps average 2-3x resting (Chaney & Sherman)")
    w_fill: float = Field(3.0, ge=0, description="[-] log-odds per unit share of the interval above the sustained level, around fill_ref (a plateau, not bursts)")
    fill_ref: float = Field(0.75, ge=0, le=1, description="[-] neutral share of the interval above the sustained level")
    w_coactivation: float = Field(6.0, ge=0, description="[-] log-odds per unit share of the onset with the other leg active above coactivation_ref (body movement, not a one-sided cramp)")
    coactivation_ref: float = Field(0.15, ge=0, le=1, description="[-] other-leg activity at the onset tolerated without penalty")
    w_onset_gap: float = Field(1.5, ge=0, description="[-] log-odds lost per onset_gap_ref of pause below the sustained-off level early in the interval, up to 2x: a burst, a pause, then the contraction is a movement leading into it (voluntary); a cramp rises and holds")
    onset_gap_ref: float = Field(0.5, gt=0, description="[s] pause early in the interval that costs w_onset_gap; a dip shorter than activation.offset_quiet_s (AASM: it does not end a movement) is no pause")
    w_twitches: float = Field(1.0, ge=0, description="[-] log-odds for fasciculation-like twitches before the onset (Minetto 2009)")
    min_twitches: int = Field(2, ge=1, description="[-] twitches in cramp.twitch_window_s that count as that evidence")
    w_periodic: float = Field(2.0, ge=0, description="[-] log-odds lost when a contraction shorter than 1.5x activation.max_lm_s (WASM: bilateral leg movements up to 15 s) continues a regular series of leg movements (cramp_model.periodic_min before it, 5-90 s apart, intervals within periodic_spread): the next periodic leg movement, not a cramp (AASM 2018)")
    w_residual: float = Field(1.0, ge=0, description="[-] log-odds for residual tension after the contraction (DOMAIN.md: a cramp leaves the muscle tense for minutes); only for: its absence costs nothing, as not every cramp shows it")
    residual_floor: float = Field(1.1, gt=1, description="[-] median envelope 5 s to cramp.after_window_s after the end, over resting, that begins to count (voluntary contractions and leg movements stay under it 9 times in 10 on simulated nights)")
    residual_max: float = Field(1.6, gt=1, description="[-] above this the muscle is active again (movements, walking), not merely tense: no residual credit")
    residual_ref: float = Field(0.15, gt=0, description="[-] rise above residual_floor that earns the full w_residual")
    periodic_min: int = Field(3, ge=2, description="[-] leg movements before the onset that make a series with it (AASM: 4 in a row)")
    periodic_spread: float = Field(1.5, ge=1, description="[-] largest ratio of the longest to the shortest interval in the series that counts as regular (restless wake movements are irregular)")
    w_artifact: float = Field(6.0, ge=0, description="[-] log-odds per unit share of the interval flagged as artefact")
    w_spectral: float = Field(1.0, ge=0, description="[-] log-odds for a rise of the contraction's characteristic EMG frequency over the same channel's leg movements (Serrao 2007); a fall costs as much")
    spectral_ref: float = Field(0.15, gt=0, description="[-] relative frequency rise that earns the full w_spectral")
    w_lead_in: float = Field(1.2, ge=0, description="[-] log-odds lost per lead_in_ref of movement leading into the onset (voluntary contraction), up to 3x")
    lead_in_ref: float = Field(2.0, gt=0, description="[s] movement intensity (intensity x seconds, as in sleep scoring) in the lead-in that costs w_lead_in")
    w_prior: float = Field(0.4, ge=0, description="[-] log-odds lost per prior_ref of movement in the minute before (awake and moving), up to 2x; cramps also strike awake wearers (ICSD-3)")
    prior_ref: float = Field(20.0, gt=0, description="[s] movement intensity in cramp.prior_window_s that costs w_prior; wake movement scores 20+, a periodic leg movement 1-2")
    w_context: float = Field(0.5, ge=0, description="[-] log-odds lost per context_ref of movement in the minutes before (cramp.context_window_s to prior_window_s before the onset), up to 2x: a wearer awake and moving about for minutes makes a voluntary contraction more likely than a cramp (DOMAIN.md: preceded by wake movement); small, because cramps also begin in wake (ICSD-3)")
    context_ref: float = Field(40.0, gt=0, description="[s] movement intensity in the wake-context window that costs w_context")
    clean_onset_keep: float = Field(0.3, ge=0, le=1, description="[-] share of the prior_intensity and context_intensity costs kept for a contraction that nothing led into or accompanied (no movement in the lead-in or early after the onset): earlier wake movement that had stopped points to a voluntary contraction only when it leads into it (DOMAIN.md); a cramp also strikes a wearer lying awake between movements (ICSD-3)")
    clean_onset_ref: float = Field(2.0, gt=0, description="[s] lead-in plus early movement intensity at which those costs are back to 1-1/e of their full size (about a second of a clear leg movement)")
    w_early: float = Field(0.5, ge=0, description="[-] log-odds lost per early_ref of movement accompanying the onset, up to 3x")
    early_ref: float = Field(10.0, gt=0, description="[s] movement intensity early in the contraction that costs w_early")
    w_later: float = Field(1.2, ge=0, description="[-] log-odds per later_ref of movement after the onset: the pain wakes the wearer, who stretches, stands and walks (DOMAIN.md), up to later_cap")
    later_ref: float = Field(20.0, gt=0, description="[s] movement intensity after the onset (to cramp.after_window_s past the end) that earns w_later")
    later_cap: float = Field(3.0, gt=0, description="[-] most later_ref units of movement after the onset that count")
    early_still_ref: float = Field(3.0, gt=0, description="[s] movement intensity accompanying the onset (cramp.early_skip_s to cramp.early_window_s) that leaves 1/e of the stillness for which movement after the onset counts as a reaction (w_later): the leg moving as the contraction begins leads into it, and the movement after it goes on from there; 3 intensity-seconds is about 2 s of a clear leg movement")
    reaction_ratio_lo: float = Field(2.0, gt=0, description="[-] movement in the after_window_s after a contraction, per second, over the wearer's own rate in the minute before it (at least reaction_floor_rate): from this ratio, movement after the onset counts even when the wearer was already moving (a cramp that starts in wake is stretched or walked off; a voluntary contraction is not)")
    reaction_floor_rate: float = Field(1.5, gt=0, description="[1/s] rate of movement intensity in the minute before a contraction from which the wearer counts as already moving about (awake and restless); the outlasting test is taken against at least this rate, and below it counts only in proportion (out of stillness, the stillness test decides)")
    reaction_ratio_hi: float = Field(4.0, gt=0, description="[-] ratio at which that movement counts in full (linear from reaction_ratio_lo)")
    w_no_reaction: float = Field(1.5, ge=0, description="[-] log-odds lost when a contraction shorter than 1.5x activation.max_lm_s is followed by movement below no_reaction_ref: as short as a leg movement, only the pain's reaction (waking, stretching) tells a cramp apart")
    no_reaction_ref: float = Field(2.0, ge=0, description="[s] movement intensity after the onset below which there was no reaction")
    w_voluntary_hold: float = Field(2.5, ge=0, description="[-] log-odds lost by a contraction that began with movement (cramp.early_window_s, full at early_ref) and is followed by no reaction (no movement after it ends, no standing, no turn): a voluntary contraction is led into and accompanied by movement and simply ends (DOMAIN.md); a cramp's pain is stretched out, stood on or turned from")
    hold_reaction_ref: float = Field(20.0, gt=0, description="[s] movement intensity in cramp.after_window_s after the contraction that counts as a full reaction to it (standing up or a turn after the onset count in full)")
    w_rotation_onset: float = Field(2.5, ge=0, description="[-] log-odds lost for a position change at the onset (the contraction is part of the turn)")
    w_rotation_after: float = Field(0.3, ge=0, description="[-] log-odds for a position change after the onset (relief)")
    w_upright_onset: float = Field(4.0, ge=0, description="[-] log-odds lost for standing at the onset (standing and walking use the calf)")
    w_upright_after: float = Field(1.0, ge=0, description="[-] log-odds for standing up after the onset (standing on the leg relieves a cramp)")


class Acc(_Section):
    frame_s: float = Field(1.0, gt=0, description="[s] accelerometer frame for activity and orientation")
    move_g: float = Field(0.015, gt=0, description="[g] dynamic acceleration (RMS over a frame) that counts as moving; sensor noise is ~0.005 g")
    shank_axis: Literal["X", "Y", "Z"] = Field("X", description="[-] sensor axis along the shank: vertical when standing")
    vertical_deg: float = Field(50.0, gt=0, lt=90, description="[deg] shank elevation above which the wearer is upright (bed exit)")
    upright_min_s: float = Field(3.0, gt=0, description="[s] the shank must be upright this long before standing counts (a leg lifted in bed is upright only briefly)")
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
    cramp_wake_after_s: float = Field(40.0, ge=0, description="[s] from this long after a cramp's onset (or from its end, if it ends sooner: the pain woke the wearer before it eased) the wearer counts as awake, still or not (Chaney & Sherman: calf EMG rises ~41 s before waking in pain)")
    cramp_wake_tail_s: float = Field(60.0, ge=0, description="[s] after a cramp ends the wearer stays awake at least this long, still or not (the source article: the pain makes it difficult to fall back asleep, and soreness lingers)")
    cramp_link_window_s: float = Field(300.0, gt=0, description="[s] an awakening is linked to a cramp that began at most this long before it")


class Artifact(_Section):
    pop_level_s: float = Field(0.2, gt=0, description="[s] span of the raw level whose step marks an electrode pop")
    pop_step_uV: float = Field(300.0, gt=0, description="[µV] step of the 0.2-s raw level that marks an electrode pop (EMG stays below it)")
    pop_blank_s: float = Field(1.5, gt=0, description="[s] time after a pop during which the channel is not scored (exponential recovery)")
    lead_off_mains_uV: float = Field(150.0, gt=0, description="[µV] mains-band envelope above which the electrode may be off")
    lead_off_mains_ratio: float = Field(2.0, gt=0, description="[-] lead-off also needs the mains-band envelope this many times the EMG left after the notch: strong muscle activity has broadband power at 50/60 Hz too, a detached electrode only hum")
    lead_off_hum_rise: float = Field(3.0, gt=1, description="[-] a loose electrode picks up hum: a mains-band envelope this many times its usual level (the median of the resting blocks of the baseline window) and lead_off_mains_ratio times the notched EMG is a lead-off, however small the hum; the usual level covers hum present from the start, which the notch removes")
    lead_off_ratio: float = Field(0.3, gt=0, lt=1, description="[-] envelope below this multiple of resting means the signal vanished")
    lead_off_min_s: float = Field(5.0, gt=0, description="[s] shortest lead-off reported; shorter dips are ignored")
    clip_uV: float = Field(1000.0, gt=0, description="[µV] samples at a repeated extreme above this level are saturation")
    merge_gap_s: float = Field(2.0, ge=0, description="[s] artefact intervals closer than this are one event")


class Engine(_Section):
    lookahead_s: float = Field(40.0, gt=0, description="[s] how long after an interval ends the engine waits before classifying it (context after the event)")
    alert_step_s: float = Field(0.5, gt=0, le=1.0, description="[s] live service: new data between looks for a cramp in progress; with the 1-s slow median a suspected cramp is announced about 1 s after the criteria are met (goal: within 2 s)")
    history_s: float = Field(400.0, ge=0, description="[s] per-frame history kept before the oldest undecided interval, so a night's state stays bounded (0 keeps the whole night); at least twice the longest look-back (cramp.prior_window_s, context_window_s, twitch_window_s, spectral_quiet_s)")


class DetectorConfig(_Section):
    front_end: FrontEnd = FrontEnd()
    baseline: Baseline = Baseline()
    activation: Activation = Activation()
    rhythm: Rhythm = Rhythm()
    cramp: Cramp = Cramp()
    cramp_model: CrampModel = CrampModel()
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
        cr, hist = self.cramp, self.engine.history_s
        look_back = max(cr.prior_window_s, cr.context_window_s, cr.twitch_window_s, cr.spectral_quiet_s)
        if 0 < hist < 2 * look_back:
            raise ValueError(f"engine.history_s ({hist:g} s) must be 0 or at least twice the longest look-back "
                             f"({look_back:g} s: cramp.prior_window_s, context_window_s, twitch_window_s, "
                             "spectral_quiet_s)")
        if self.acc.max_rollover_s + self.acc.still_min_s >= la:
            raise ValueError("acc.max_rollover_s + acc.still_min_s must be shorter than engine.lookahead_s")
        return self


M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is unusable; the message names the file and the key."""


def default_config_path() -> Path:
    return config_file("detector.toml")


def load_config(path: str | Path | None = None) -> DetectorConfig:
    """Load the detector configuration (``config/detector.toml`` when ``path`` is None)."""
    return load_toml_model(Path(path) if path else default_config_path(), DetectorConfig, "detector")


def load_toml_model(path: Path, model: type[M], table: str | None = None) -> M:
    """Validate a TOML file (or its ``table``) against ``model``; ConfigError names file and keys."""
    try:
        data = read_toml(path)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return model.model_validate(data.get(table, data) if table else data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def render_toml(cfg: DetectorConfig | None = None) -> str:
    """The configuration as commented TOML (how ``config/detector.toml`` is produced)."""
    cfg = cfg or DetectorConfig()
    lines = ["# nightcramp detector configuration: every threshold with [unit] and the reason for it.",
             "# Produced by detector.engine.config.render_toml(); tests check it equals the code's defaults.",
             ""]
    for name in DetectorConfig.model_fields:
        section = getattr(cfg, name)
        lines.append(f"[detector.{name}]")
        for key, field in type(section).model_fields.items():
            lines.append(f"# {field.description}")
            lines.append(f"{key} = {_toml_value(getattr(section, key))}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)
