"""Blob storage for results and inputs: the `BlobStore` protocol, and the local directory.

Callers name only the protocol; `composition` picks the implementation (this module's
`LocalBlobStore`, or `delivery.s3.S3BlobStore` for a bucket that hosts share). Keys are
relative paths such as `videos/<uuid>.mp4`. Methods block (a remote store does network I/O):
async code runs them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from openimagine.delivery.signing import UrlSigner
from openimagine.errors import OpenImagineError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MEDIA_PREFIX = "/media/"


class BlobNotFound(LookupError):
    """No blob under that key (never stored, deleted, or swept)."""


class BlobStoreError(OpenImagineError):
    """The blob store failed (unreachable, refusing, timing out) after its retries.

    The message is safe to show a client (no host names, keys or credentials); the details
    are logged where it is raised.
    """

    default_code = "storageError"


class BlobStore(Protocol):
    """Where bytes live."""

    def put_file(self, key: str, source: Path) -> int:
        """Move `source` into the store under `key` (readers never see a partial blob);
        return its size."""
        ...

    def put_bytes(self, key: str, data: bytes) -> int:
        """Write `data` under `key`; return its size."""
        ...

    def size(self, key: str) -> int | None:
        """The blob's size, or None when there is no such blob."""
        ...

    def as_file(self, key: str) -> AbstractContextManager[Path]:
        """The blob as a local file for the length of a `with` block (`BlobNotFound`)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The blob's file when the store keeps it on this machine's disk (so it can be
        served directly), else None."""
        ...

    def url(self, key: str, expires_at: float) -> str:
        """A URL that downloads the blob until `expires_at` (Unix seconds)."""
        ...

    def direct_url(self, key: str, expires_at: float) -> str | None:
        """A URL to the blob on the server that holds it (an S3 presigned URL), valid until
        `expires_at` or as long as that server allows; None when the API serves the blob
        itself (`local_path`)."""
        ...

    def delete(self, key: str) -> bool:
        """Remove a blob; False when it was absent."""
        ...

    def key_of_url(self, url: str) -> str | None:
        """The key of the blob that a URL from `url` names, while that URL is valid; None for
        any other URL."""
        ...

    def scratch_path(self, suffix: str) -> Path:
        """A fresh path for a temporary file that `put_file` can take over."""
        ...


def check_key(key: str) -> str:
    """Reject keys that could escape the store root."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


def media_path(key: str) -> str:
    """The URL path under which the API serves a local blob."""
    return MEDIA_PREFIX + key


def signed_key(signer: UrlSigner | None, url: str) -> str | None:
    """The blob key of one of `signer`'s valid `/media/<key>` URLs, else None."""
    path = signer.path_of(url, time.time()) if signer is not None else None
    if path is None or not path.startswith(MEDIA_PREFIX):
        return None
    try:
        return check_key(path[len(MEDIA_PREFIX) :])
    except ValueError:
        return None


class LocalBlobStore:
    """Blobs as files under one directory, served by the API at `/media/<key>` behind
    HMAC-signed, expiring URLs. Writes go to a temp file renamed into place.

    Args:
        root: The directory.
        signer: Signs download URLs; None in processes that only write (workers), which then
            cannot make URLs.
    """

    def __init__(self, root: Path, signer: UrlSigner | None = None) -> None:
        self.root = root
        self._signer = signer
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

    def local_path(self, key: str) -> Path | None:
        """The blob's file, if present."""
        p = self.root / check_key(key)
        return p if p.is_file() else None

    def size(self, key: str) -> int | None:
        """The blob's size, if present."""
        try:
            return (self.root / check_key(key)).stat().st_size
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def _file(self, key: str) -> Iterator[Path]:
        path = self.local_path(key)
        if path is None:
            raise BlobNotFound(key)
        yield path

    def as_file(self, key: str) -> AbstractContextManager[Path]:
        """The blob's own file (nothing is copied)."""
        return self._file(key)

    def url(self, key: str, expires_at: float) -> str:
        """A signed `/media/<key>` URL on the API's public address."""
        if self._signer is None:
            raise RuntimeError("this process holds no URL-signing secret")
        return self._signer.url(media_path(check_key(key)), expires_at)

    def direct_url(self, key: str, expires_at: float) -> str | None:
        """None: the API serves local files itself."""
        del key, expires_at
        return None

    def key_of_url(self, url: str) -> str | None:
        """The key a signed `/media/<key>` URL of this server names, while it is valid."""
        return signed_key(self._signer, url)

    def delete(self, key: str) -> bool:
        """Remove a blob (and its folder once empty: a result's attempt has one)."""
        path = self.root / check_key(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        if path.parent != self.root and path.parent.parent != self.root:
            with contextlib.suppress(OSError):  # not empty, or removed meanwhile
                path.parent.rmdir()
        return True
