"""Waking idle workers when a job arrives, instead of having them poll.

- SQLite: a doorbell. Each waiting process binds a Unix datagram socket in a directory next
  to the database file; after a commit that queued work, the writer sends one byte to every
  socket there. Any process on the host that uses the same database file hears it (the
  workers `serve` spawns, and `openimagine worker` started alone).
- PostgreSQL: `LISTEN`/`NOTIFY`. A commit that queued work sends `NOTIFY` (once per
  transaction), and waiting workers listen on a connection of their own, on any host.

A wake-up is a hint: workers still poll, slowly, so a lost one costs a poll interval.
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

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "openimagine_jobs"
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
    """PostgreSQL `LISTEN` on a connection of its own (psycopg's async connection)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._conn: AsyncConnection[Any] | None = None

    async def wait(self, timeout_s: float) -> None:
        """Return when notified, or after `timeout_s` (also when the database is away)."""
        import psycopg

        try:
            conn = await self._connect()
            with anyio.move_on_after(timeout_s):
                async for _note in conn.notifies(timeout=timeout_s, stop_after=1):
                    break
        except psycopg.Error as exc:
            log.warning("LISTEN %s failed (%s); polling until it is back", CHANNEL, exc)
            await self.close()
            await anyio.sleep(timeout_s)

    async def _connect(self) -> AsyncConnection[Any]:
        import psycopg

        if self._conn is None:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
            await conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        """Drop the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
