"""A relay board driver written in Python, the way Jumpstarter drivers are written.

Served by examples/python-driver.yaml: `jsn shell -c examples/python-driver.yaml`, then
`jsn describe`, `jsn call relay.on`, `jsn call relay.set 2 true`, `jsn call relay.status`.
It simulates the board unless `port` names a serial device that speaks the common
"RELAY <n> ON|OFF" line protocol of cheap USB relay boards.
"""

import asyncio
from collections.abc import Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from jsn_driver import Driver, export, exportstream  # Jumpstarter: from jumpstarter.driver import …


@dataclass(kw_only=True)
class Relay(Driver):
    """A board of relays (simulated unless port is set)."""

    channels: int = 4
    port: str = ""
    closed: list = field(default_factory=list)

    def __post_init__(self):
        if hasattr(super(), "__post_init__"):
            super().__post_init__()
        self.closed = [False] * self.channels

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_relay.client.RelayClient"

    def reset(self):
        """Open every relay: the board's safe state, at the start and end of each lease."""
        self._apply([False] * self.channels)

    def _apply(self, state):
        for i, (old, new) in enumerate(zip(self.closed, state)):
            if old != new and self.port:
                with open(self.port, "w") as f:
                    f.write("RELAY %d %s\n" % (i, "ON" if new else "OFF"))
        self.closed = list(state)
        self.logger.info("relays now %s", "".join("1" if c else "0" for c in self.closed))

    @export
    def on(self) -> None:
        """Close every relay."""
        self._apply([True] * self.channels)

    @export
    def off(self) -> None:
        """Open every relay."""
        self._apply([False] * self.channels)

    @export
    def set(self, channel: int, closed: bool) -> None:
        """Close or open one relay.

        Args:
            channel: relay number, from 0
            closed: true closes the relay, false opens it
        """
        if not 0 <= channel < self.channels:
            raise ValueError("no relay %d: the board has %d (0 to %d)" % (channel, self.channels, self.channels - 1))
        state = list(self.closed)
        state[channel] = closed
        self._apply(state)

    @export
    def status(self) -> str:
        """The relays as a string of 0 (open) and 1 (closed), relay 0 first."""
        return "".join("1" if c else "0" for c in self.closed)

    @export
    async def pulse(self, channel: int, seconds: float = 0.5) -> None:
        """Close one relay for a while, then open it again.

        Args:
            channel: relay number, from 0
            seconds: how long it stays closed
        """
        self.set(channel, True)
        await asyncio.sleep(seconds)
        self.set(channel, False)

    @export
    def scan(self) -> Generator[str, None, None]:
        """Stream each relay's state as "<n>=open|closed"."""
        for i, c in enumerate(self.closed):
            yield "%d=%s" % (i, "closed" if c else "open")

    @exportstream
    @asynccontextmanager
    async def loopback(self):
        """A byte stream that sends back everything it receives (a serial loopback plug)."""
        yield _Loopback()


class _Loopback:
    def __init__(self):
        self.q = asyncio.Queue()

    async def send(self, data):
        await self.q.put(bytes(data))

    async def send_eof(self):
        await self.q.put(b"")

    async def receive(self):
        return await self.q.get()
