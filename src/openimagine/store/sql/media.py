"""`SqlMedia`: uploaded and fetched inputs."""

from __future__ import annotations

import sqlalchemy as sa

from openimagine.domain.records import MediaItem
from openimagine.store.sql.rows import fields, to_media
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import media


class SqlMedia:
    """`MediaStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def add(self, item: MediaItem) -> None:
        """Store an input's metadata."""
        await self._ctx.db.write(_add, item)

    async def get(self, media_uuid: str, owner: str | None) -> MediaItem | None:
        """An input (owner None: any owner)."""
        return await self._ctx.db.read(_get, media_uuid, owner)

    async def delete(self, media_uuid: str, owner: str) -> MediaItem | None:
        """Remove an input; return what was removed."""
        return await self._ctx.db.write(_delete, media_uuid, owner)


def _add(conn: sa.Connection, item: MediaItem) -> None:
    conn.execute(media.insert().values(**fields(item)))


def _get(conn: sa.Connection, media_uuid: str, owner: str | None) -> MediaItem | None:
    q = media.select().where(media.c.media_uuid == media_uuid)
    if owner is not None:
        q = q.where(media.c.owner == owner)
    row = conn.execute(q).first()
    return None if row is None else to_media(row)


def _delete(conn: sa.Connection, media_uuid: str, owner: str) -> MediaItem | None:
    q = media.delete().where(media.c.media_uuid == media_uuid, media.c.owner == owner)
    row = conn.execute(q.returning(*media.c)).first()
    return None if row is None else to_media(row)
