"""The dashboard's ``/metrics`` in Prometheus' text format (prometheus-client): logins by
outcome, requests by status class, exports by kind, and whether InfluxDB answers. Served only
to the machine itself (loopback), as the dashboard's other operator endpoints."""

from __future__ import annotations

import ipaddress

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class DashboardMetrics:
    """One registry per app, so several apps in one process (tests) keep their own counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.logins = Counter("nightcramp_dashboard_logins", "login attempts by outcome",
                              ["result"], registry=self.registry)
        self.requests = Counter("nightcramp_dashboard_requests", "HTTP requests by status class",
                                ["status"], registry=self.registry)
        self.latency = Histogram("nightcramp_dashboard_request_seconds", "time to answer a request",
                                 registry=self.registry,
                                 buckets=(0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0))
        self.exports = Counter("nightcramp_dashboard_exports", "night exports by kind", ["kind"],
                               registry=self.registry)
        self.store_up = Gauge("nightcramp_dashboard_store_up", "1 when InfluxDB answered the last scrape",
                              registry=self.registry)
        # Every label value from the start, so a dashboard shows 0 instead of no data.
        for r in ("ok", "wrong_password", "locked_out"):
            self.logins.labels(r)
        for k in ("csv", "edf", "pdf"):
            self.exports.labels(k)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def is_loopback(host: str) -> bool:
    """Whether a client address is this machine (127.0.0.0/8, ::1); names are not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
