"""Which schema revision a store is at, and the newest one this code knows: what `migrate`
reports and `doctor` compares. Blocking (call in a thread); nothing here writes."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from openimagine.store.sql.database import normalize_url


def head_revision() -> str:
    """The newest revision of `store/migrations` (what `migrate` upgrades to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its revisions
        raise RuntimeError("store/migrations has no revisions")
    return head


def current_revision(url: str, *, connect_timeout_s: int = 5) -> str | None:
    """The store's revision; None when it has no schema yet (a SQLite file that does not
    exist is not created). Raises SQLAlchemy's errors when it cannot connect."""
    from alembic.runtime.migration import MigrationContext

    parsed = sa.engine.make_url(normalize_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and not Path(parsed.database).exists():
            return None
        args: dict[str, int] = {}
    else:
        args = {} if "connect_timeout" in parsed.query else {"connect_timeout": connect_timeout_s}
    engine = sa.create_engine(parsed, connect_args=args)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
