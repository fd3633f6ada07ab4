"""A second scorer's events on a stored night (a sleep lab's PSG scoring a clinician imported),
kept beside nightcramp's own events so the agreement can be shown with the night.

One ``scored`` point per scored event and one ``scoring`` point per night naming the version
readers use; importing again replaces the night's scoring (new points first, then the night's
record, then the old version goes), as analyses are replaced (detector.store.nights)."""

from __future__ import annotations

import datetime as dt
import json

from detector.store.influxql import lit, new_version, night_ns, point
from detector.store.nights import NightStore
from ingest.recordings.scoring import ScoredEvent, Scoring


class ScoringStore(NightStore):
    """Imported scorings of nights (times as UTC datetimes, as the scoring reader gives them)."""

    def write_scoring(self, wearer: str, night: str, sc: Scoring, *, by: str,
                      at: dt.datetime | None = None) -> bool:
        """Store ``sc`` as the second scorer of a night (``by``: who imported it). True when
        stored now, False when spooled for later."""
        version = new_version()
        base = night_ns(night)
        lines = []
        for i, e in enumerate(sc.events):
            tags = {"wearer": wearer, "night": night, "kind": e.kind, "side": e.side or "none", "v": version}
            fields = {"label": e.label, "start": e.start.isoformat(), "end": e.end.isoformat()}
            # the index keeps two events of one kind and side that start together apart
            lines.append(point("scored", tags, fields, base + i))
        at = at or dt.datetime.now(dt.UTC)
        lines.append(point("scoring", {"wearer": wearer, "night": night},
                           {"source": sc.source, "by": by, "at": at.isoformat(), "version": version,
                            "events": len(sc.events), "unmapped": json.dumps(sc.unmapped)}, base))
        ok = self.write("\n".join(lines))
        if ok:
            self._prune(wearer, night, ("scored",), keep=version)
        return ok

    def scoring_info(self, wearer: str, night: str) -> dict | None:
        """Who imported a night's scoring, when, from which file: source, by, at, events,
        version; None when the night has none."""
        rows = self.query(f"SELECT * FROM \"scoring\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                          f"\"night\" = '{lit(night)}'")
        for s in rows:
            for row in s.get("values", []):
                d = dict(zip(s["columns"], row, strict=True))
                return {k: d.get(k) for k in ("source", "by", "at", "events", "version", "unmapped")}
        return None

    def scoring(self, wearer: str, night: str, info: dict | None = None) -> Scoring | None:
        """A night's imported scoring, as read from its file; None when there is none.
        ``info``: its :meth:`scoring_info`, when the caller has it already (saves a query)."""
        info = info or self.scoring_info(wearer, night)
        if info is None:
            return None
        events = []
        for s in self.query(f"SELECT * FROM \"scored\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                            f"\"night\" = '{lit(night)}' AND \"v\" = '{lit(info['version'] or '')}'"):
            for row in s.get("values", []):
                d = dict(zip(s["columns"], row, strict=True))
                events.append((d["time"], ScoredEvent(
                    label=d["label"], kind=d["kind"], start=dt.datetime.fromisoformat(d["start"]),
                    end=dt.datetime.fromisoformat(d["end"]),
                    side=None if d["side"] == "none" else d["side"])))
        return Scoring(source=info["source"], events=[e for _, e in sorted(events, key=lambda p: p[0])],
                       unmapped=json.loads(info["unmapped"] or "{}"))
