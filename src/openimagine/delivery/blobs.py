"""Blob storage for results and uploaded inputs."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class BlobStore(Protocol):
    """Where bytes live. Keys are relative paths like `videos/<uuid>.mp4`."""

    def put_file(self, key: str, source: Path) -> int:
        """Move `source` into the store under `key` (atomically); return its size."""

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write `data` under `key` (atomically); return its size."""

    def path(self, key: str) -> Path | None:
        """A local path for the blob, or None when it does not exist."""

    def delete(self, key: str) -> bool:
        """Remove a blob; False when it was absent."""


def check_key(key: str) -> str:
    """Reject keys that could escape the store root."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class LocalBlobStore:
    """Blobs as files under one directory; writes go to a temp file and are renamed in place,
    so a reader never sees a partial file."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _target(self, key: str) -> Path:
        target = self.root / check_key(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def scratch_path(self, suffix: str) -> Path:
        """A fresh temp path on the same filesystem (so put_file can rename it)."""
        tmp = self.root / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp / f"{secrets.token_hex(8)}{suffix}"

    def put_file(self, key: str, source: Path) -> int:
        """Move `source` into the store under `key`; return its size."""
        target = self._target(key)
        staged = self.scratch_path(target.suffix)
        shutil.move(str(source), staged)
        os.replace(staged, target)
        return target.stat().st_size

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write `data` under `key`; return its size."""
        target = self._target(key)
        staged = self.scratch_path(target.suffix)
        staged.write_bytes(data)
        os.replace(staged, target)
        return len(data)

    def path(self, key: str) -> Path | None:
        """Local path of a blob, if present."""
        p = self.root / check_key(key)
        return p if p.is_file() else None

    def delete(self, key: str) -> bool:
        """Remove a blob."""
        p = self.root / check_key(key)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        return True
