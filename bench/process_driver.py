# The Python side of the process benchmark (process.go): the same methods as its Go driver.
from contextlib import contextmanager
from dataclasses import dataclass

from jsn_driver import Driver, export, exportstream


class _Source:
    def __init__(self, n):
        self.left = n
        self.block = b"\x5a" * (512 << 10)

    def receive(self):
        if self.left <= 0:
            return b""
        k = min(self.left, len(self.block))
        self.left -= k
        return self.block if k == len(self.block) else self.block[:k]

    def send(self, data):
        pass


@dataclass(kw_only=True)
class Bench(Driver):
    on_: bool = False

    @export
    def on(self) -> None:
        """switch on"""
        self.on_ = True

    @exportstream
    @contextmanager
    def source(self, n: int):
        """n bytes"""
        yield _Source(n)
