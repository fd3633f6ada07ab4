"""Service settings (config/services.toml): MQTT broker, InfluxDB store, detector service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detector.engine.config import load_toml_model
from detector.store.influx import StoreSettings
from ingest.paths import config_file


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = "127.0.0.1"
    port: int = Field(18830, gt=0, lt=65536)
    client_id: str = "nightcramp-detector"
    session_expiry_s: int = Field(86400, ge=3600, description="[s] ≥ 1 h so a restart loses nothing")
    credentials_dir: Path | None = Field(None, description="account secrets (mqtt-<account>.secret, mode "
                                         "600), the CA and the broker's password file and ACL; made by "
                                         "'nightcramp stack up'. None: connect without a password")
    tls: bool | None = Field(None, description="TLS to the broker; None: only when it is off loopback")
    tls_port: int = Field(18883, gt=0, lt=65536, description="the broker's TLS listener")
    tls_bind: str = Field("0.0.0.0", description="address of the TLS listener (the plain one stays on "
                          "loopback)")
    ca_file: Path | None = Field(None, description="CA certificate of the broker; default "
                                 "<credentials_dir>/ca.pem")
    max_queued_mb: float = Field(1024.0, gt=0, description="[MB] per client session the broker queues "
                                 "while its client is away or slow (the detector's, mostly); beyond it "
                                 "new QoS 1 messages are dropped, and the collectors' outboxes keep them")
    max_packet_kb: int = Field(1024, gt=0, description="[kB] largest MQTT packet the broker accepts")


class TransportSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["mqtt", "nats"] = Field("mqtt", description="mqtt: Mosquitto and one detector (one "
                                          "machine); nats: a NATS JetStream cluster and detector "
                                          "workers (docs/scaling.md)")


class NatsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servers: list[str] = Field(["nats://127.0.0.1:14222", "nats://127.0.0.1:14223", "nats://127.0.0.1:14224"],
                               min_length=1, description="nats://host:port of cluster members (any one "
                               "is enough to connect; 'nightcramp stack up --cluster N' starts the first N)")
    replicas: int = Field(3, ge=1, le=5, description="copies of the frames stream (R3 survives one server)")
    max_age_h: float = Field(168.0, gt=0, description="[h] frames kept in the stream (a worker outage "
                             "longer than this loses frames not yet stored)")
    partitions: int = Field(64, ge=1, le=1024, description="fixed; must match the servers' mapping")
    lease_s: float = Field(8.0, gt=0, description="[s] a partition's lease lasts this long without a "
                           "heartbeat: a dead worker's partitions move after it")
    heartbeat_s: float = Field(2.0, gt=0, description="[s] between a worker's heartbeats")
    worker_id: str = Field("", description="this worker's name; default host-pid")


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accept_wearers: list[str] = ["*"]
    night_close_silence_s: float = Field(600.0, gt=0)
    tick_s: float = Field(1.0, gt=0)
    state_dir: Path = Field(Path("var/detector"), description="checkpoints of open nights")
    checkpoint_s: float = Field(5.0, gt=0, description="[s] at most this long between checkpoints; "
                                "frames are acknowledged to the broker only after one")
    checkpoint_frames: int = Field(20000, gt=0, description="[-] or after this many frames")
    reorder_s: float = Field(60.0, ge=0, description="[s] of a stream's samples that may arrive ahead of a "
                             "missing earlier frame and wait for it (redelivery after a broker restart "
                             "reorders frames); a gap still open beyond that is signal lost")
    max_night_s: float = Field(64800.0, gt=0, description="[s] frames starting later than this after a "
                               "night's start (a sample counter that jumped, a forged frame) are counted "
                               "as outside_night, stored raw and not analysed")
    metrics_port: int = Field(0, ge=0, lt=65536, description="loopback port of the service's /metrics "
                              "(Prometheus text format); 0: not served")
    clock_tolerance_s: float = Field(30.0, gt=0, description="[s] a frame whose time is further than "
                                     "this from where its sample counter puts it (a sender's wall clock "
                                     "that stepped) is stored at the counter's time; above a crystal's "
                                     "drift over a night (100 ppm × 18 h = 6.5 s)")


class StackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: Path = Path("var")


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="listen address (loopback unless behind a TLS proxy)")
    port: int = Field(18080, gt=0, lt=65536)
    users_db: Path = Field(Path("var/users.sqlite"), description="accounts, assignments, sessions")
    secure_cookies: bool = Field(False, description="set when served over HTTPS")
    login_max_failures: int = Field(5, ge=1, description="wrong passwords per account or address before "
                                    "logins are refused for a while")
    login_lockout_s: float = Field(30.0, gt=0, description="[s] first refusal; doubles with each further "
                                   "failure, up to 15 min")
    max_exports: int = Field(2, ge=1, description="EDF+/PDF exports built at once (each reads a whole night)")


class Services(BaseModel):
    model_config = ConfigDict(extra="forbid")
    transport: TransportSettings = TransportSettings()
    nats: NatsSettings = NatsSettings()
    mqtt: MqttSettings = MqttSettings()
    store: StoreSettings = StoreSettings()
    service: ServiceSettings = ServiceSettings()
    stack: StackSettings = StackSettings()
    dashboard: DashboardSettings = DashboardSettings()


def load_services(path: str | Path | None = None) -> Services:
    """Load config/services.toml (or ``path``); ConfigError names the file and the keys."""
    return load_toml_model(Path(path) if path else config_file("services.toml"), Services)
