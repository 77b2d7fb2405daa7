"""`SqlKeys`: API keys, stored as hashes."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from openimagine.domain.quotas import Limits
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

    async def limits(self, key_id: str) -> Limits:
        """A key's overrides of the quota settings."""
        return await self._ctx.db.read(_limits, key_id)

    async def set_limits(self, key_id_or_prefix: str, changes: Limits) -> bool:
        """Change the overrides `changes` sets on an active key."""
        return await self._ctx.db.write(_set_limits, key_id_or_prefix, changes)

    async def configure(self, keys: Mapping[str, str]) -> None:
        """Make the keys given with `--api-key` exactly the active configured ones."""
        await self._ctx.db.write(_configure, dict(keys), self._ctx.now())

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


# Replicas starting together configure the same keys at once: on PostgreSQL each waits for
# the other's transaction (then sees its rows), instead of both inserting a key and one of
# them failing on the unique hash.
_KEYS_LOCK = 715518


def _configure(conn: sa.Connection, keys: dict[str, str], now: float) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_KEYS_LOCK})")
    retired = api_keys.update().where(
        api_keys.c.configured.is_(True), api_keys.c.revoked_at.is_(None)
    )
    if keys:
        retired = retired.where(api_keys.c.key_hash.not_in(list(keys)))
    conn.execute(retired.values(revoked_at=now))
    for key_hash, prefix in keys.items():
        # A key also created with `keys create` stays that command's (never retired here).
        found = conn.execute(
            sa.select(api_keys.c.configured).where(api_keys.c.key_hash == key_hash)
        )
        row = found.first()
        if row is None:
            _add(conn, key_hash, "configured", prefix, now)
        if row is None or row[0]:  # the prefix too: an older one may have shown a short key
            conn.execute(
                api_keys.update()
                .where(api_keys.c.key_hash == key_hash)
                .values(revoked_at=None, configured=True, prefix=prefix)
            )


_LIMITS = tuple(f.name for f in dataclasses.fields(Limits))


def _limits_of(row: Any) -> Limits:
    return Limits(**{name: row._mapping[name] for name in _LIMITS})


def _limits(conn: sa.Connection, key_id: str) -> Limits:
    q = sa.select(*(api_keys.c[name] for name in _LIMITS)).where(api_keys.c.id == key_id)
    row = conn.execute(q).first()
    return Limits() if row is None else _limits_of(row)


def _set_limits(conn: sa.Connection, key_id_or_prefix: str, changes: Limits) -> bool:
    values = {name: v for name in _LIMITS if (v := getattr(changes, name)) is not None}
    res = conn.execute(
        api_keys.update()
        .where(
            sa.or_(api_keys.c.id == key_id_or_prefix, api_keys.c.prefix == key_id_or_prefix),
            api_keys.c.revoked_at.is_(None),
        )
        .values(**values)
    )
    return bool(res.rowcount)


def _find(conn: sa.Connection, key_hash: str) -> str | None:
    q = sa.select(api_keys.c.id).where(
        api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None)
    )
    found = conn.execute(q).scalar()
    return None if found is None else str(found)


def _list(conn: sa.Connection) -> list[ApiKey]:
    columns = ("id", "label", "prefix", "created_at", "revoked_at", "configured", *_LIMITS)
    q = sa.select(*(api_keys.c[name] for name in columns)).order_by(api_keys.c.created_at.desc())
    return [
        ApiKey(**{k: v for k, v in r._mapping.items() if k not in _LIMITS}, limits=_limits_of(r))
        for r in conn.execute(q)
    ]


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
