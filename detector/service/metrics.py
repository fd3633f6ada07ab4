"""The detector service's ``/metrics`` in Prometheus' text format (prometheus-client): frames
taken in, how far the analysis lags behind the newest samples, the spool, open nights, and
every counter the service keeps (the same ones ``status.json`` and the stop log show).

Read at scrape time from the service's own state (a custom collector), so no code path needs to
remember to update a metric; one registry per service, so two services in one process (tests)
do not mix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from detector.service.live import DetectorService

log = logging.getLogger(__name__)


class ServiceCollector(Collector):
    def __init__(self, service: DetectorService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        s = self.service
        frames = CounterMetricFamily("nightcramp_detector_frames",
                                     "sensor frames taken in (rate() = frames/s)")
        frames.add_metric([], float(s.stats.get("frames", 0)))
        yield frames
        events = CounterMetricFamily("nightcramp_detector_events_published", "live events published")
        events.add_metric([], float(s.stats.get("events_published", 0)))
        yield events
        other = CounterMetricFamily("nightcramp_detector_counts",
                                    "every counter the service keeps, by name", labels=["what"])
        for k, v in sorted(s.stats.items()):
            other.add_metric([k], float(v))
        yield other
        nights = GaugeMetricFamily("nightcramp_detector_open_nights", "nights being analysed now")
        nights.add_metric([], float(len(s.nights)))
        yield nights
        now = time.time()
        lag = GaugeMetricFamily("nightcramp_detector_lag_seconds",
                                "wall clock minus the newest sample analysed, per open night",
                                labels=["wearer"])
        for wearer, night in sorted(s.nights.items()):
            lag.add_metric([wearer], max(0.0, now - night.end_ns() / 1e9))
        yield lag
        spool = GaugeMetricFamily("nightcramp_detector_spool_files",
                                  "writes waiting on disk for InfluxDB")
        spool.add_metric([], float(s.store.spooled()))
        yield spool
        full = GaugeMetricFamily("nightcramp_detector_spool_full",
                                 "1 while the spool is full (frames not acknowledged)")
        full.add_metric([], 1.0 if s.spool_full_since is not None else 0.0)
        yield full
        unwritten = GaugeMetricFamily("nightcramp_detector_nights_unwritten",
                                      "closed nights the store has not taken yet")
        unwritten.add_metric([], float(len(s.unwritten)))
        yield unwritten


def serve_metrics(service: DetectorService, host: str, port: int):
    """Start ``http://host:port/metrics`` for ``service``; returns the server (``shutdown()``)."""
    reg = CollectorRegistry()
    reg.register(ServiceCollector(service))
    server, _thread = start_http_server(port, addr=host, registry=reg)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return server
