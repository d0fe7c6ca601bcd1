"""A driver that speaks the protocol of docs/external-drivers.md directly, without the SDK:
what a driver in any language has to do. Served by `command: [/usr/bin/python3, raw_counter.py]`.
"""
import socket
import struct
import sys

import msgpack

INIT, HELLO, OPEN, RESET, CLOSE, CALL, RESULT, ERROR, STREAM, ITEM, DATA, CREDIT, FIN, CANCEL, PING, PONG = range(1, 17)

sock = socket.socket(fileno=3)  # the exporter's private socket
f = sock.makefile("rb")


def read_frame():
    head = f.read(9)  # length (4), type (1), id (4), big-endian
    if len(head) < 9:
        sys.exit(0)  # the exporter closed the socket: exit
    length, typ, fid = struct.unpack(">IBI", head)
    return typ, fid, f.read(length - 5)


def send(typ, fid, body=b""):
    sock.sendall(struct.pack(">IBI", len(body) + 5, typ, fid) + body)


typ, _, body = read_frame()
assert typ == INIT
options = msgpack.unpackb(body)["config"] or {}
step = options.get("step", 1)
send(HELLO, 0, msgpack.packb({
    "version": 1,
    "methods": [
        {"name": "add", "kind": "call", "doc": "add n, return the count",
         "args": [{"name": "n", "type": "int"}], "returns": "int"},
        {"name": "inc", "kind": "call", "doc": "add the step", "returns": "int"},
        {"name": "upto", "kind": "server-stream", "doc": "stream 0 … n-1",
         "args": [{"name": "n", "type": "int"}], "returns": "int"},
    ],
}))
count = 0
streams = {}  # stream id -> credit left
while True:
    typ, fid, body = read_frame()
    if typ in (OPEN, CLOSE):
        send(RESULT, fid, msgpack.packb(None))
    elif typ == RESET:
        count = 0
        send(RESULT, fid, msgpack.packb(None))
    elif typ == PING:
        send(PONG, fid)
    elif typ == CALL:
        method, args = msgpack.unpackb(body)
        if method == "add":
            count += args[0]
            send(RESULT, fid, msgpack.packb(count))
        elif method == "inc":
            count += step
            send(RESULT, fid, msgpack.packb(count))
        else:
            send(ERROR, fid, msgpack.packb(["NOT_FOUND", "no method " + method]))
    elif typ == STREAM:
        method, args = msgpack.unpackb(body)
        streams[fid] = args[0]
    elif typ == CREDIT and fid in streams:
        # The first CREDIT of a stream comes right after STREAM; items fit in it easily here.
        for i in range(streams.pop(fid)):
            send(ITEM, fid, msgpack.packb(i))
        send(RESULT, fid, msgpack.packb(None))
