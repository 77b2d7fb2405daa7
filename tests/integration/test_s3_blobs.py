"""The S3 blob store against a real S3-compatible server (SeaweedFS, started once for this
module): objects land under the prefix with their Content-Type, presigned URLs download the
right bytes over HTTP until they expire, the sweeper deletes expired objects, and an
unreachable server fails each call with a clear error after a bounded retry."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError
from tests.contract.test_store import new_job, update_for
from tests.helpers import free_port
from tests.s3_server import SeaweedS3

from openimagine.config import BlobSettings, Settings
from openimagine.delivery.blobs import BlobNotFound, BlobStoreError
from openimagine.delivery.s3 import PRESIGN_MAX_S, S3BlobStore, parse_s3_url
from openimagine.delivery.signing import UrlSigner
from openimagine.delivery.sweeper import Sweeper
from openimagine.domain.jobs import JobStatus
from openimagine.store.memory import MemoryStore

PREFIX = "deploy-a"


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


def make_store(weed: SeaweedS3, tmp_path: Path, **options) -> S3BlobStore:
    srv = weed.server
    return S3BlobStore(
        srv.bucket,
        PREFIX,
        scratch_dir=tmp_path / "scratch",
        endpoint_url=srv.endpoint,
        access_key_id=srv.access_key,
        secret_access_key=srv.secret_key,
        region=srv.region,
        **options,
    )


@pytest.fixture
def blobs(weed: SeaweedS3, tmp_path: Path) -> S3BlobStore:
    return make_store(weed, tmp_path, signer=UrlSigner(b"secret", "http://api.test"))


def head(weed: SeaweedS3, key: str) -> dict | None:
    """The object as S3 itself reports it (boto3, behind the store's back)."""
    try:
        return weed.client().head_object(Bucket=weed.bucket, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def test_bytes_round_trip_under_the_prefix_with_their_content_type(blobs, weed):
    data = os.urandom(70_000)
    assert blobs.put_bytes("inputs/a.png", data) == len(data)
    stored = head(weed, f"{PREFIX}/inputs/a.png")
    assert stored is not None
    assert stored["ContentType"] == "image/png" and stored["ContentLength"] == len(data)
    assert blobs.size("inputs/a.png") == len(data)
    with blobs.as_file("inputs/a.png") as path:
        assert path.read_bytes() == data and path.suffix == ".png"
        assert path.parent == blobs.scratch_dir
    assert not path.exists()  # the download is removed when the block ends
    assert blobs.local_path("inputs/a.png") is None
    assert blobs.delete("inputs/a.png") is True
    assert head(weed, f"{PREFIX}/inputs/a.png") is None
    assert blobs.size("inputs/a.png") is None


def test_a_missing_object_is_not_found_everywhere(blobs):
    assert blobs.size("videos/none.mp4") is None
    assert blobs.delete("videos/none.mp4") is False
    with pytest.raises(BlobNotFound), blobs.as_file("videos/none.mp4"):
        pass
    assert list(blobs.scratch_dir.iterdir()) == []


def test_put_file_moves_a_large_file_in_and_streams_it_back(blobs, weed):
    source = blobs.scratch_path(".mp4")
    data = os.urandom(13 * 1024 * 1024)  # over obstore's 5 MB chunk: a multipart upload
    source.write_bytes(data)
    assert blobs.put_file("videos/big.mp4", source) == len(data)
    assert not source.exists()  # moved, as the local store does
    assert head(weed, f"{PREFIX}/videos/big.mp4")["ContentType"] == "video/mp4"
    with blobs.as_file("videos/big.mp4") as path:
        assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_a_presigned_url_downloads_the_bytes_until_its_expiry(blobs, weed):
    data = os.urandom(5000)
    blobs.put_bytes("videos/clip.webm", data)
    url = blobs.url("videos/clip.webm", time.time() + 3600)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == weed.endpoint
    assert parts.path == f"/{weed.bucket}/{PREFIX}/videos/clip.webm"
    assert int(parse_qs(parts.query)["X-Amz-Expires"][0]) in (3599, 3600)
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == "video/webm"
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == data[10:20]
    tampered = url.replace("clip.webm", "clip2.webm")
    assert httpx.get(tampered, timeout=10).status_code == 403

    # SigV4 dates are whole seconds: a 3 s URL works for 2 to 3 s.
    short = blobs.url("videos/clip.webm", time.time() + 3.5)
    assert httpx.get(short, timeout=10).status_code == 200
    time.sleep(4.2)
    assert httpx.get(short, timeout=10).status_code == 403


def test_urls_past_presignings_week_are_the_apis_signed_links(blobs):
    blobs.put_bytes("videos/long.mp4", b"x")
    far = time.time() + 30 * 24 * 3600
    url = blobs.url("videos/long.mp4", far)
    assert url.startswith("http://api.test/media/videos/long.mp4?exp=")
    # The /media route redirects such a link to a presigned URL, capped at the week.
    direct = blobs.direct_url("videos/long.mp4", far)
    assert direct is not None
    assert int(parse_qs(urlsplit(direct).query)["X-Amz-Expires"][0]) == PRESIGN_MAX_S
    assert httpx.get(direct, timeout=10).content == b"x"


def test_a_worker_store_without_a_signer_presigns_but_makes_no_long_links(weed, tmp_path):
    worker = make_store(weed, tmp_path)
    worker.put_bytes("videos/w.mp4", b"w")
    assert worker.url("videos/w.mp4", time.time() + 60).startswith(weed.endpoint)
    with pytest.raises(RuntimeError, match="no URL-signing secret"):
        worker.url("videos/w.mp4", time.time() + PRESIGN_MAX_S + 3600)


def test_keys_that_could_escape_the_prefix_are_refused(blobs):
    for key in ("../other/x.mp4", "/abs.mp4", "videos/../../x", ""):
        with pytest.raises(ValueError, match="invalid blob key"):
            blobs.put_bytes(key, b"x")


def test_s3_urls_parse_and_settings_refuse_unknown_schemes():
    assert parse_s3_url("s3://media-bucket") == ("media-bucket", "")
    assert parse_s3_url("s3://media-bucket/a/b/") == ("media-bucket", "a/b")
    with pytest.raises(ValueError, match="3 characters"):
        parse_s3_url("s3://ab/x")
    with pytest.raises(ValueError, match="bucket"):
        BlobSettings(url="gs://bucket")
    settings = Settings(data_dir=Path("/d"), blobs=BlobSettings(url="s3://bucket/p"))
    assert settings.blobs.is_s3() and not Settings(data_dir=Path("/d")).blobs.is_s3()
    assert Settings(blobs=BlobSettings(url="/srv/blobs")).blob_dir() == Path("/srv/blobs")


async def test_the_sweeper_deletes_expired_objects_from_the_bucket(blobs, weed):
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    nj = new_job(2)
    await store.jobs.create(nj)
    claim = await store.queue.claim("w1", 60)
    assert claim is not None
    for video_uuid, expires_at in zip(nj.video_uuids, [1060.0, 1200.0], strict=True):
        update = dataclasses.replace(update_for(video_uuid), expires_at=expires_at)
        blobs.put_bytes(update.blob_key, b"video bytes")
        await store.queue.complete_result(nj.task_uuid, claim.token, update)
    await store.queue.finish(nj.task_uuid, claim.token, JobStatus.SUCCEEDED)
    sweeper = Sweeper(store.sweep, blobs, interval_s=60)
    gone, kept = (f"{PREFIX}/videos/{u}.mp4" for u in nj.video_uuids)

    assert await sweeper.sweep() == 0
    now[0] = 1100.0
    assert await sweeper.sweep() == 1
    assert head(weed, gone) is None and head(weed, kept) is not None
    now[0] = 1300.0
    assert await sweeper.sweep() == 1
    assert head(weed, kept) is None


def test_an_unreachable_server_fails_each_call_clearly_after_a_bounded_retry(tmp_path):
    dead = S3BlobStore(
        "openimagine",
        scratch_dir=tmp_path / "scratch",
        endpoint_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        access_key_id="k",
        secret_access_key="s",
        retry_s=1.0,
    )
    source = dead.scratch_path(".mp4")
    source.write_bytes(b"a result")
    t0 = time.monotonic()
    with pytest.raises(BlobStoreError, match=r"failed to store a file \(retried for 1 s\)") as e:
        dead.put_file("videos/r.mp4", source)
    assert 0.5 < time.monotonic() - t0 < 10  # retried, then gave up
    assert e.value.code == "storageError" and "127.0.0.1" not in e.value.message
    assert source.exists()  # not consumed: the caller still owns (and removes) it
    with pytest.raises(BlobStoreError, match="failed to read"), dead.as_file("inputs/a.png"):
        pass
    with pytest.raises(BlobStoreError, match="failed to look up"):
        dead.size("inputs/a.png")
