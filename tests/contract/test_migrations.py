"""Upgrading a store written by an earlier release keeps what users submitted: queued jobs stay
runnable, and pending deliveries still go out, on SQLite and PostgreSQL."""

from __future__ import annotations

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
from openimagine.domain.jobs import JobStatus, ResultStatus
from openimagine.domain.requests import Mode, SafetyMode
from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO
from openimagine.runware.validation import validate_video_task
from openimagine.store import migrations
from openimagine.store.sql import SqlStore
from openimagine.store.sql.database import normalize_url


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
