"""Nights in the store: analyses (events, summary, recording, hypnogram), advice links,
check-ins and the clinician's review trail. Re-writing a night replaces it: points carry a
version, and the night's summary names the version readers use."""

from __future__ import annotations

import datetime as dt
import json
import logging

from detector.store import schema as store_schema
from detector.store.influxql import iso_ns, lit, new_version, night_ns, point
from detector.store.transport import InfluxTransport, StoreError

log = logging.getLogger("nightcramp.store")

_ADVICE_KEYS = ("rule", "title", "text", "level", "evidence", "source", "clinician")


class NightConflict(StoreError):
    """A night is stored with a longer recording than the one that would replace it."""


class NightStore(InfluxTransport):
    """Analyses, advice, check-ins and reviews of wearers' nights."""

    def write_analysis(self, wearer: str, night: str, analysis_json: dict, *,
                       replace_longer: bool = False) -> bool:
        """Events and the night summary of one analysis; re-writing the night replaces it.

        The new points are written first, under a new version, and the night's summary point
        (written last) names the version readers use; only then are older versions removed. So a
        failed or refused write leaves the stored night as it was. A night stored with a longer
        recording is not replaced by a shorter one (a late fragment) unless ``replace_longer``:
        NightConflict. True when stored now, False when spooled for later.
        """
        start_ns = iso_ns(analysis_json["recording"]["start"])
        duration = float(analysis_json["recording"]["duration_s"])
        if not replace_longer:
            old = next(iter(self.nights(wearer, night)), None)
            if old is not None and float(old["duration_s"] or 0.0) > duration + 1.0:
                raise NightConflict(
                    f"night {night} of {wearer} is stored with {old['duration_s']:.0f} s; a "
                    f"{duration:.0f}-s recording does not replace it")
        version = new_version()
        lines = []
        for e in analysis_json["events"]:
            tags = {"wearer": wearer, "night": night, "kind": e["kind"], "side": e.get("side") or "none",
                    "channel": e.get("channel") or "", "v": version}
            fields = {"start_s": e["start_s"], "end_s": e["end_s"], "duration_s": e["duration_s"],
                      "confidence": e["confidence"], "subtype": e.get("subtype", ""),
                      "features": json.dumps(e.get("features", {}))}
            lines.append(point("event", tags, fields, start_ns + round(e["start_s"] * 1e9)))
        lines += _advice_lines(wearer, night, start_ns, analysis_json.get("advice", []), version)
        s = analysis_json["summary"]
        fields = {k: s.get(k) for k in store_schema.SUMMARY_FIELDS}
        fields["json"] = json.dumps(s)
        rec = {k: v for k, v in analysis_json["recording"].items() if k != "annotations"}
        fields["recording"] = json.dumps(rec)
        fields["notes"] = json.dumps(analysis_json.get("notes", []))
        fields["duration_s"] = duration
        fields["version"] = version
        fields["advice_version"] = version
        if "hypnogram" in analysis_json:  # compact: one digit per epoch (1 wake)
            h = analysis_json["hypnogram"]
            fields["hypnogram"] = json.dumps({"epoch_s": h["epoch_s"], "wake": "".join(map(str, h["wake"]))})
        lines.append(point("night", {"wearer": wearer, "night": night}, fields, start_ns))
        ok = self.write("\n".join(lines))
        if ok:
            self._prune(wearer, night, ("event", "advice"), keep=version)
            self._night_stored(wearer, night, start_ns, start_ns + int(duration * 1e9) + 10**9)
        return ok

    def _night_stored(self, wearer: str, night: str, t0_ns: int, t1_ns: int) -> None:
        """Called once a night's analysis is stored, with the span it covers (ns): the store
        that also holds the samples builds their rollups here (detector.store.influx)."""

    def _prune(self, wearer: str, night: str, measurements: tuple[str, ...], keep: str) -> None:
        """Remove a night's points of versions other than ``keep`` (after the new ones are
        stored). Failing here only leaves stale points that readers ignore; the next write of the
        night removes them."""
        who = f"\"wearer\" = '{lit(wearer)}' AND \"night\" = '{lit(night)}'"
        for m in measurements:
            try:
                stale = {r[1] for r in self._rows(f'SHOW TAG VALUES FROM "{m}" WITH KEY = "v" WHERE {who}')}
                stale.discard(keep)
                stale.add("")  # points from before versions existed carry no version
                for v in sorted(stale):
                    self._q(f"DELETE FROM \"{m}\" WHERE {who} AND \"v\" = '{lit(v)}'", post=True)
            except StoreError as exc:
                log.warning("stale %s points of night %s of %s not removed yet: %s", m, night, wearer, exc)

    def _versions(self, wearer: str, night: str | None = None) -> dict[str, tuple[str, str]]:
        """night -> (events version, advice version) of a wearer's stored nights."""
        one = f" AND \"night\" = '{lit(night)}'" if night else ""
        out = {}
        for s in self.query(f"SELECT \"version\", \"advice_version\", \"night\" FROM \"night\" "
                            f"WHERE \"wearer\" = '{lit(wearer)}'{one}"):
            for _, v, av, n in s["values"]:
                out[n] = (v or "", av if av is not None else (v or ""))
        return out

    def write_advice(self, wearer: str, night: str, advice: list[dict]) -> bool:
        """Replace a night's advice links (night -> rule ids, with the facts that fired them):
        new points first, then the night names them, then the old ones go."""
        n = next(iter(self.nights(wearer, night)), None)
        if n is None:
            raise StoreError(f"no stored night {night} for {wearer}")
        version = new_version()
        lines = _advice_lines(wearer, night, n["start_ns"], advice, version)
        # Same series and time as the night's point: InfluxDB merges the field into it.
        lines.append(point("night", {"wearer": wearer, "night": night}, {"advice_version": version},
                            n["start_ns"]))
        ok = self.write("\n".join(lines))
        if ok:
            self._prune(wearer, night, ("advice",), keep=version)
        return ok

    def advice(self, wearer: str, night: str) -> list[dict]:
        """A night's stored advice items, see-a-clinician first (as evaluated)."""
        version = self._versions(wearer, night).get(night, ("", ""))[1]
        res = self.query(f"SELECT * FROM \"advice\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                         f"\"night\" = '{lit(night)}' AND \"v\" = '{lit(version)}'")
        out = []
        for s in res:
            for row in s["values"]:
                d = dict(zip(s["columns"], row, strict=True))
                item = {k: d[k] for k in _ADVICE_KEYS}
                out.append((d["order"], item | {"facts": json.loads(d["facts"] or "{}")}))
        return [a for _, a in sorted(out, key=lambda x: x[0])]

    def advice_links(self, wearer: str) -> dict[str, list[str]]:
        """Rule ids per night, for every stored night of the wearer."""
        versions = self._versions(wearer)
        out: dict[str, list[str]] = {}
        for s in self.query(f"SELECT \"order\", \"rule\", \"night\", \"v\" FROM \"advice\" "
                            f"WHERE \"wearer\" = '{lit(wearer)}'"):
            for _, _, rule, night, v in sorted(s["values"], key=lambda r: r[1]):
                if night in versions and (v or "") == versions[night][1]:
                    out.setdefault(night, []).append(rule)
        return out

    def write_diary(self, wearer: str, night: str, part: str, answers: dict) -> bool:
        """Store one check-in (part ``evening`` or ``morning``) of a night, replacing the last one.

        Kept at midnight UTC of the night's date, so it can be written before the night exists.
        """
        if part not in ("evening", "morning"):
            raise ValueError(f"diary part must be evening or morning, not {part!r}")
        ts = night_ns(night) + (0 if part == "evening" else 1)
        fields: dict[str, object] = {"json": json.dumps(answers)}
        for k, v in answers.items():
            if isinstance(v, bool | int | float | str):
                fields[k] = v
            elif isinstance(v, list):
                fields[k] = ",".join(map(str, v))
        # Same series and time as the last check-in of that part: the point is replaced field by
        # field, never deleted first (a failed write must not cost the last answers). ``json``
        # holds every answer and is what is read back.
        return self.write(point("diary", {"wearer": wearer, "night": night, "part": part}, fields, ts))

    def diaries(self, wearer: str) -> dict[str, dict[str, dict]]:
        """Every stored check-in of a wearer: night -> part -> answers."""
        out: dict[str, dict[str, dict]] = {}
        for s in self.query(f"SELECT \"json\", \"night\", \"part\" FROM \"diary\" "
                            f"WHERE \"wearer\" = '{lit(wearer)}'"):
            for _, js, night, part in s["values"]:
                out.setdefault(night, {})[part] = json.loads(js)
        return out

    def nights(self, wearer: str, night: str | None = None) -> list[dict]:
        """Stored nights (or the one ``night``): start, duration, summary, recording, notes."""
        one = f" AND \"night\" = '{lit(night)}'" if night else ""
        rows = self.query(f"SELECT \"json\", \"duration_s\", \"night\", \"recording\", \"notes\" "
                          f"FROM \"night\" WHERE \"wearer\" = '{lit(wearer)}'{one}")
        out = []
        for s in rows:
            for t, js, dur, night, rec, notes in s["values"]:
                out.append({"start_ns": t, "duration_s": dur, "night": night, "summary": json.loads(js),
                            "recording": json.loads(rec or "{}"), "notes": json.loads(notes or "[]")})
        return sorted(out, key=lambda n: n["night"])

    def recording(self, wearer: str, night: str) -> dict | None:
        """A stored night's recording description (start, duration, channels), or None."""
        rows = self._rows(f"SELECT \"recording\" FROM \"night\" WHERE \"wearer\" = '{lit(wearer)}' "
                          f"AND \"night\" = '{lit(night)}'")
        return json.loads(rows[0][1]) if rows and rows[0][1] else None

    def hypnogram(self, wearer: str, night: str) -> dict | None:
        """Per-epoch sleep/wake of a stored night: {"epoch_s", "wake": [0|1, …]} or None."""
        rows = self._rows(f"SELECT \"hypnogram\" FROM \"night\" WHERE \"wearer\" = '{lit(wearer)}' "
                          f"AND \"night\" = '{lit(night)}'")
        if not rows or not rows[0][1]:
            return None
        h = json.loads(rows[0][1])
        return {"epoch_s": h["epoch_s"], "wake": [int(c) for c in h["wake"]]}

    def write_review(self, wearer: str, night: str, review: dict) -> bool:
        """Append one review action (audit trail: who, when, what) for an event of a night."""
        tags = {"wearer": wearer, "night": night, "event": review["event"]}
        fields = {k: v for k, v in review.items() if k not in tags and v is not None}
        at = dt.datetime.fromisoformat(review["at"])
        return self.write(point("review", tags, fields, int(at.timestamp() * 1e9)))

    def reviewed_nights(self, wearer: str) -> set[str]:
        """The nights of ``wearer`` that have at least one review action."""
        return {r[1] for r in self._rows(f'SHOW TAG VALUES FROM "review" WITH KEY = "night" '
                                         f"WHERE \"wearer\" = '{lit(wearer)}'")}

    def reviews(self, wearer: str, night: str) -> list[dict]:
        """A night's review actions, oldest first."""
        out = []
        for s in self.query(f"SELECT * FROM \"review\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                            f"\"night\" = '{lit(night)}'"):
            for row in s["values"]:
                d = {k: v for k, v in zip(s["columns"], row, strict=True) if v is not None}
                d.pop("time", None)
                out.append(store_schema.read_back("review", d))
        return sorted(out, key=lambda d: d["at"])

    def analysis(self, wearer: str, night: str) -> dict | None:
        """A stored night as an analysis object (recording, events, summary, notes)."""
        n = next(iter(self.nights(wearer, night)), None)
        if n is None:
            return None
        return {"schema": "nightcramp.analysis/1", "recording": n["recording"],
                "events": self.events(wearer, night), "summary": n["summary"], "notes": n["notes"],
                "advice": self.advice(wearer, night)}

    def events(self, wearer: str, night: str) -> list[dict]:
        """A stored night's events (the version its summary names), in time order."""
        version = self._versions(wearer, night).get(night, ("", ""))[0]
        res = self.query(f"SELECT * FROM \"event\" WHERE \"wearer\" = '{lit(wearer)}' AND "
                         f"\"night\" = '{lit(night)}' AND \"v\" = '{lit(version)}'")
        out = []
        for s in res:
            cols = s["columns"]
            for row in s["values"]:
                d = dict(zip(cols, row, strict=True))
                d.pop("v", None)
                d["features"] = json.loads(d.get("features") or "{}")
                out.append(store_schema.read_back("event", d))
        return sorted(out, key=lambda d: (d["start_s"], d["kind"]))


def _advice_lines(wearer: str, night: str, start_ns: int, advice: list[dict], version: str) -> list[str]:
    out = []
    for k, a in enumerate(advice):
        tags = {"wearer": wearer, "night": night, "rule": a["rule"], "level": a["level"], "v": version}
        fields = {"order": k, "title": a["title"], "text": a["text"], "evidence": a.get("evidence", ""),
                  "source": a["source"], "clinician": a.get("clinician", ""),
                  "facts": json.dumps(a.get("facts", {}))}
        out.append(point("advice", tags, fields, start_ns))
    return out
