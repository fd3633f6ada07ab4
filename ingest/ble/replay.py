"""A stand-in BLE radio: a bleak backend that replays recorded notification bytes.

No Bluetooth adapter exists on CI machines. This backend plugs into bleak's public
``BleakClient(..., backend=ReplayBackend)`` and hands the recorded packet bytes to bleak's own
notification path, so the collector and its decoder run exactly as with a real sensor. Nothing
else is simulated: the bytes are those of a capture file (``<stream> <hex>`` per line).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection

from ingest.ble.clock import Unwrapper
from ingest.ble.profile import DeviceProfile


def read_capture(path: Path) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            stream, hexbytes = line.split()
            out.setdefault(stream, []).append(bytes.fromhex(hexbytes))
    return out


def kept_packets(packets: list[bytes], loss: float, stream: str) -> list[bytes]:
    """The packets a radio losing ``loss`` of them delivers (the same ones every time)."""
    if loss <= 0:
        return packets
    import numpy as np

    rng = np.random.default_rng(sum(stream.encode()))
    return [p for p, u in zip(packets, rng.random(len(packets)), strict=True) if u >= loss]


class ReplayBackend(BaseBleakClient):
    """Replays ``capture`` for ``profile`` at ``speed`` x the sensor clock.

    ``silence_after_s``: stop notifying after this much sensor time while staying "connected"
    (what a stalled link looks like). ``battery_pct`` is what the Battery Level reads. ``loss``:
    the share of packets the radio drops (chosen by :func:`kept_packets`, reproducible).
    """

    def __init__(self, address_or_ble_device, *, disconnected_callback=None, timeout: float = 10.0,
                 capture: Path, profile: DeviceProfile, speed: float = 1.0,
                 silence_after_s: float | None = None, battery_pct: int = 87, loss: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self.profile, self.speed, self.silence_after_s = profile, speed, silence_after_s
        self.battery_pct = battery_pct
        self.packets = {k: kept_packets(v, loss, k) for k, v in read_capture(capture).items()}
        self.writes: list[tuple[str, bytes]] = []
        self._connected = False
        self._tasks: list[asyncio.Task] = []

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def mtu_size(self) -> int:
        return 247

    @property
    def name(self) -> str:
        return f"{self.profile.name} (replay)"

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        services = BleakGATTServiceCollection()
        svc = BleakGATTService(None, 1, self.profile.service_uuid)
        services.add_service(svc)
        handle = 2
        chars: list[tuple[str, list[Any]]] = [(s.uuid, ["notify"]) for s in self.profile.streams.values()]
        chars += [(self.profile.control_uuid, ["read", "write"]),
                  (self.profile.battery_uuid, ["read", "notify"])]
        for uuid, props in chars:
            services.add_characteristic(BleakGATTCharacteristic(None, handle, uuid, props, lambda: 244, svc))
            handle += 1
        self.services = services
        self._connected = True

    async def disconnect(self) -> None:
        for t in self._tasks:
            t.cancel()
        self._tasks.clear()
        was, self._connected = self._connected, False
        if was and self._disconnected_callback:
            self._disconnected_callback()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback, **kwargs: Any) -> None:
        stream = next(k for k, s in self.profile.streams.items() if s.uuid == characteristic.uuid)
        self._tasks.append(asyncio.create_task(self._replay(self.packets.get(stream, []), callback)))

    async def _replay(self, packets: list[bytes], callback) -> None:
        clock = Unwrapper(32)
        loop = asyncio.get_running_loop()
        t_first = None
        wall0 = loop.time()
        for p in packets:
            t_us = clock(int.from_bytes(p[4:8], "little"))
            t_first = t_us if t_first is None else t_first
            t = (t_us - t_first) / 1e6
            if self.silence_after_s is not None and t >= self.silence_after_s:
                return  # the link stalls: connected, but nothing arrives
            delay = wall0 + t / self.speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            callback(bytearray(p))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        return None

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any) -> bytearray:
        if characteristic.uuid == self.profile.battery_uuid:
            return bytearray([self.battery_pct])
        return bytearray(b"\x01\xe8\x03\x32\x00")  # streaming, 1000 Hz, 50 Hz

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data, response: bool) -> None:
        self.writes.append((characteristic.uuid, bytes(data)))

    async def read_gatt_descriptor(self, descriptor: Any, **kwargs: Any) -> bytearray:
        return bytearray()

    async def write_gatt_descriptor(self, descriptor: Any, data) -> None:
        return None
