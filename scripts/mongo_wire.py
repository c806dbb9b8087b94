"""A MongoDB wire-protocol server backed by mongomock: a TEST DOUBLE, never for production.

Lets several processes (gunicorn workers, a test and a child server) share one mongomock store
over TCP with the real PyMongo driver, where no MongoDB server can be installed (see
docs/deployment.md). It is not MongoDB: query semantics are mongomock's; there is no auth, TLS,
compression, replication, transactions or change streams; every command runs under one lock.

Protocol: OP_MSG (2013; kind 0 body + kind 1 document sequences, checksum ignored, no reply
when the client sets moreToCome) and OP_QUERY on ``<db>.$cmd`` answered with OP_REPLY (legacy
handshakes; PyMongo 4.20 sends its handshake as OP_MSG). Any other opcode closes the connection.
Commands and error shapes: scripts/mongo_wire_store.py (hello/isMaster, ping, buildInfo,
endSessions, insert, find, getMore, killCursors, update, delete, findAndModify, count,
aggregate, distinct, create, createIndexes, listIndexes, dropIndexes, drop, dropDatabase,
listCollections, listDatabases).

CLI: ``python -m scripts.mongo_wire [--port 27018] [--dump FILE]`` prints
``mongodb://127.0.0.1:PORT`` on stdout (``--port 0``: a free port) and serves until SIGTERM or
SIGINT. ``--dump FILE`` persists every acknowledged write, so a store killed with SIGKILL comes
back with its data.

Tests: ``with MongoWireServer() as server: MongoClient(server.uri)`` (a thread of this process);
``MongoWireServer(subprocess=True, dump=path)`` runs the CLI as a child process:
``stop(crash=True)`` is a SIGKILL and ``start()`` again restarts it on the same port.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading

import bson

from scripts.mongo_wire_store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
CHECKSUM_PRESENT, MORE_TO_COME = 1, 2


def _recv(sock: socket.socket, n: int) -> bytes | None:
    """Exactly ``n`` bytes, or None when the peer closed the connection."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _header(length: int, request_id: int, response_to: int, opcode: int) -> bytes:
    return struct.pack("<iiii", 16 + length, request_id, response_to, opcode)


def _encode(reply: dict) -> bytes:
    try:
        return bson.encode(reply)
    except Exception as exc:  # a value mongomock produced that BSON cannot hold
        return bson.encode({"ok": 0.0, "errmsg": f"reply not encodable: {exc}", "code": 1})


def parse_op_msg(body: bytes) -> tuple[int, dict]:
    """OP_MSG body (after the header) → ``(flags, command)`` with kind-1 sequences merged in
    as lists under their identifiers (``documents``, ``updates``, ``deletes``)."""
    flags = struct.unpack_from("<I", body)[0]
    end, pos, cmd, seqs = len(body) - (4 if flags & CHECKSUM_PRESENT else 0), 4, {}, {}
    while pos < end:
        kind, size = body[pos], struct.unpack_from("<i", body, pos + 1)[0]
        if kind == 0:
            cmd = bson.decode(body[pos + 1:pos + 1 + size])
        elif kind == 1:
            name_end = body.index(b"\0", pos + 5)
            name = body[pos + 5:name_end].decode()
            seqs[name] = bson.decode_all(body[name_end + 1:pos + 1 + size])
        else:
            raise ValueError(f"unknown OP_MSG section kind {kind}")
        pos += 1 + size
    cmd.update(seqs)
    return flags, cmd


def _op_query(store: Store, body: bytes) -> dict:
    """OP_QUERY: only commands (``<db>.$cmd``), optionally wrapped in ``$query``."""
    ns_end = body.index(b"\0", 4)
    ns = body[4:ns_end].decode()
    query = bson.decode_all(body[ns_end + 9:])[0]
    if not ns.endswith(".$cmd"):
        return {"$err": "OP_QUERY is only supported for commands", "code": 352, "ok": 0.0}
    return store.run(ns[:-5], query.get("$query", query))


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock, store = self.request, self.server.store
        self.server.clients.add(sock)
        try:
            while (header := _recv(sock, 16)) is not None:
                length, request_id, _to, opcode = struct.unpack("<iiii", header)
                body = _recv(sock, length - 16)
                if body is None:
                    return
                if opcode == OP_MSG:
                    flags, cmd = parse_op_msg(body)
                    reply = store.run(cmd.pop("$db", "admin"), cmd)
                    if flags & MORE_TO_COME:
                        continue
                    data = b"\0\0\0\0\0" + _encode(reply)
                elif opcode == OP_QUERY:
                    data = struct.pack("<iqii", 0, 0, 0, 1) + _encode(_op_query(store, body))
                    opcode = OP_REPLY
                else:
                    return
                sock.sendall(_header(len(data), request_id, request_id, opcode) + data)
        except (OSError, ValueError, struct.error, bson.errors.BSONError):
            return
        finally:
            self.server.clients.discard(sock)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class MongoWireServer:
    """The wire server on 127.0.0.1:``port`` (0 = a free one), in a thread or (``subprocess``)
    a child process. ``start()`` → self; ``uri`` is ``mongodb://127.0.0.1:PORT``; ``stop()``.
    Raises RuntimeError when the child process does not come up."""

    def __init__(self, port: int = 0, dump: str | None = None, subprocess: bool = False):
        self.port, self.dump, self.subprocess = port, dump, subprocess
        self.proc: subprocess.Popen | None = None
        self._tcp: _TCPServer | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> MongoWireServer:
        if self.subprocess:
            args = [sys.executable, "-m", "scripts.mongo_wire", "--port", str(self.port)]
            self.proc = subprocess.Popen(args + (["--dump", self.dump] if self.dump else []),
                                         cwd=ROOT, stdout=subprocess.PIPE, text=True)
            line = self.proc.stdout.readline().strip()
            if not line.startswith("mongodb://"):
                self.proc.kill()
                raise RuntimeError(f"mongo_wire did not start (said {line!r})")
            self.port = int(line.rsplit(":", 1)[1])
        else:
            self._tcp = _TCPServer(("127.0.0.1", self.port), _Handler)
            self._tcp.store, self._tcp.clients = Store(self.dump), set()
            self.port = self._tcp.server_address[1]
            threading.Thread(target=self._tcp.serve_forever, daemon=True,
                             name="mongo-wire").start()
        return self

    def stop(self, crash: bool = False) -> None:
        """Stop serving and drop every connection. ``crash``: SIGKILL the child process (a
        store crash; with ``dump`` the acknowledged writes survive the next ``start()``)."""
        if self.proc is not None:
            self.proc.kill() if crash else self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc.stdout.close()
            self.proc = None
        if self._tcp is not None:
            self._tcp.shutdown()
            for sock in list(self._tcp.clients):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._tcp.server_close()
            self._tcp = None

    def __enter__(self) -> MongoWireServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="mongomock behind the MongoDB wire protocol "
                                                 "(a test double, not for production)")
    parser.add_argument("--port", type=int, default=27018, help="0 = a free port")
    parser.add_argument("--dump", help="persist the store in this file after every write")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with _TCPServer(("127.0.0.1", args.port), _Handler) as tcp:
        tcp.store, tcp.clients = Store(args.dump), set()
        print(f"mongodb://127.0.0.1:{tcp.server_address[1]}", flush=True)
        try:
            tcp.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
