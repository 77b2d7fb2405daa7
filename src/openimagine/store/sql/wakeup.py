"""Waking idle workers when a job arrives, instead of having them poll.

- SQLite: a doorbell. Each waiting process binds a Unix datagram socket in a directory next
  to the database file; after a commit that queued work, the writer sends one byte to every
  socket there. Any process on the host that uses the same database file hears it (the
  workers `serve` spawns, and `openimagine worker` started alone).
- PostgreSQL: `LISTEN`/`NOTIFY`. A commit that queued work sends `NOTIFY` (once per
  transaction), and waiting workers listen on a connection of their own, on any host.

A wake-up is a hint: workers still poll, slowly, so a lost one costs a poll interval. The
listening connection dies with a server restart: it is made again at once, then with backoff
while the server is down, and a new `LISTEN` counts as a wake-up (what was sent meanwhile
went to nobody), so no job waits for the slow poll because of the restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from openimagine.store.errors import Backoff

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "openimagine_jobs"
# The listening connection is idle while it waits, so only TCP keepalives notice a server
# that vanished without closing it (a host down, a network cut): in about 20 s. A connect to a
# server that does not answer gives up after 5 s (and is tried again).
_ALIVE = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 2,
}
_RESCAN_S = 1.0  # how stale the list of sockets to ring may get


class Doorbell:
    """Unix datagram sockets in `directory`: `ring` from the writer, `wait` in workers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._sender: socket.socket | None = None
        self._targets: list[str] = []
        self._scanned = 0.0
        self._listener: socket.socket | None = None

    def ring(self) -> None:
        """Wake every listener (blocking briefly; called on the writer thread)."""
        if time.monotonic() - self._scanned > _RESCAN_S:
            self._rescan()
        if not self._targets:
            return
        if self._sender is None:
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
        stale = False
        for target in self._targets:
            try:
                self._sender.sendto(b"!", target)
            except BlockingIOError:  # its buffer is full of unread rings: it is awake anyway
                pass
            except OSError:  # its process is gone
                stale = True
                with contextlib.suppress(OSError):
                    os.unlink(target)
        if stale:
            self._rescan()

    def _rescan(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            names = []
        self._targets = [str(self.directory / n) for n in names if n.endswith(".sock")]
        self._scanned = time.monotonic()

    async def wait(self, timeout_s: float) -> None:
        """Return when rung, or after `timeout_s`."""
        listener = self._listen()
        with anyio.move_on_after(timeout_s):
            await anyio.wait_readable(listener)
        with contextlib.suppress(BlockingIOError):
            while listener.recv(64):  # one wake-up for all the rings that came meanwhile
                pass

    def _listen(self) -> socket.socket:
        if self._listener is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.setblocking(False)
            self._listener = sock
        return self._listener

    def close(self) -> None:
        """Stop listening (removes this process's socket)."""
        if self._listener is not None:
            path = self._listener.getsockname()
            self._listener.close()
            self._listener = None
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self._sender is not None:
            self._sender.close()
            self._sender = None


class Listener:
    """PostgreSQL `LISTEN` on a connection of its own (psycopg's async connection).

    A dead connection (a server restart, a network failure that the TCP keepalives catch) is
    closed and made again, with backoff while the server is away.
    """

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: AsyncConnection[Any] | None = None
        self._backoff = Backoff(f"LISTEN {CHANNEL}", log, first_s=0.05, max_s=2.0)

    async def wait(self, timeout_s: float) -> None:
        """Return when notified, when listening again after the connection was lost (or
        first made), or after `timeout_s` (also when the database is away)."""
        import psycopg

        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                if self._conn is None:
                    await self._connect()
                    self._backoff.succeeded()
                    return
                # Runs to its end (one notification, or the timeout): a generator left by
                # `break` would hold the connection's lock until it is collected.
                async for _note in self._conn.notifies(timeout=left, stop_after=1):
                    pass
                return
            except (psycopg.Error, OSError) as exc:
                await self.close()
                pause = self._backoff.failed(exc)
                await anyio.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    async def _connect(self) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params: dict[str, Any] = {**_ALIVE, **conninfo_to_dict(self.conninfo)}  # the URL's win
        conn = await psycopg.AsyncConnection.connect(make_conninfo("", **params), autocommit=True)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Drop the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
