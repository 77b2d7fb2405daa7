"""The TTL sweeper on each store backend, with real files: only expired results lose theirs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from openimagine.delivery.blobs import LocalBlobStore
from openimagine.delivery.sweeper import Sweeper
from openimagine.domain.jobs import JobStatus
from openimagine.store.protocols import TaskStore
from tests.contract.test_store import new_job, update_for


async def test_sweeper_deletes_only_files_whose_urls_expired(store: TaskStore, tmp_path: Path):
    now = [1000.0]
    store.clock = lambda: now[0]  # type: ignore[attr-defined]
    blobs = LocalBlobStore(tmp_path / "blobs")
    nj = new_job(3)
    await store.jobs.create(nj)
    claim = await store.queue.claim("w1", 60)
    assert claim is not None
    for video_uuid, expires_at in zip(nj.video_uuids, [1060.0, 1200.0, 1060.0], strict=True):
        update = dataclasses.replace(update_for(video_uuid), expires_at=expires_at)
        blobs.put_bytes(update.blob_key, b"video bytes")
        await store.queue.complete_result(nj.task_uuid, claim.token, update)
    await store.queue.finish(nj.task_uuid, claim.token, JobStatus.SUCCEEDED)
    sweeper = Sweeper(store.sweep, blobs, interval_s=60, batch=1)  # batch 1: the loop must go on

    assert await sweeper.sweep() == 0  # nothing has expired yet
    now[0] = 1100.0
    assert await sweeper.sweep() == 2
    _, results = await store.jobs.get(nj.task_uuid, None) or (None, [])
    kept = {r.video_uuid: r.blob_key for r in results}
    assert kept[nj.video_uuids[0]] is None and kept[nj.video_uuids[2]] is None
    key = kept[nj.video_uuids[1]]
    assert key is not None and blobs.local_path(key) is not None
    assert sorted(p.name for p in (tmp_path / "blobs" / "videos").iterdir()) == [Path(key).name]
    assert await sweeper.sweep() == 0
    now[0] = 1300.0
    assert await sweeper.sweep() == 1
    assert list((tmp_path / "blobs" / "videos").iterdir()) == []
