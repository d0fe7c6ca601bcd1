# Test drivers written the way Jumpstarter's documentation writes drivers: a dataclass, @export
# methods (plain, async, generators), @exportstream byte streams, client(). Only the import line
# differs from a Jumpstarter driver.
import asyncio
import os
import sys
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from jsn_driver import Driver, export, exportstream


class _Echo:
    """An anyio-like byte stream that sends back what it receives."""

    def __init__(self):
        self.q = asyncio.Queue()

    async def send(self, data):
        await self.q.put(bytes(data))

    async def send_eof(self):
        await self.q.put(b"")

    async def receive(self):
        return await self.q.get()


class _Source:
    """A sync stream that produces n bytes, then ends; what it receives is dropped."""

    def __init__(self, n):
        self.left = n
        self.block = bytes(range(256)) * 1024

    def receive(self):
        if self.left <= 0:
            return b""
        k = min(self.left, len(self.block))
        self.left -= k
        return self.block[:k]

    def send(self, data):
        pass


@dataclass(kw_only=True)
class Relay(Driver):
    """A relay board with a few channels."""

    channels: int = 4
    label: str = "bench"
    state: list = field(default_factory=list)

    def __post_init__(self):
        if hasattr(super(), "__post_init__"):
            super().__post_init__()
        self.state = [False] * self.channels
        self.resets = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_relay.client.RelayClient"

    def reset(self):
        self.resets += 1
        self.state = [False] * self.channels

    @export
    def on(self) -> None:
        """Close every relay."""
        self.state = [True] * self.channels

    @export
    def set(self, channel: int, closed: bool) -> str:
        """Set one relay.

        Args:
            channel: relay number, from 0
            closed: true closes it
        """
        if not 0 <= channel < self.channels:
            raise ValueError("no channel %d: the board has %d" % (channel, self.channels))
        self.state[channel] = closed
        return "%s:%d=%s" % (self.label, channel, "closed" if closed else "open")

    @export
    def get(self, channel: int) -> bool:
        """Whether a relay is closed."""
        return self.state[channel]

    @export
    def echo(self, value):
        """Return the argument (any type)."""
        return value

    @export
    def resets_seen(self) -> int:
        return self.resets

    @export
    async def slow_echo(self, text: str, delay: float = 0.0) -> str:
        """Echo text after a delay, on the event loop."""
        await asyncio.sleep(delay)
        return text

    @export
    def count(self, n: int) -> Generator[int, None, None]:
        """Count from 0 to n-1."""
        for i in range(n):
            yield i

    @export
    async def acount(self, n: int) -> AsyncGenerator[str, None]:
        """Count, asynchronously, as strings."""
        for i in range(n):
            await asyncio.sleep(0)
            yield str(i)

    @export
    def fail(self) -> None:
        """Raise."""
        raise RuntimeError("relay 7 is welded shut")

    @export
    def crash(self) -> None:
        """Kill the process."""
        print("about to crash", file=sys.stderr, flush=True)
        os._exit(3)

    @export
    def hang(self) -> None:
        """Never return (blocks the whole driver)."""
        time.sleep(3600)

    @export
    async def never(self) -> None:
        """Never answer (the driver keeps serving)."""
        await asyncio.Event().wait()

    @export
    def garbage(self) -> None:
        """Write something that is not a frame on the protocol socket."""
        os.write(3, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 4)
        time.sleep(3600)

    @export
    def environ(self) -> dict:
        """The process's environment."""
        return dict(os.environ)

    @exportstream
    @asynccontextmanager
    async def loop(self):
        """Send back every byte received."""
        yield _Echo()

    @exportstream
    @contextmanager
    def source(self, n: int):
        """Produce n bytes."""
        yield _Source(n)


@dataclass(kw_only=True)
class PowerSwitch(Driver):
    """A power switch in Python that implements jsn.power.v1, so `jsn power` drives it."""

    jsn_interface = "jsn.power.v1"
    state: str = "off"

    @export
    def on(self) -> None:
        """switch the power on"""
        self.state = "on"

    @export
    def off(self) -> None:
        """switch the power off"""
        self.state = "off"

    @export
    def status(self) -> str:
        """the power state"""
        return self.state
