"""Blobs in an S3-compatible bucket (AWS S3, MinIO, SeaweedFS, Cloudflare R2, ...), so that API
replicas and workers on different hosts share nothing but the task store and the bucket.

Results are downloaded straight from the bucket: `url` is a presigned GET whose expiry is the
task's `ttl`. SigV4 caps a presigned URL at 7 days, so a longer-lived URL is the API's own
signed `/media/<key>` link, which answers with a redirect to a fresh presigned URL.

The client is obstore (Python bindings of Rust's `object_store`, the crate behind DataFusion,
Polars and delta-rs), chosen over boto3 after measuring both against SeaweedFS
(bench/s3_clients.py; three runs on a busy 2-core machine, the README has the table):

- perf: presigning, which the API does for every result of every poll, takes 21-64 us
  against botocore's 360-475 us (7 to 20 times less), on the event loop with no thread hop;
- small objects: PUT 2.7 ms against 5.0, GET 1.4 ms against 3.5, HEAD 0.6-0.9 ms against
  2.4-3.0; large files within the noise of a shared machine (boto3's threaded upload a
  little faster, obstore's streamed download faster);
- loading it costs each process 16-40 ms and 11 MiB, against 300-410 ms and 40 MiB;
- retrying is bounded by time (`retry_timeout`), where boto3 bounds only attempts;
- one wheel with no dependencies and its own type stubs (boto3 brings botocore, s3transfer,
  jmespath and dateutil, untyped without a stubs package).

The price is a younger, pre-1.0 API (pinned to a minor version in pyproject.toml); the
blob store is the only module that names it.

Credentials and the region follow the usual AWS chain, read by the client: AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_DEFAULT_REGION (or AWS_REGION), web identity
and instance or container roles.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import obstore
from obstore.exceptions import BaseError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from openimagine.delivery.blobs import (
    BlobNotFound,
    BlobStoreError,
    check_key,
    media_path,
    signed_key,
)
from openimagine.delivery.signing import UrlSigner

if TYPE_CHECKING:
    from obstore import Attributes
    from obstore.store import ClientConfig, RetryConfig, S3Config

log = logging.getLogger("openimagine.blobs")

T = TypeVar("T")

SCHEME = "s3://"
PRESIGN_MAX_S = 7 * 24 * 3600  # SigV4: a presigned URL lives a week at most
CHUNK = 1 << 20
# Keys end in the extension of what they hold: the object's Content-Type is what a presigned
# download answers with. Explicit, because mimetypes depends on the host's /etc/mime.types.
_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mov": "video/quicktime",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
}


def is_s3_url(url: str) -> bool:
    """Whether a blob store URL names a bucket (`s3://bucket[/prefix]`)."""
    return url.startswith(SCHEME)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`; ValueError for anything else."""
    if not is_s3_url(url):
        raise ValueError(f"not an S3 URL: {url!r} (expected s3://bucket[/prefix])")
    bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
    if len(bucket) < 3:
        raise ValueError(f"invalid S3 bucket name {bucket!r}: 3 characters at least")
    prefix = prefix.strip("/")
    return bucket, check_key(prefix) if prefix else ""


def content_type(key: str) -> str:
    """The Content-Type a blob is stored (and so downloaded) with, from its key's extension."""
    suffix = Path(key).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _policies(endpoint_url: str | None, retry_s: float) -> tuple[ClientConfig, RetryConfig]:
    """Timeouts and retries: every request is bounded, and so is retrying it."""
    client: ClientConfig = {
        "allow_http": bool(endpoint_url and endpoint_url.startswith("http://")),
        "connect_timeout": timedelta(seconds=5),
        # A read that stalls for the whole retry budget (5 to 30 s) fails, and is retried.
        "read_timeout": timedelta(seconds=min(max(retry_s, 5.0), 30.0)),
        # A whole request: one object, or one 5 MB part of a multipart upload.
        "timeout": timedelta(seconds=120),
    }
    retry: RetryConfig = {
        "max_retries": 1000,  # retry_timeout is the bound
        "retry_timeout": timedelta(seconds=retry_s),
        "backoff": {
            "init_backoff": timedelta(milliseconds=100),
            "max_backoff": timedelta(seconds=5),
            "base": 2,
        },
    }
    return client, retry


class S3BlobStore:
    """Blobs as objects under a prefix of one bucket.

    Every operation retries transient failures (connection errors, dropped connections,
    5xx answers, timeouts of reads) with exponential backoff for `retry_s`, then raises
    `BlobStoreError`; so a stopped S3 server fails a worker's job with a clear error after a
    bounded time (`retry_s` plus one request's timeout at most) instead of holding its lease.

    Args:
        bucket: The bucket (it must exist).
        prefix: A key prefix inside it ("" for none), so that deployments can share a bucket.
        scratch_dir: A local directory for temporary files: encoded results before their
            upload, and downloaded blobs while `as_file` lends them.
        endpoint_url: The S3 API of a server other than AWS (`http://host:port`); None: AWS.
            Presigned URLs point at it, so clients must be able to reach it too.
        signer: The API's URL signer, for URLs that outlive presigning (over 7 days); None
            in processes that make no URLs (workers).
        access_key_id: With `secret_access_key`: static credentials. None: the AWS chain.
        secret_access_key: See `access_key_id`.
        region: None: AWS_DEFAULT_REGION or AWS_REGION, else us-east-1.
        retry_s: How long one operation keeps retrying before it fails.
        clock: Unix time (tests move it).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        scratch_dir: Path,
        endpoint_url: str | None = None,
        signer: UrlSigner | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        retry_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.scratch_dir = scratch_dir
        self.retry_s = retry_s
        self._signer = signer
        self._clock = clock
        scratch_dir.mkdir(parents=True, exist_ok=True)
        config: S3Config = {}
        if endpoint_url:
            config["endpoint"] = endpoint_url.rstrip("/")
        if access_key_id and secret_access_key:
            config["access_key_id"] = access_key_id
            config["secret_access_key"] = secret_access_key
        if region:
            config["region"] = region
        client, retry = _policies(endpoint_url, retry_s)
        self._store = S3Store(bucket, config=config, client_options=client, retry_config=retry)

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, op: str, key: str, fn: Callable[[], T]) -> T:
        """Run one client call; a failure that outlived the retries becomes BlobStoreError.
        FileNotFoundError (no such object) passes through for the caller to interpret."""
        try:
            return fn()
        except FileNotFoundError:
            raise
        except BaseError as exc:
            log.error(
                "S3 %s of %s in bucket %s failed after retrying for up to %.0f s: %s",
                op,
                key,
                self.bucket,
                self.retry_s,
                exc,
            )
            raise BlobStoreError(
                f"The object store failed to {op} a file (retried for {self.retry_s:.0f} s)."
            ) from exc

    def scratch_path(self, suffix: str) -> Path:
        """A fresh path under the scratch directory."""
        return self.scratch_dir / f"{secrets.token_hex(8)}{suffix}"

    def put_file(self, key: str, source: Path) -> int:
        """Upload `source` (multipart when large) and remove it; return its size. S3 makes an
        object visible only once it is whole."""
        path = self._path(key)
        size = source.stat().st_size
        attributes: Attributes = {"Content-Type": content_type(key)}
        self._call(
            "store", key, lambda: obstore.put(self._store, path, source, attributes=attributes)
        )
        source.unlink(missing_ok=True)
        return size

    def put_bytes(self, key: str, data: bytes) -> int:
        """Upload `data`; return its size."""
        path = self._path(key)
        attributes: Attributes = {"Content-Type": content_type(key)}
        self._call(
            "store", key, lambda: obstore.put(self._store, path, data, attributes=attributes)
        )
        return len(data)

    def size(self, key: str) -> int | None:
        """The object's size, or None when there is none."""
        path = self._path(key)
        try:
            meta = self._call("look up", key, lambda: obstore.head(self._store, path))
        except FileNotFoundError:
            return None
        return int(meta["size"])

    @contextlib.contextmanager
    def _download(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        local = self.scratch_path(Path(key).suffix)
        try:
            try:
                self._call("read", key, lambda: self._fetch(path, local))
            except FileNotFoundError:
                raise BlobNotFound(key) from None
            yield local
        finally:
            local.unlink(missing_ok=True)

    def _fetch(self, path: str, local: Path) -> None:
        result = obstore.get(self._store, path)
        with local.open("wb") as f:
            for chunk in result.stream(min_chunk_size=CHUNK):
                f.write(chunk)

    def as_file(self, key: str) -> AbstractContextManager[Path]:
        """The object downloaded to a scratch file, removed when the block ends."""
        return self._download(key)

    def local_path(self, key: str) -> Path | None:
        """None: objects are not on this machine's disk."""
        del key
        return None

    def _presign(self, key: str, expires_at: float) -> str:
        path = self._path(key)
        seconds = int(min(max(expires_at - self._clock(), 1), PRESIGN_MAX_S))
        expires_in = timedelta(seconds=seconds)
        # perf: signing is local (no request) and takes microseconds: fine on the event loop.
        return self._call("sign", key, lambda: obstore.sign(self._store, "GET", path, expires_in))

    def direct_url(self, key: str, expires_at: float) -> str | None:
        """A presigned GET valid until `expires_at` (7 days from now at most, 1 s at least)."""
        return self._presign(key, expires_at)

    def url(self, key: str, expires_at: float) -> str:
        """A presigned GET that expires at `expires_at`; past presigning's 7 days, or once
        expired, the API's signed `/media/<key>` link (which redirects, or says expired)."""
        remaining = expires_at - self._clock()
        if 0 < remaining <= PRESIGN_MAX_S:
            return self._presign(key, expires_at)
        if self._signer is None:
            raise RuntimeError("this process holds no URL-signing secret")
        return self._signer.url(media_path(check_key(key)), expires_at)

    def key_of_url(self, url: str) -> str | None:
        """The key a signed `/media/<key>` URL of this server names, while it is valid (a
        presigned URL is fetched like any other)."""
        return signed_key(self._signer, url)

    def delete(self, key: str) -> bool:
        """Remove an object; False when there was none (S3's DELETE cannot tell, so a HEAD
        asks first)."""
        if self.size(key) is None:
            return False
        path = self._path(key)
        self._call("delete", key, lambda: obstore.delete(self._store, path))
        return True

    def probe(self) -> str | None:
        """What keeps this bucket from serving, or None when it works: the server answers,
        the bucket exists, and a small object is written, read back and deleted under the
        prefix. For `openimagine doctor`: each call is tried for `retry_s`, nothing is
        logged, and no bucket is ever created (SeaweedFS creates one on a PUT to it)."""
        path = self._path(f"doctor-probe-{secrets.token_hex(8)}.txt")
        data = secrets.token_bytes(32)
        try:
            next(iter(obstore.list(self._store, self.prefix or None, chunk_size=1)), None)
        except BaseError as exc:
            # Serving never lists: a key without s3:ListBucket is fine, a missing bucket not.
            if not _access_denied(exc):
                return f"list the bucket: {_s3_failure(exc, self.bucket)}"
        step = "write a probe object"
        try:
            obstore.put(self._store, path, data)
            step = "read the probe object back"
            same = bytes(obstore.get(self._store, path).bytes()) == data
            step = "delete the probe object"
            obstore.delete(self._store, path)
        except BaseError as exc:
            with contextlib.suppress(BaseError):
                obstore.delete(self._store, path)
            return f"{step}: {_s3_failure(exc, self.bucket)}"
        return None if same else "read the probe object back: not the bytes written"


_S3_CODE = re.compile(r"<Code>([^<]+)</Code>(?:\s*<Message>([^<]*)</Message>)?")
_STATUS = re.compile(r"status code: (\d{3})")


def _access_denied(exc: BaseError) -> bool:
    """Whether the server refused a signed request of known credentials (not a bad key)."""
    found = _S3_CODE.search(str(exc))
    return found.group(1) == "AccessDenied" if found else isinstance(exc, PermissionDeniedError)


def _s3_failure(exc: BaseError, bucket: str) -> str:
    """One line for a failed S3 call: the server's error code, or why there was no answer."""
    text = str(exc)
    if found := _S3_CODE.search(text):
        code, message = found.group(1), (found.group(2) or "").strip()
        if code == "NoSuchBucket":
            return f"bucket {bucket} does not exist"
        return f"{code}: {message}" if message else code
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or (
        (status := _STATUS.search(text)) and status.group(1) in ("401", "403")
    ):
        return "access denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    if "error sending request" in text or "timed out" in text:
        return "no answer from the S3 server (is OPENIMAGINE_BLOBS__S3_ENDPOINT_URL right?)"
    return text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
