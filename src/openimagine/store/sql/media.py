"""`SqlMedia`: uploaded and fetched inputs."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from openimagine.domain.records import MediaItem
from openimagine.store.sql.rows import fields, to_media
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import media


class SqlMedia:
    """`MediaStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def add(self, item: MediaItem, *, max_owner_bytes: int = 0) -> bool:
        """Store an input's metadata unless it takes its owner past `max_owner_bytes`."""
        return await self._ctx.db.write(_add, item, max_owner_bytes, self._ctx.now())

    async def get(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        """An input (owner None: any owner), expired or not."""
        return await self._ctx.db.read(_get, media_uuid, owner)

    async def touch(self, media_uuid: str, owner: str, keep_s: float) -> MediaItem | None:
        """The owner's unexpired input, kept at least `keep_s` longer."""
        now = self._ctx.now()
        return await self._ctx.db.write(_touch, media_uuid, owner, now, now + keep_s)

    async def stored(self, owner: str) -> tuple[int, float | None]:
        """The bytes of the owner's unexpired inputs, and the soonest expiry among them."""
        return await self._ctx.db.read(_stored, owner, self._ctx.now())

    async def delete(self, media_uuid: str, owner: str) -> MediaItem | None:
        """Remove an input; return what was removed."""
        return await self._ctx.db.write(_delete, media_uuid, owner)


def _lock_key(owner: str) -> int:
    """A PostgreSQL advisory lock id for one owner's inputs (64 bits of a hash)."""
    digest = hashlib.blake2b(f"media:{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _add(conn: sa.Connection, item: MediaItem, max_owner_bytes: int, now: float) -> bool:
    if max_owner_bytes:
        if conn.dialect.name == "postgresql":
            # Two adds of one owner committing at once would each miss the other's bytes
            # (read committed); the lock makes them take turns until their commit.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(item.owner))))
        used, _ = _stored(conn, item.owner, now)
        if used + item.size_bytes > max_owner_bytes:
            return False
    conn.execute(media.insert().values(**fields(item)))
    return True


def _get(conn: sa.Connection, media_uuid: str, owner: str | None) -> MediaItem | None:
    q = media.select().where(media.c.media_uuid == media_uuid)
    if owner is not None:
        q = q.where(media.c.owner == owner)
    row = conn.execute(q).first()
    return None if row is None else to_media(row)


def _touch(
    conn: sa.Connection, media_uuid: str, owner: str, now: float, until: float
) -> MediaItem | None:
    m = media.c
    # An expired input stays expired: the sweeper may be deleting its file right now.
    q = (
        media.update()
        .where(
            m.media_uuid == media_uuid,
            m.owner == owner,
            sa.or_(m.expires_at.is_(None), m.expires_at >= now),
        )
        .values(expires_at=sa.case((m.expires_at < until, until), else_=m.expires_at))
        .returning(*media.c)
    )
    row = conn.execute(q).first()
    return None if row is None else to_media(row)


def _stored(conn: sa.Connection, owner: str, now: float) -> tuple[int, float | None]:
    m = media.c
    q = sa.select(sa.func.coalesce(sa.func.sum(m.size_bytes), 0), sa.func.min(m.expires_at))
    q = q.where(m.owner == owner, sa.or_(m.expires_at.is_(None), m.expires_at >= now))
    total, first = conn.execute(q).one()
    return int(total), None if first is None else float(first)


def _delete(conn: sa.Connection, media_uuid: str, owner: str) -> MediaItem | None:
    q = media.delete().where(media.c.media_uuid == media_uuid, media.c.owner == owner)
    row = conn.execute(q.returning(*media.c)).first()
    return None if row is None else to_media(row)
