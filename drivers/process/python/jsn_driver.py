"""jsn_driver: write jsn drivers in Python, in Jumpstarter's style.

A driver is a class; its methods marked @export are served to jsn clients::

    from dataclasses import dataclass
    from jsn_driver import Driver, export, exportstream

    @dataclass(kw_only=True)
    class Relay(Driver):
        port: str = "/dev/ttyACM0"          # set from the export node's config options

        @classmethod
        def client(cls) -> str:             # accepted, as in Jumpstarter; jsn does not use it
            return "my_relay.client.RelayClient"

        @export
        def on(self) -> None:
            "Close the relay."

        @export
        async def read(self, channel: int) -> float:   # async methods run on an event loop
            ...

        @export
        def watch(self, n: int):            # generators are server streams
            yield 1

        @exportstream
        @asynccontextmanager
        async def console(self):            # byte streams yield an object with send/receive
            yield stream

The exporter runs the driver with ``command: [python3, -m, jsn_driver, relay.py]`` (the module is
on PYTHONPATH: the exporter puts it there) or any program whose file ends with
``jsn_driver.run(Relay)``. Type hints become the declared argument types, docstrings the docs.
Only the standard library and msgpack (Debian: python3-msgpack) are needed. The protocol is in
docs/external-drivers.md of the jsn repository.

Plain methods run one at a time on the loop that reads the socket (the fastest path: keep them
short, or make them async); async methods run concurrently on an asyncio event loop in a
thread of its own; generators and byte streams run in threads of their own.
"""

import asyncio
import collections.abc
import contextlib
import dataclasses
import datetime
import importlib.util
import inspect
import logging
import mmap
import os
import queue
import re
import socket
import struct
import sys
import threading
import typing

import msgpack

__all__ = ["Driver", "DriverError", "export", "exportstream", "run", "PROTOCOL_VERSION"]

PROTOCOL_VERSION = 1

# Frame types (docs/external-drivers.md).
INIT, HELLO, OPEN, RESET, CLOSE, CALL, RESULT, ERROR, STREAM, ITEM, DATA, CREDIT, FIN, CANCEL, PING, PONG, SHM, SHMDATA = range(1, 19)

_HDR = struct.Struct(">IBI")
_WINDOW = 8 << 20  # credit granted to the exporter per byte stream
_CHUNK = 512 << 10  # largest DATA frame sent


class DriverError(Exception):
    """An error with a jsn error code: NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION,
    PERMISSION_DENIED, DEADLINE_EXCEEDED, UNAVAILABLE, UNIMPLEMENTED or INTERNAL."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def export(fn):
    """Marks a method as served: a plain or async method is a call, a generator (sync or async)
    a server stream."""
    fn._jsn_export = True
    return fn


def exportstream(fn):
    """Marks a method as a byte stream: it is a context manager (sync or async) that yields an
    object with send(data) and receive() (sync or async, as anyio's byte streams)."""
    fn._jsn_export = "byte-stream"
    return fn


@dataclasses.dataclass(kw_only=True)
class Driver:
    """Base class of drivers. Subclasses are dataclasses whose fields are the driver's options.

    jsn calls open() when the exporter starts the process, reset() at the start and end of
    every lease, close() before it stops it; each may be async."""

    children: dict = dataclasses.field(default_factory=dict)

    # The interface the driver implements, e.g. "jsn.power.v1" (optional).
    jsn_interface: typing.ClassVar[str] = ""

    def __post_init__(self):
        self.logger = logging.getLogger(type(self).__name__)

    @classmethod
    def client(cls) -> str:
        return ""

    def open(self):
        pass

    def reset(self):
        pass

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------
# Declaration: type hints and docstrings.

_TYPES = {str: "string", int: "int", float: "float", bool: "bool", bytes: "bytes",
          bytearray: "bytes", datetime.timedelta: "duration", type(None): ""}


def _type_name(hint):
    if hint is inspect.Parameter.empty or hint is typing.Any:
        return "any"
    if hint in _TYPES:
        return _TYPES[hint]
    if isinstance(hint, str):
        return {"str": "string", "int": "int", "float": "float", "bool": "bool", "bytes": "bytes",
                "None": ""}.get(hint, "any")
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _type_name(args[0])
    return "any"


def _optional(hint):
    return type(None) in typing.get_args(hint)


def _item_type(hint):
    origin = typing.get_origin(hint)
    if origin in (collections.abc.Generator, collections.abc.Iterator, collections.abc.Iterable,
                  collections.abc.AsyncGenerator, collections.abc.AsyncIterator, collections.abc.AsyncIterable):
        args = typing.get_args(hint)
        if args:
            return _type_name(args[0])
    return "any"


def _doc(fn):
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n")[0].replace("\n", " ").strip()
    argdocs = {}
    m = re.search(r"^(Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.M)
    if m:
        for line in m.group(2).splitlines():
            am = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
            if am:
                argdocs[am.group(1)] = am.group(2).strip()
    return summary, argdocs


def _unwrap(fn):
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    return fn


class _Method:
    def __init__(self, name, bound, kind):
        self.name = name
        self.bound = bound
        self.kind = kind
        orig = _unwrap(bound.__func__ if hasattr(bound, "__func__") else bound)
        self.is_async = inspect.iscoroutinefunction(orig)
        self.is_asyncgen = inspect.isasyncgenfunction(orig)
        try:
            hints = typing.get_type_hints(orig)
        except Exception:
            hints = getattr(orig, "__annotations__", {})
        sig = inspect.signature(orig)
        summary, argdocs = _doc(orig)
        self.args = []
        self.converters = []
        for p in list(sig.parameters.values())[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
                continue
            hint = hints.get(p.name, inspect.Parameter.empty)
            a = {"name": p.name, "type": _type_name(hint)}
            if a["type"] == "":
                a["type"] = "any"
            if p.default is not p.empty or _optional(hint):
                a["optional"] = True
            if p.name in argdocs:
                a["doc"] = argdocs[p.name]
            self.args.append(a)
            self.converters.append(_duration if a["type"] == "duration" else None)
        ret = hints.get("return", inspect.Parameter.empty)
        if kind == "server-stream":
            returns = _item_type(ret)
        elif kind == "byte-stream":
            returns = ""
        else:
            returns = _type_name(ret)
        self.decl = {"name": name, "kind": kind, "doc": summary, "args": self.args, "returns": returns}
        self.convert = any(self.converters)

    def prepare(self, args):
        if self.convert:
            args = [c(a) if c and a is not None else a for c, a in zip(self.converters, args)] + list(args[len(self.converters):])
        return args


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(v):
    """A Go duration on the wire (int nanoseconds or "1m30s") as a timedelta."""
    if isinstance(v, datetime.timedelta):
        return v
    if isinstance(v, (int, float)):
        return datetime.timedelta(microseconds=v / 1000)
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", str(v)):
        total += float(num) * _UNITS[unit]
    return datetime.timedelta(seconds=total)


def _declare(instance):
    methods = {}
    for name in dir(type(instance)):
        attr = getattr(type(instance), name, None)
        mark = getattr(attr, "_jsn_export", None)
        if mark is None:
            continue
        orig = _unwrap(attr)
        if mark == "byte-stream":
            kind = "byte-stream"
        elif inspect.isgeneratorfunction(orig) or inspect.isasyncgenfunction(orig):
            kind = "server-stream"
        else:
            kind = "call"
        methods[name] = _Method(name, getattr(instance, name), kind)
    return methods


def _code(exc):
    if isinstance(exc, DriverError):
        return exc.code
    if isinstance(exc, NotImplementedError):
        return "UNIMPLEMENTED"
    if isinstance(exc, TimeoutError):
        return "DEADLINE_EXCEEDED"
    if isinstance(exc, (ValueError, TypeError)):
        return "INVALID_ARGUMENT"
    return "INTERNAL"


def _message(exc):
    text = str(exc)
    if isinstance(exc, DriverError):
        return text
    return type(exc).__name__ + (": " + text if text else "")


# ---------------------------------------------------------------------------------------------
# The server.

class _Stream:
    """One STREAM in progress, seen from the process."""

    def __init__(self, server, sid, method):
        self.server = server
        self.id = sid
        self.method = method
        self.cond = threading.Condition()
        self.credit = 0  # bytes we may send the exporter
        self.cancelled = False
        self.inbox = None  # DATA from the exporter (byte streams): queue of bytes, None at FIN
        self.loop = None  # the asyncio loop of an async byte stream's pump
        self.consumed = 0
        self.task = None
        self.ring = None  # this byte stream's shared memory slot (a memoryview), if it has one
        self.rpos = 0  # where the next write lands in the slot

    def add_credit(self, n):
        with self.cond:
            self.credit += n
            self.cond.notify_all()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()
        self.deliver(None)
        if self.task is not None:
            self.task.get_loop().call_soon_threadsafe(self.task.cancel)

    def take_credit(self, n):
        """Blocks until n bytes (or some, for big n) may be sent; returns how many, 0 if cancelled."""
        with self.cond:
            while self.credit <= 0 and not self.cancelled:
                self.cond.wait()
            if self.cancelled:
                return 0
            k = min(n, self.credit)
            self.credit -= k
            return k

    def send(self, typ, body):
        """Sends an ITEM (whole, once credit covers it) or DATA (split to the credit)."""
        n = len(body)
        if typ == ITEM:
            if n > _WINDOW:
                raise ValueError("stream item of %d bytes exceeds the %d byte window" % (n, _WINDOW))
            with self.cond:
                while self.credit < n and not self.cancelled:
                    self.cond.wait()
                if self.cancelled:
                    raise _Cancelled()
                self.credit -= n
            self.server.send(ITEM, self.id, body)
            return
        data = memoryview(body)
        with self.cond:  # the exporter's SHM frame, if any, comes before its first CREDIT
            while self.credit <= 0 and not self.cancelled:
                self.cond.wait()
        ring = self.ring
        if ring is not None:
            # Into the shared memory slot, as a ring: credit never exceeds the slot, so the
            # exporter has delivered whatever a write overwrites. A write never wraps.
            size = len(ring)
            while len(data) > 0:
                k = self.take_credit(min(len(data), size - self.rpos))
                if not k:
                    raise _Cancelled()
                ring[self.rpos:self.rpos + k] = data[:k]
                self.server.send(SHMDATA, self.id, msgpack.packb(k))
                self.rpos = (self.rpos + k) % size
                data = data[k:]
            return
        while len(data) > 0:
            k = self.take_credit(min(len(data), _CHUNK))
            if not k:
                raise _Cancelled()
            self.server.send(DATA, self.id, data[:k])
            data = data[k:]

    def deliver(self, data):
        if self.inbox is None:
            return
        if self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self.inbox.put_nowait, data)
            except RuntimeError:
                pass
        else:
            self.inbox.put(data)

    def ack(self, n):
        self.consumed += n
        if self.consumed >= _WINDOW // 4:
            self.server.send(CREDIT, self.id, msgpack.packb(self.consumed))
            self.consumed = 0


class _Cancelled(Exception):
    pass


class _EOF:
    pass


class Server:
    """Serves one driver instance on the protocol socket (fd 3)."""

    def __init__(self, sock):
        self.sock = sock
        self.wlock = threading.Lock()
        self.instance = None
        self.methods = {}
        self.streams = {}
        self.tasks = {}
        self.loop = None
        self.loop_thread = None
        self.shm = None  # the exporter's shared memory for byte streams (memoryview), if mapped
        self.shm_size = 0

    # -- writing

    def send(self, typ, fid, body=b""):
        hdr = _HDR.pack(len(body) + 5, typ, fid)
        with self.wlock:
            if len(body) < 65536:
                self.sock.sendall(hdr + bytes(body))
            else:
                self._sendmsg([hdr, body])

    def _sendmsg(self, bufs):
        bufs = [memoryview(b) for b in bufs]
        while bufs:
            sent = self.sock.sendmsg(bufs)
            while sent and bufs:
                if sent >= len(bufs[0]):
                    sent -= len(bufs[0])
                    bufs.pop(0)
                else:
                    bufs[0] = bufs[0][sent:]
                    sent = 0

    def result(self, fid, value):
        self.send(RESULT, fid, msgpack.packb(value, use_bin_type=True))

    def error(self, fid, exc):
        self.send(ERROR, fid, msgpack.packb([_code(exc), _message(exc)]))

    # -- the event loop for async methods

    def aloop(self):
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.loop_thread = threading.Thread(target=self.loop.run_forever, name="jsn-asyncio", daemon=True)
            self.loop_thread.start()
        return self.loop

    def run_sync(self, fn):
        """Runs fn(), awaiting it on the event loop if it returns an awaitable."""
        res = fn()
        if inspect.isawaitable(res):
            res = asyncio.run_coroutine_threadsafe(_awaitable(res), self.aloop()).result()
        return res

    # -- reading

    def serve(self, cls):
        rf = self.sock.makefile("rb", buffering=1 << 18)
        read = rf.read
        unpack = _HDR.unpack
        hdr = read(9)
        if len(hdr) < 9:
            return
        n, typ, fid = unpack(hdr)
        if typ != INIT:
            raise SystemExit("jsn_driver: expected INIT, got frame type %d" % typ)
        init = msgpack.unpackb(read(n - 5), raw=False)
        options = init.get("config") or {}
        try:
            self.instance = cls(**options)
        except TypeError as e:
            raise SystemExit("jsn_driver: %s: bad options %r: %s" % (cls.__name__, sorted(options), e))
        self.methods = _declare(self.instance)
        hello = {"version": PROTOCOL_VERSION, "interface": getattr(cls, "jsn_interface", "") or "",
                 "doc": (inspect.getdoc(cls) or "").split("\n\n")[0],
                 "methods": [m.decl for m in self.methods.values()]}
        if self._map_shm(init.get("shm")):
            hello["shm"] = True
        self.send(HELLO, 0, msgpack.packb(hello))
        methods = self.methods
        streams = self.streams
        packb = msgpack.packb
        unpackb = msgpack.unpackb
        send = self.send
        while True:
            hdr = read(9)
            if len(hdr) < 9:
                return
            n, typ, fid = unpack(hdr)
            body = read(n - 5) if n > 5 else b""
            if typ == CALL:
                name, args = unpackb(body, raw=False)
                m = methods.get(name)
                if m is None or m.kind != "call":
                    self.error(fid, DriverError("NOT_FOUND", "no method %r" % name))
                    continue
                if m.is_async:
                    self.start_async(fid, m, args)
                    continue
                try:
                    res = m.bound(*m.prepare(args))
                    send(RESULT, fid, packb(res, use_bin_type=True))
                except Exception as e:
                    self.error(fid, e)
            elif typ == DATA:
                s = streams.get(fid)
                if s is not None:
                    s.deliver(body)
            elif typ == CREDIT:
                s = streams.get(fid)
                if s is not None:
                    s.add_credit(unpackb(body))
            elif typ == STREAM:
                name, args = unpackb(body, raw=False)
                self.start_stream(fid, name, args)
            elif typ == FIN:
                s = streams.get(fid)
                if s is not None:
                    s.deliver(_EOF)
            elif typ == CANCEL:
                s = streams.pop(fid, None)
                if s is not None:
                    s.cancel()
                t = self.tasks.pop(fid, None)
                if t is not None:
                    t.get_loop().call_soon_threadsafe(t.cancel)
            elif typ == SHM:
                s = streams.get(fid)
                slot = unpackb(body)
                if s is not None and self.shm is not None:
                    s.ring = self.shm[slot * self.shm_size:(slot + 1) * self.shm_size]
            elif typ == PING:
                send(PONG, fid)
            elif typ in (OPEN, RESET, CLOSE):
                hook = {OPEN: "open", RESET: "reset", CLOSE: "close"}[typ]
                try:
                    self.run_sync(getattr(self.instance, hook))
                    send(RESULT, fid, b"\xc0")
                except Exception as e:
                    self.error(fid, e)
            else:
                raise SystemExit("jsn_driver: unexpected frame type %d" % typ)

    def _map_shm(self, offer):
        """Maps the shared memory INIT offers ({fd, slots, size}); False if there is none."""
        if not isinstance(offer, dict):
            return False
        try:
            fd, slots, size = int(offer["fd"]), int(offer["slots"]), int(offer["size"])
            self.shm = memoryview(mmap.mmap(fd, slots * size))
            self.shm_size = size
            os.close(fd)  # the mapping stays
            return True
        except (KeyError, TypeError, ValueError, OSError) as e:
            logging.getLogger("jsn_driver").warning("no shared memory for byte streams: %s", e)
            return False

    def start_async(self, fid, m, args):
        async def go():
            try:
                res = await m.bound(*m.prepare(args))
                self.send(RESULT, fid, msgpack.packb(res, use_bin_type=True))
            except asyncio.CancelledError:
                self.send(ERROR, fid, msgpack.packb(["DEADLINE_EXCEEDED", "cancelled"]))
            except Exception as e:
                self.error(fid, e)
            finally:
                self.tasks.pop(fid, None)

        loop = self.aloop()

        def start():
            self.tasks[fid] = loop.create_task(go())

        loop.call_soon_threadsafe(start)

    def start_stream(self, fid, name, args):
        m = self.methods.get(name)
        if m is None or m.kind == "call":
            self.error(fid, DriverError("NOT_FOUND", "no stream method %r" % name))
            return
        s = _Stream(self, fid, m)
        self.streams[fid] = s
        if m.kind == "server-stream":
            if m.is_asyncgen:
                threading.Thread(target=self._async_items, args=(s, args), daemon=True).start()
            else:
                threading.Thread(target=self._items, args=(s, args), daemon=True).start()
        else:
            threading.Thread(target=self._bytes, args=(s, args), daemon=True).start()

    def _end(self, s, exc=None):
        self.streams.pop(s.id, None)
        if s.cancelled and s.ring is None:
            return
        # (A cancelled stream with a slot still ends: the exporter then knows nothing more is
        # written into the slot and gives it to another stream.)
        if exc is None:
            self.send(RESULT, s.id, b"\xc0")
        else:
            self.error(s.id, exc)

    def _items(self, s, args):
        try:
            for item in s.method.bound(*s.method.prepare(args)):
                s.send(ITEM, msgpack.packb(item, use_bin_type=True))
            self._end(s)
        except _Cancelled:
            pass
        except Exception as e:
            self._end(s, e)

    def _async_items(self, s, args):
        async def go():
            agen = s.method.bound(*s.method.prepare(args))
            try:
                async for item in agen:
                    body = msgpack.packb(item, use_bin_type=True)
                    await asyncio.to_thread(s.send, ITEM, body) if s.credit < len(body) else s.send(ITEM, body)
            finally:
                await agen.aclose()

        try:
            asyncio.run(go())
            self._end(s)
        except _Cancelled:
            pass
        except Exception as e:
            self._end(s, e)

    def _bytes(self, s, args):
        cm = s.method.bound(*s.method.prepare(args))
        try:
            if hasattr(cm, "__aenter__"):
                asyncio.run(self._pump_async(s, cm))
            else:
                self._pump_sync(s, cm)
            self._end(s)
        except _Cancelled:
            if s.ring is not None:
                self._end(s)
        except Exception as e:
            self._end(s, e)

    async def _pump_async(self, s, cm):
        s.loop = asyncio.get_running_loop()
        s.inbox = asyncio.Queue()
        self.send(CREDIT, s.id, msgpack.packb(_WINDOW))
        async with cm as obj:
            async def down():  # exporter -> driver
                while True:
                    data = await s.inbox.get()
                    if data is None:
                        raise _Cancelled()
                    if data is _EOF:
                        eof = getattr(obj, "send_eof", None)
                        if eof is not None:
                            await _maybe(eof())
                        return
                    await _maybe(obj.send(data))
                    s.ack(len(data))

            async def up():  # driver -> exporter
                while True:
                    try:
                        data = await _maybe(obj.receive())
                    except (EOFError, StopAsyncIteration):
                        data = None
                    except Exception as e:
                        if type(e).__name__ in ("EndOfStream", "ClosedResourceError", "BrokenResourceError"):
                            data = None
                        else:
                            raise
                    if not data:
                        self.send(FIN, s.id)
                        return
                    if s.credit >= len(data):
                        s.send(DATA, data)
                    else:
                        await asyncio.to_thread(s.send, DATA, data)

            await asyncio.gather(down(), up())

    def _pump_sync(self, s, cm):
        s.inbox = queue.Queue()
        self.send(CREDIT, s.id, msgpack.packb(_WINDOW))
        with cm as obj:
            recv = getattr(obj, "receive", None) or (lambda: obj.recv(_CHUNK))
            send = getattr(obj, "send", None) or obj.sendall
            err = []

            def down():
                try:
                    while True:
                        data = s.inbox.get()
                        if data is None:
                            return
                        if data is _EOF:
                            eof = getattr(obj, "send_eof", None) or getattr(obj, "shutdown_write", None)
                            if eof is not None:
                                eof()
                            return
                        send(data)
                        s.ack(len(data))
                except Exception as e:
                    err.append(e)

            t = threading.Thread(target=down, daemon=True)
            t.start()
            while True:
                try:
                    data = recv()
                except EOFError:
                    data = None
                if not data:
                    self.send(FIN, s.id)
                    break
                s.send(DATA, data)
            t.join()
            if s.cancelled:
                raise _Cancelled()
            if err:
                raise err[0]


async def _awaitable(x):
    return await x


async def _maybe(x):
    if inspect.isawaitable(x):
        return await x
    return x


# ---------------------------------------------------------------------------------------------
# Entry points.

def run(cls, fd=None):
    """Serves driver class cls on the exporter's socket (fd 3, or $JSN_DRIVER_FD)."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fd = int(os.environ.get("JSN_DRIVER_FD", "3")) if fd is None else fd
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise SystemExit("jsn_driver: no protocol socket on fd %d (%s): run this driver from a jsn exporter "
                         "(an export node of type process)" % (fd, e))
    sock.setblocking(True)
    for opt in (32, socket.SO_SNDBUF):  # SO_SNDBUFFORCE (root), else SO_SNDBUF: fewer wake-ups per DATA frame
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            break
        except OSError:
            pass
    try:
        Server(sock).serve(cls)
    except (BrokenPipeError, ConnectionResetError):
        pass
    os._exit(0)


def _load(spec):
    path, _, clsname = spec.partition(":")
    modname = os.path.splitext(os.path.basename(path))[0]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    ms = importlib.util.spec_from_file_location(modname, path)
    if ms is None:
        raise SystemExit("jsn_driver: cannot load %s" % path)
    mod = importlib.util.module_from_spec(ms)
    sys.modules[modname] = mod
    ms.loader.exec_module(mod)
    if clsname:
        return getattr(mod, clsname)
    found = [v for v in vars(mod).values()
             if isinstance(v, type) and issubclass(v, Driver) and v is not Driver and v.__module__ == modname]
    if len(found) != 1:
        raise SystemExit("jsn_driver: %s defines %d driver classes (%s); name one: %s:Class"
                         % (path, len(found), ", ".join(c.__name__ for c in found), path))
    return found[0]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python3 -m jsn_driver FILE.py[:Class]")
    run(_load(argv[0]))


if __name__ == "__main__":
    import jsn_driver  # the same module as the drivers import, not a second copy

    jsn_driver.main()
