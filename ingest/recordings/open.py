"""Open any supported recording by its file name."""

from __future__ import annotations

from pathlib import Path

from ingest.recordings.csvfile import read_csv_recording
from ingest.recordings.edf import read_edf_recording
from ingest.recordings.recording import Recording, RecordingError


def open_recording(path: str | Path, *, aliases: dict[str, str] | None = None) -> Recording:
    """Open an EDF/EDF+/BDF/BDF+ or CSV recording; RecordingError for anything else."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf", ".rec"):
        return read_edf_recording(path, aliases=aliases)
    if suffix in (".csv", ".txt"):
        return read_csv_recording(path, aliases=aliases)
    raise RecordingError(f"{path.name}: unknown recording format {suffix or '(none)'!r} "
                         "(expected .edf, .bdf or .csv)")
