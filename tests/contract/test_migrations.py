"""Upgrading a store written by an earlier release keeps what users submitted: queued jobs stay
runnable, and pending deliveries still go out, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import uuid
from fractions import Fraction
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from openimagine.config import DeliverySettings
from openimagine.domain.deliveries import DeliveryEvent, DeliveryKind, DeliveryStatus
from openimagine.domain.jobs import Capability, JobStatus, ResultStatus
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.runware.validation import validate_video_task
from openimagine.store import migrations
from openimagine.store.sql import SqlStore
from openimagine.store.sql.codec import spec_json
from openimagine.store.sql.database import normalize_url
from tests.contract.test_store import SPEC


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'old.db'}"
    return str(request.getfixturevalue("pg_schema"))


def _at_revision(url: str, revision: str) -> sa.Engine:
    engine = sa.create_engine(normalize_url(url))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    return engine


# A V2V job queued by 0.1.0: its request as that release stored it (inputs as "blob:" refs,
# the frame count and the source's exact length filled in at submit).
OLD_REQUEST = {
    "model": "xai:grok-imagine@video",
    "prompt": "a reef at night",
    "mode": "v2v",
    "width": 848,
    "height": 480,
    "resolution": None,
    "duration_s": None,
    "fps": 24,
    "output_format": "WEBM",
    "output_quality": 80,
    "ttl_s": 3600,
    "number_results": 1,
    "include_cost": True,
    "safety_mode": "fast",
    "webhook_url": "https://hooks.example.com/done",
    "upload_endpoint": None,
    "seed": 7,
    "frame_image": None,
    "reference_images": [],
    "video": "blob:inputs/src.mp4",
    "num_frames": 162,
    "source_seconds": "101/15",
}
T2V_TASK = {
    "taskType": "videoInference",
    "taskUUID": "3f1d6f2e-0b6c-4b0f-9b1e-6a8d2c4e5f70",
    "model": "xai:grok-imagine@video",
    "positivePrompt": "a reef at night",
    "width": 848,
    "height": 480,
    "duration": 2,
    "outputFormat": "WEBM",
    "outputQuality": 80,
    "ttl": 3600,
    "includeCost": True,
    "webhookURL": "https://hooks.example.com/done",
    "seed": 7,
}
T2V_REQUEST = {
    **OLD_REQUEST,
    "mode": "t2v",
    "video": None,
    "num_frames": None,
    "source_seconds": None,
    "duration_s": 2,
    "safety_mode": "none",
}


async def test_jobs_and_deliveries_of_0_1_survive_the_upgrade(url: str):
    engine = _at_revision(url, "0001")
    v2v, t2v, video = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        for task, request in ((v2v, OLD_REQUEST), (t2v, T2V_REQUEST)):
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash,"
                    " status, priority, attempts, max_attempts, progress, cancel_requested,"
                    " number_results, created_at) VALUES (:t, 'k1', 'videoInference', :m, :r,"
                    " 'h', 'queued', 0, 0, 3, 0, false, 1, 1.0)"
                ),
                {"t": task, "m": request["model"], "r": json.dumps(request)},
            )
        conn.execute(
            sa.text(
                "INSERT INTO results (video_uuid, task_uuid, idx, seed, status, cost) "
                "VALUES (:v, :t, 0, 7, 'processing', 0.404)"
            ),
            {"v": video, "t": v2v},
        )
        for kind, payload in (
            ("upload", {"videoUUID": video, "blobKey": "videos/x.mp4", "contentType": "a/b"}),
            ("webhook", {"data": [{"videoUUID": video, "status": "success"}]}),
            ("webhook", {"errors": [{"videoUUID": video, "code": "x"}]}),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO webhook_outbox (id, task_uuid, kind, url, payload, status,"
                    " attempts, next_attempt_at, created_at) VALUES (:i, :t, :k, 'http://h/',"
                    " :p, 'pending', 0, 1.0, 1.0)"
                ),
                {"i": str(uuid.uuid4()), "t": v2v, "k": kind, "p": json.dumps(payload)},
            )
        conn.execute(
            sa.text(
                "INSERT INTO api_keys (id, key_hash, label, prefix, created_at) VALUES"
                " (:i, :h, 'configured', 'oi_flag', 1.0), (:j, :g, 'mine', 'oi_mine', 1.0)"
            ),
            {"i": str(uuid.uuid4()), "h": "f" * 64, "j": str(uuid.uuid4()), "g": "e" * 64},
        )
    engine.dispose()

    store = SqlStore(url)
    await store.migrate()
    try:
        got = await store.jobs.get(v2v, "k1")
        assert got is not None
        spec = got[0].spec
        assert (spec.mode, spec.video, spec.num_frames) == (Mode.V2V, "inputs/src.mp4", 162)
        assert (spec.source_seconds, spec.duration_s) == (Fraction(101, 15), None)
        assert (spec.output_format, spec.safety_mode) == ("WEBM", SafetyMode.FAST)
        [result] = got[1]  # its unfinished result now lives in the job's plan
        assert (result.video_uuid, result.seed, result.cost) == (video, 7, 0.404)
        assert result.status is ResultStatus.PROCESSING
        placed = [await store.jobs.get_placed(task, None) for task in (got[0].task_uuid, t2v)]
        places = sorted(p[2] for p in placed if p is not None and p[2] is not None)
        assert places == [0, 1]  # both queued, numbered by age
        plain = await store.jobs.get(t2v, "k1")
        assert plain is not None and plain[0].spec.num_frames == 48  # 2 s at 24 fps
        # The same task sent again after the upgrade is the same request (idempotent).
        again = validate_video_task(T2V_TASK, GROK_IMAGINE_VIDEO, DeliverySettings())
        assert plain[0].request_hash == again.fingerprint()
        rows = await store.jobs.deliveries(v2v)
        assert sorted((d.kind, d.event, d.video_uuid or "") for d in rows) == [
            (DeliveryKind.UPLOAD, DeliveryEvent.RESULT_READY, video),
            (DeliveryKind.WEBHOOK, DeliveryEvent.RESULT_READY, video),
            (DeliveryKind.WEBHOOK, DeliveryEvent.TASK_FAILED, ""),
        ]
        assert {d.status for d in rows} == {DeliveryStatus.PENDING}
        assert await store.outbox.claim(10, 30, busy=["h:80"]) == []  # destinations filled in
        assert len(await store.outbox.claim(10, 30, per_host=2)) == 2
        await store.keys.configure({})  # the flag's key of 0.1 is retired once not given
        assert await store.keys.find("f" * 64) is None and await store.keys.find("e" * 64)
        claim = await store.queue.claim("w", 30)  # the queued jobs still run
        assert claim is not None and claim.job.status is JobStatus.RUNNING
    finally:
        await store.close()


async def test_queued_and_running_jobs_of_0005_are_sized_for_capable_workers(url: str):
    engine = _at_revision(url, "0005")
    sizes = {"small": (848, 480, 48), "big": (1280, 720, 360)}
    rows = [  # task, status, size, lease expires
        ("small-queued", "queued", "small", None),
        ("big-queued", "queued", "big", None),
        ("big-running", "running", "big", 1.0),  # its lease ran out long ago
        ("big-done", "succeeded", "big", None),
    ]
    with engine.begin() as conn:
        for seq, (task, status, size, expires) in enumerate(rows):
            width, height, frames = sizes[size]
            spec = dataclasses.replace(SPEC, width=width, height=height, num_frames=frames)
            conn.execute(
                sa.text(
                    "INSERT INTO jobs (task_uuid, owner, task_type, model, request, request_hash,"
                    " status, priority, attempts, max_attempts, progress, cancel_requested,"
                    " number_results, created_at, seq, results_plan, turn, lease_owner,"
                    " lease_token, lease_expires_at) VALUES (:t, 'k1', 'videoInference', :m, :r,"
                    " 'h', :s, 0, :a, 3, 0, false, 1, 1.0, :q, :p, :q, :o, :o, :e)"
                ),
                {
                    "t": task, "m": spec.model, "r": spec_json(spec), "s": status,
                    "a": int(status != "queued"), "q": seq, "e": expires,
                    "o": "gone" if status == "running" else None,
                    "p": json.dumps([[str(uuid.uuid4()), 7, 0.1]]),
                },
            )  # fmt: skip
    engine.dispose()

    store = SqlStore(url)
    await store.migrate()
    try:
        engine = sa.create_engine(normalize_url(url))
        with engine.connect() as conn:
            stored = dict(conn.execute(sa.text("SELECT task_uuid, pixel_frames FROM jobs")).all())
        engine.dispose()
        assert stored == {
            "small-queued": 848 * 480 * 48,
            "big-queued": 1280 * 720 * 360,
            "big-running": 1280 * 720 * 360,
            "big-done": None,  # never claimed again
        }
        small = Capability(max_pixel_frames=848 * 480 * 48)
        claim = await store.queue.claim("small", 30, capability=small)
        assert claim is not None and claim.job.task_uuid == "small-queued"
        assert await store.queue.claim("small", 30, capability=small) is None
        big = Capability(max_pixel_frames=1280 * 720 * 360)
        claimed = [await store.queue.claim("big", 30, capability=big) for _ in range(3)]
        assert [c.job.task_uuid if c else None for c in claimed] == [
            "big-running", "big-queued", None,
        ]  # fmt: skip
    finally:
        await store.close()
