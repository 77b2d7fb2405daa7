"""`SqlKeys`: API keys, stored as hashes."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from openimagine.domain.records import ApiKey
from openimagine.store.sql.shared import Context
from openimagine.store.sql.tables import api_keys


class SqlKeys:
    """`KeyStore` over SQL."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def add(self, key_hash: str, label: str, prefix: str) -> str:
        """Store a key hash (idempotent); return its id."""
        return await self._ctx.db.write(_add, key_hash, label, prefix, self._ctx.now())

    async def find(self, key_hash: str) -> str | None:
        """The id of an active key with this hash."""
        return await self._ctx.db.read(_find, key_hash)

    async def all(self) -> list[ApiKey]:
        """All keys, newest first."""
        return await self._ctx.db.read(_list)

    async def revoke(self, key_id_or_prefix: str) -> bool:
        """Revoke by id or prefix; False when nothing matched."""
        return await self._ctx.db.write(_revoke, key_id_or_prefix, self._ctx.now())


def _add(conn: sa.Connection, key_hash: str, label: str, prefix: str, now: float) -> str:
    q = sa.select(api_keys.c.id).where(api_keys.c.key_hash == key_hash)
    existing = conn.execute(q).scalar()
    if existing is not None:
        return str(existing)
    key_id = str(uuid.uuid4())
    conn.execute(
        api_keys.insert().values(
            id=key_id, key_hash=key_hash, label=label, prefix=prefix, created_at=now
        )
    )
    return key_id


def _find(conn: sa.Connection, key_hash: str) -> str | None:
    q = sa.select(api_keys.c.id).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    found = conn.execute(q).scalar()
    return None if found is None else str(found)


def _list(conn: sa.Connection) -> list[ApiKey]:
    columns = ("id", "label", "prefix", "created_at", "revoked_at")
    q = sa.select(*(api_keys.c[name] for name in columns)).order_by(api_keys.c.created_at.desc())
    return [ApiKey(**dict(r._mapping)) for r in conn.execute(q)]


def _revoke(conn: sa.Connection, key_id_or_prefix: str, now: float) -> bool:
    res = conn.execute(
        api_keys.update()
        .where(
            sa.or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix),
            api_keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return bool(res.rowcount)
