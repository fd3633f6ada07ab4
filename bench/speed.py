"""Speed and memory of a whole-night analysis, as ratios against named peers in the same run.

1. ``nightcramp analyze`` on an 8-hour night (2 EMG at 1 kHz + 2x3 ACC at 50 Hz) as a whole
   process: median wall time of --repeat runs and peak RSS (goal <= 3 s, <= 1 GB).
2. Ratio to the named peer, a bare read + band-pass of the same EMG (goal <= 3x): in process
   (analysis against reading the EDF and ``sosfilt``) and as whole processes (``nightcramp
   analyze`` against a script that imports SciPy, reads and band-passes). The ratio to
   ``sosfilt`` alone is printed as well.
3. Ratio to NeuroKit2's ``emg_process`` on a 1-hour excerpt of one EMG channel (goal >= 100x
   faster); skipped with a message when neurokit2 is not installed (``make bench`` installs it).
4. With --memory: a 10-hour night with 2 EMG at 2 kHz and 6 ACC at 100 Hz (goal peak RSS
   <= 1.5 GB).

Shared machines are noisy: read the medians and the ratios, not single times.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detector.analyze import analyze_recording  # noqa: E402
from detector.engine.config import DetectorConfig  # noqa: E402
from detector.engine.dsp import design_bandpass  # noqa: E402
from ingest.recordings.edf import read_edf_recording  # noqa: E402
from ingest.recordings.recording import array_recording  # noqa: E402
from ingest.simulate import NightOptions, plan_night, write_night  # noqa: E402

CLI = ROOT / ".venv" / "bin" / "nightcramp"


# The named peer as a process: read the EMG channels of an EDF and band-pass them, nothing else.
PEER = (
    "import sys\n"
    f"sys.path.insert(0, {str(ROOT)!r})\n"
    "from scipy import signal\n"
    "from detector.engine.dsp import design_bandpass\n"
    "from ingest.recordings.edf import read_edf_recording\n"
    "r = read_edf_recording(sys.argv[1])\n"
    "sos = design_bandpass(fs=1000.0, low_hz=20.0, high_hz=450.0, order=4)\n"
    "[signal.sosfilt(sos, r.read(i, 0, c.n_samples)) for i, c in enumerate(r.channels) if c.kind == 'emg']\n"
)


def run_cli(path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``nightcramp analyze --json`` process."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "w = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(w, rss, r.returncode)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(CLI), "analyze", str(path), "--json", "--quiet"],
                         capture_output=True, text=True, check=True).stdout.split()
    if out[2] != "0":
        raise SystemExit(f"nightcramp analyze failed on {path}")
    return float(out[0]), float(out[1])


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description="nightcramp speed and memory benchmark")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--memory", action="store_true", help="also the 10-hour 2-kHz memory scenario")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "speed.json")
    args = ap.parse_args()
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "night8h.edf"
        print("writing an 8-hour night (2 EMG at 1 kHz, 2x3 ACC at 50 Hz)…", flush=True)
        write_night(plan_night(NightOptions(hours=8, seed=4242, fs_emg=1000.0, fs_acc=50.0)), path)
        runs = [run_cli(path) for _ in range(args.repeat)]
        walls = [w for w, _ in runs]
        res["cli_wall_s_median"] = statistics.median(walls)
        res["cli_wall_s_all"] = walls
        res["cli_peak_rss_mb"] = max(r for _, r in runs)

        rec = read_edf_recording(path)
        emg = [rec.read(i, 0, c.n_samples) for i, c in enumerate(rec.channels) if c.kind == "emg"]
        sos = design_bandpass(fs=1000.0, low_hz=20.0, high_hz=450.0, order=4)
        from scipy import signal

        def read_and_filter():
            r = read_edf_recording(path)
            return [signal.sosfilt(sos, r.read(i, 0, c.n_samples))
                    for i, c in enumerate(r.channels) if c.kind == "emg"]

        res["sosfilt_bandpass_s"] = median_time(lambda: [signal.sosfilt(sos, x) for x in emg], args.repeat)
        res["read_bandpass_s"] = median_time(read_and_filter, args.repeat)
        res["analysis_in_process_s"] = median_time(lambda: analyze_recording(rec, DetectorConfig()),
                                                   max(1, args.repeat // 2))
        # The peer as a whole process too: a bare script that imports SciPy, reads the EMG of
        # the same file and band-passes it (the imports are part of what a user waits for).
        res["read_bandpass_process_s"] = median_time(
            lambda: subprocess.run([sys.executable, "-c", PEER, str(path)], check=True), args.repeat)
        res["ratio_cli_to_sosfilt"] = res["cli_wall_s_median"] / res["sosfilt_bandpass_s"]
        res["ratio_analysis_to_sosfilt"] = res["analysis_in_process_s"] / res["sosfilt_bandpass_s"]
        res["ratio_analysis_to_read_bandpass"] = res["analysis_in_process_s"] / res["read_bandpass_s"]
        res["ratio_cli_to_read_bandpass_process"] = res["cli_wall_s_median"] / res["read_bandpass_process_s"]

        hour = emg[0][: 3600 * 1000].astype(np.float64)
        one = array_recording("hour", rec.start, {"EMG L-Gastroc": (hour, 1000.0)})
        res["ours_1h_1ch_s"] = median_time(lambda: analyze_recording(one, DetectorConfig()), args.repeat)
        try:
            import neurokit2 as nk
        except ImportError:
            res["neurokit2"] = "not installed (pip install neurokit2, or make bench)"
        else:
            t = time.perf_counter()
            nk.emg_process(hour, sampling_rate=1000)
            res["neurokit2_emg_process_1h_s"] = time.perf_counter() - t
            res["neurokit2_version"] = nk.__version__
            res["speedup_vs_neurokit2"] = res["neurokit2_emg_process_1h_s"] / res["ours_1h_1ch_s"]

        if args.memory:
            big = Path(tmp) / "night10h.edf"
            print("writing a 10-hour night (2 EMG at 2 kHz, 6 ACC at 100 Hz)…", flush=True)
            write_night(plan_night(NightOptions(hours=10, seed=4243, fs_emg=2000.0, fs_acc=100.0)), big)
            path.unlink()
            w, rss = run_cli(big)
            res["memory_10h_2khz_wall_s"] = w
            res["memory_10h_2khz_peak_rss_mb"] = rss
            res["memory_10h_file_mb"] = big.stat().st_size / 2**20

    # The command line's start: --help against a bare interpreter (both as subprocesses).
    cli = str(Path(sys.executable).parent / "nightcramp")
    def sub(cmd):
        return lambda: subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    reps = max(5, args.repeat)
    res["python_pass_s"] = median_time(sub([sys.executable, "-c", "pass"]), reps)
    res["cli_help_s"] = median_time(sub([cli, "--help"]), reps)
    res["cli_analyze_help_s"] = median_time(sub([cli, "analyze", "--help"]), reps)
    res["ratio_help_to_python"] = res["cli_help_s"] / res["python_pass_s"]
    res["ratio_analyze_help_to_python"] = res["cli_analyze_help_s"] / res["python_pass_s"]

    res["python"] = sys.version.split()[0]
    res["self_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    print()
    print(f"nightcramp analyze, 8-h night, whole process: median {res['cli_wall_s_median']:.2f} s "
          f"(goal <= 3 s), peak RSS {res['cli_peak_rss_mb']:.0f} MB (goal <= 1024 MB)")
    print(f"  in-process analysis {res['analysis_in_process_s']:.2f} s; bare scipy sosfilt band-pass of the "
          f"same 2 EMG channels {res['sosfilt_bandpass_s']:.2f} s")
    print(f"  peer, a bare read + band-pass of the same EMG: {res['read_bandpass_s']:.2f} s in process, "
          f"{res['read_bandpass_process_s']:.2f} s as a process (with its imports)")
    print(f"  ratio to read + band-pass: analysis {res['ratio_analysis_to_read_bandpass']:.2f}x, whole "
          f"process {res['ratio_cli_to_read_bandpass_process']:.2f}x (goal <= 3x)")
    print(f"  ratio to sosfilt alone: whole process {res['ratio_cli_to_sosfilt']:.2f}x, analysis "
          f"{res['ratio_analysis_to_sosfilt']:.2f}x")
    if "speedup_vs_neurokit2" in res:
        print(f"  1-hour excerpt, one EMG channel: nightcramp {res['ours_1h_1ch_s']:.3f} s, NeuroKit2 "
              f"{res['neurokit2_version']} emg_process {res['neurokit2_emg_process_1h_s']:.1f} s -> "
              f"{res['speedup_vs_neurokit2']:.0f}x faster (goal >= 100x)")
    else:
        print(f"  NeuroKit2: {res['neurokit2']}")
    if args.memory:
        print(f"  10-h night, 2 EMG at 2 kHz + 6 ACC at 100 Hz ({res['memory_10h_file_mb']:.0f} MB file): "
              f"peak RSS {res['memory_10h_2khz_peak_rss_mb']:.0f} MB (goal <= 1536 MB), "
              f"{res['memory_10h_2khz_wall_s']:.1f} s")
    print(f"  nightcramp --help {res['cli_help_s']:.2f} s, analyze --help {res['cli_analyze_help_s']:.2f} s; "
          f"python -c pass {res['python_pass_s']:.2f} s -> {res['ratio_help_to_python']:.1f}x / "
          f"{res['ratio_analyze_help_to_python']:.1f}x (goal <= 0.3 s and <= 3x)")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
