"""A loopback relay between a stack's processes and its MongoDB server that a test severs as
a primary's failure would: at a chosen insert into `events` (the command's answer lost, or the
command itself), every connection is closed, and for a while any new one is closed at once,
as while a replica set elects a new primary; then it relays again."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from tools.processes import free_port

# An OP_MSG whose command document begins `{insert: "events", ...}`: BSON's string element
# (0x02), its name, the value's length with its NUL (7), the value.
EVENTS_INSERT = b"\x02insert\x00" + struct.pack("<i", 7) + b"events\x00"


@dataclass
class Cut:
    """Sever at the `nth` insert into `events`, after the server answered it (`applied`: the
    write is stored, the worker never hears so) or before it reaches the server; then refuse
    connections for `down_seconds`."""

    nth: int
    applied: bool
    down_seconds: float
    seen: int = 0
    severed: threading.Event = field(default_factory=threading.Event)
    up_again: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Link:
    """One relayed connection: whether the server's next answer is to be dropped."""

    swallow: bool = False


class Relay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.cut: Cut | None = None
        self.down_until = 0.0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, cut: Cut) -> Cut:
        self.cut = cut
        return cut

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self._sever()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                client.close()  # no primary yet: the driver's connection ends at once
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, server}
            link = _Link()
            threading.Thread(target=self._requests, args=(client, server, link), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client, link), daemon=True).start()

    def _requests(self, client: socket.socket, server: socket.socket, link: _Link) -> None:
        """Client to server, a whole message at a time, so that the cut meets one whole."""
        while (message := _read_message(client)) is not None:
            cut = self._due(message)
            if cut is not None and cut.applied:
                # A driver's connection waits for each answer before its next command, so
                # the next answer read from the server is this command's.
                link.swallow = True
                _send(server, message)
                return
            if cut is not None:
                self._go_down(cut)
                return
            if not _send(server, message):
                break
        _close(client, server)

    def _replies(self, server: socket.socket, client: socket.socket, link: _Link) -> None:
        while (message := _read_message(server)) is not None:
            if link.swallow and self.cut is not None:
                self._go_down(self.cut)  # the write is stored; its answer never arrives
                return
            if not _send(client, message):
                break
        _close(client, server)

    def _due(self, message: bytes) -> Cut | None:
        """The armed cut, if `message` is the insert it waits for."""
        cut = self.cut
        if cut is None or cut.severed.is_set() or EVENTS_INSERT not in message:
            return None
        with self._lock:
            cut.seen += 1
            return cut if cut.seen == cut.nth else None

    def _go_down(self, cut: Cut) -> None:
        self.down_until = time.monotonic() + cut.down_seconds
        self._sever()
        cut.severed.set()

        def up_again() -> None:
            time.sleep(cut.down_seconds)
            cut.up_again.set()

        threading.Thread(target=up_again, daemon=True).start()

    def _sever(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        _close(*sockets)


def _recv(sock: socket.socket, size: int = 65536) -> bytes:
    try:
        return sock.recv(size)
    except OSError:
        return b""


def _read_message(sock: socket.socket) -> bytes | None:
    """One wire-protocol message (its length leads it), or None once the peer is gone."""
    message = b""
    while len(message) < 4 or len(message) < struct.unpack("<i", message[:4])[0]:
        want = 4 - len(message) if len(message) < 4 else struct.unpack("<i", message[:4])[0] - len(message)
        chunk = _recv(sock, want)
        if not chunk:
            return None
        message += chunk
    return message


def _send(sock: socket.socket, data: bytes) -> bool:
    try:
        sock.sendall(data)
    except OSError:
        return False
    return True


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
