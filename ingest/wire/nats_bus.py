"""A NATS connection on an asyncio loop of its own thread, for synchronous callers (the detector,
the simulator's live sender): :meth:`Bus.call` runs a coroutine there and waits for it,
:meth:`Bus.submit` runs one without waiting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any


def inbox_prefix(account: str) -> str:
    """The inbox prefix ``account`` connects with: its replies arrive where only it may read
    (dashboard.nats_auth gives each account read access to its own prefix only)."""
    from ingest.wire.mqtt_client import DETECTOR

    return "_INBOX" if account == DETECTOR else f"_INBOX_{account}"


def login(credentials_dir: Path | str | None, account: str) -> dict[str, Any]:
    """``nats.connect`` keywords for ``account``: its secret from ``credentials_dir`` (the same
    ``mqtt-<account>.secret`` as the MQTT broker's) when there is one, its inbox prefix, and TLS
    checked against the stack's CA (``ca.pem`` there): a cluster with accounts speaks TLS only."""
    import ssl

    from ingest.wire.mqtt_client import read_secret, secret_path

    kw: dict[str, Any] = {"inbox_prefix": inbox_prefix(account)}
    if credentials_dir:
        p = secret_path(Path(credentials_dir), account)
        if p.exists():
            kw |= {"user": account, "password": read_secret(p)}
            ca = Path(credentials_dir) / "ca.pem"
            if ca.exists():
                kw["tls"] = ssl.create_default_context(cafile=str(ca))
    return kw


class Bus:
    """One NATS connection that reconnects for ever (a cluster member restarting is routine)."""

    def __init__(self, servers: list[str], name: str, connect_timeout_s: float = 60.0,
                 on_reconnect: Callable[[], None] | None = None, login: dict[str, Any] | None = None) -> None:
        self.on_reconnect = on_reconnect  # called on the bus loop after each reconnection
        self._login = login or {}
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"nats-{name}", daemon=True)
        self._thread.start()
        self.nc: Any = None
        self.js: Any = None
        try:
            self.call(self._connect(servers, name), timeout=connect_timeout_s)
        except BaseException:
            self._stop_loop()
            raise

    async def _connect(self, servers: list[str], name: str) -> None:
        import nats

        async def reconnected() -> None:
            if self.on_reconnect is not None:
                self.on_reconnect()

        self.nc = await nats.connect(servers=servers, name=name, allow_reconnect=True,
                                     max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=2,
                                     reconnected_cb=reconnected, **self._login)
        self.js = self.nc.jetstream(timeout=10)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run ``coro`` on the bus loop and return its result (``timeout`` in seconds)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        """Run ``coro`` on the bus loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def connected(self) -> bool:
        return bool(self.nc and self.nc.is_connected)

    def close(self) -> None:
        try:
            if self.nc is not None:
                self.call(self.nc.close(), timeout=10)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
