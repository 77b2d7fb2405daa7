"""A fleet on PostgreSQL: claims per second, scaling, an idle worker's CPU, polls under load.

    python -m bench.fleet [claims] [scaling] [idle] [polls] [--workers 1,2,4,8]

- `claims`: no-op jobs claimed and finished per second by 1, 2, 4, 8 worker processes, each
  job what a worker does around a model's work, through the store's own API: `claim`, then
  `complete_result` of its one result (the result row, its usage entry, the job's end).
  Yardstick, on the same database in the same run: procrastinate 3.10's no-op jobs (claim
  and finish), one process per worker, concurrency 1 (its own environment,
  .venv-bench/procrastinate, made on first use).
  Target: at least 1,000 claims/s with 8 workers.
- `scaling`: `openimagine serve` with N workers of the fixture backend taking a fixed time a
  clip (then the real encode and store); rounds of N tasks, timed from the submit to the last
  success. Efficiency: N workers' tasks per second over N x one worker's (measured first, in
  the same run); the time against the clips alone is printed too. Target: at least 90 % with
  8 workers. The encode is real CPU work: on a 2-core machine 8 workers' encodes queue for
  the cores, so the clip's time (default 10 s) stands for a model's, long against it.
- `idle`: CPU seconds an idle `openimagine worker` process spends over 30 s (it sleeps on
  LISTEN; the fallback poll is the default's).
- `polls`: p50/p99 of getResponse under the load of the fleet test (1,000 tasks, 200
  clients, 2 API replicas, 4 workers, a SeaweedFS bucket), with `tests.fleet`'s fleet.

Each part starts from an empty PostgreSQL schema of its own (127.0.0.1:5432, database test).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx

from bench.api import store_url
from bench.common import (
    BIN,
    MODEL,
    ROOT,
    Proc,
    cpu_s,
    free_port,
    load_note,
    machine,
    our_server,
    verdict,
)
from bench.noisy import task, wait_workers

CLAIMS_TARGET = 1000.0
SCALING_TARGET = 0.90
PROCRASTINATE = ROOT / ".venv-bench" / "procrastinate"
KEYS = 8  # tenants whose jobs are interleaved (fair share takes turns between them)


# -- claims ------------------------------------------------------------------------------


def _new_job(owner: str) -> Any:
    from openimagine.domain.generation import GenerationJob
    from openimagine.domain.jobs import NewJob
    from openimagine.domain.requests import Mode, SafetyMode

    spec = GenerationJob(
        model=MODEL, prompt="a lighthouse", mode=Mode.T2V, width=480, height=480,
        num_frames=24, fps=24, duration_s=1, source_seconds=None, output_format="MP4",
        output_quality=95, ttl_s=3600, number_results=1, include_cost=True,
        safety_mode=SafetyMode.FAST,
    )  # fmt: skip
    return NewJob(
        task_uuid=str(uuid.uuid4()), owner=owner, task_type="videoInference", spec=spec,
        request_hash=secrets.token_hex(8), max_attempts=2, video_uuids=[str(uuid.uuid4())],
        seeds=[1], costs=[0.05],
    )  # fmt: skip


async def _fill(url: str, jobs: int) -> None:
    from openimagine.store.sql import SqlStore

    store = SqlStore(url, pool_size=2)
    try:
        await store.migrate()
        for start in range(0, jobs, 200):  # concurrent submits: one transaction a batch
            batch = [_new_job(f"key-{i % KEYS}") for i in range(start, min(jobs, start + 200))]
            await asyncio.gather(*(store.jobs.create(job) for job in batch))
    finally:
        await store.close()


def _claimer(url: str, done: Synchronized[int], go: Event, index: int) -> None:
    """One worker process's store loop, without a model: claim, then complete the result
    (which ends the job)."""
    from openimagine.domain.jobs import ResultUpdate
    from openimagine.store.sql import SqlStore

    async def run() -> None:
        store = SqlStore(url, pool_size=2)
        queue, count = store.queue, 0
        try:
            await queue.claim(f"warm-{index}", 60)  # connections open before the clock
            go.wait()
            while (claim := await queue.claim(f"bench-{index}", 60)) is not None:
                task_uuid, token = claim.job.task_uuid, claim.token
                video = claim.results[0].video_uuid
                update = ResultUpdate(video, f"videos/{video}.mp4", "video/mp4", 1000, None, 9e9)
                # The worker's own calls: the last result ends the job with it.
                await queue.complete_result(task_uuid, token, update, last=True)
                count += 1
        finally:
            await store.close()
        with done.get_lock():
            done.value += count

    asyncio.run(run())


def _machine_cpu_s() -> float:
    """CPU seconds every core of this machine has been busy (/proc/stat: all but idle and
    iowait): PostgreSQL's backends exit with their connections, so their share is the
    machine's less the workers'."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def ours(workers: int, jobs: int) -> tuple[float, float, float]:
    """Our jobs per second with `workers` processes, from a queue of `jobs`; and the CPU
    milliseconds a job cost the workers, and the rest of the machine (PostgreSQL, mostly)."""
    with store_url("postgresql") as url:
        assert url is not None
        asyncio.run(_fill(url, jobs + workers))  # each process's warm-up claim takes one
        ctx = multiprocessing.get_context("spawn")
        done, go = ctx.Value("i", 0), ctx.Event()
        procs = [ctx.Process(target=_claimer, args=(url, done, go, i)) for i in range(workers)]
        for p in procs:
            p.start()
        time.sleep(2 + 0.5 * workers)  # every process imported and connected
        ours_before = sum(cpu_s([p.pid]) for p in procs if p.pid is not None)
        machine_before = _machine_cpu_s()
        start = time.perf_counter()
        go.set()
        # The processes' own CPU, read just before they exit (the sum of those still alive).
        alive = {p.pid: cpu_s([p.pid]) for p in procs if p.pid is not None}
        while any(p.is_alive() for p in procs):
            for p in procs:
                if p.pid is not None and p.is_alive():
                    with contextlib.suppress(OSError):  # exited meanwhile
                        alive[p.pid] = cpu_s([p.pid])
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        ours_used = sum(alive.values()) - ours_before
        rest = _machine_cpu_s() - machine_before - ours_used
        if done.value != jobs:
            raise RuntimeError(f"{done.value} of {jobs} jobs done")
    return jobs / elapsed, ours_used / jobs * 1e3, rest / jobs * 1e3


def _procrastinate_python() -> Path:
    python = PROCRASTINATE / "bin" / "python"
    if not (PROCRASTINATE / ".ok").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PROCRASTINATE)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "procrastinate>=3.10,<3.11"]
        subprocess.run(pip, check=True)
        (PROCRASTINATE / ".ok").touch()
    return python


def theirs(workers: int, jobs: int) -> float:
    """procrastinate's no-op jobs per second with `workers` processes."""
    python, script = str(_procrastinate_python()), str(ROOT / "bench" / "procrastinate_noop.py")
    with store_url("postgresql") as url:
        assert url is not None
        conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
        subprocess.run([python, script, conninfo, "defer", str(jobs)], check=True)
        start = time.perf_counter()
        procs = [subprocess.Popen([python, script, conninfo, "work"]) for _ in range(workers)]
        for p in procs:
            p.wait()
        elapsed = time.perf_counter() - start
    return jobs / elapsed


def claims(worker_counts: list[int], jobs: int) -> None:
    print(f"## claims: {jobs:,} no-op jobs, {KEYS} keys; {load_note()}", flush=True)
    for n in worker_counts:
        our_rate, our_ms, pg_ms = ours(n, jobs)
        their_rate = theirs(n, jobs)
        target = f" (target >= {CLAIMS_TARGET:,.0f}/s: {verdict(our_rate >= CLAIMS_TARGET)})"
        print(
            f"{n} worker{'s' * (n > 1)}: {our_rate:,.0f} jobs/s; procrastinate "
            f"{their_rate:,.0f} jobs/s -> {our_rate / their_rate:.2f}x"
            f"{target if n == 8 else ''}; CPU a job: workers {our_ms:.2f} ms, "
            f"the rest of the machine (PostgreSQL) {pg_ms:.2f} ms",
            flush=True,
        )


# -- scaling -----------------------------------------------------------------------------


def makespan(workers: int, tasks: int, clip_s: float) -> float:
    """Seconds from one submit of `tasks` to the last success, with `workers` workers."""
    env = {
        "OPENIMAGINE_MODEL__BACKEND": "fixture",
        "OPENIMAGINE_MODEL__FIXTURE_SECONDS": str(clip_s),
        "OPENIMAGINE_WORKERS__ENCODE_THREADS": "1",
    }
    key = "bench-scaling-key"
    with store_url("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        server = our_server(Path(tmp) / "data", key, workers, env=env, store=url)
        headers = {"Authorization": f"Bearer {key}"}
        try:
            wait_workers(server, workers)
            with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
                batch = [task("a lighthouse") for _ in range(tasks)]
                start = time.perf_counter()
                r = client.post("/v1", json=batch)
                r.raise_for_status()
                pending = {t["taskUUID"] for t in batch}
                while pending:
                    polls = [{"taskType": "getResponse", "taskUUID": u} for u in pending]
                    for item in client.post("/v1", json=polls).json().get("data", []):
                        if item.get("status") == "success":
                            pending.discard(item["taskUUID"])
                        elif item.get("status") == "error":
                            raise RuntimeError(f"task failed: {item}")
                    time.sleep(0.05)
                return time.perf_counter() - start
        finally:
            server.stop()


def scaling(worker_counts: list[int], clip_s: float, rounds: int) -> None:
    print(
        f"## scaling: fixture backend, {clip_s} s a clip + encode (480x480, 1 s MP4), "
        f"{rounds} rounds of N tasks; {load_note()}",
        flush=True,
    )
    one: float | None = None  # tasks per second of one worker
    for n in worker_counts:
        measured = makespan(n, n * rounds, clip_s)
        rate = n * rounds / measured
        one = rate if n == 1 else one
        ideal = rounds * clip_s
        line = (
            f"{n} worker{'s' * (n > 1)}: {n * rounds} tasks in {measured:.2f} s "
            f"({rate:.3f} tasks/s); against the clips alone ({ideal:.0f} s): {ideal / measured:.1%}"
        )
        if one is not None and n > 1:
            efficiency = rate / (n * one)
            line += f"; against {n} x one worker's rate: {efficiency:.1%}"
            if n == 8:
                line += f" (target >= 90 %: {verdict(efficiency >= SCALING_TARGET)})"
        print(line, flush=True)


# -- idle --------------------------------------------------------------------------------


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    children = [int(p) for p in out.split()]
    return [pid, *(d for c in children for d in _tree(c))]


def idle(seconds: float) -> None:
    """An idle worker's CPU over `seconds`, after it is ready."""
    key = "bench-idle-key"
    with store_url("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        assert url is not None
        port = free_port()
        env = {
            "OPENIMAGINE_MODEL__BACKEND": "fixture",
            "OPENIMAGINE_WORKERS__METRICS_PORT": str(port),
        }
        api = our_server(Path(tmp) / "api", key, 0, store=url)
        cmd = [str(BIN / "openimagine"), "worker", "--store", url, "--count", "1"]
        cmd += ["--data-dir", str(Path(tmp) / "worker")]
        worker = Proc(cmd, port, "/metrics", env=env, log=Path(tmp) / "worker.log")
        try:
            wait_workers(api, 1)
            time.sleep(2)  # past start-up's last steps
            pids = _tree(worker.proc.pid)
            before = cpu_s(list(pids))
            time.sleep(seconds)
            used = cpu_s(list(pids)) - before
        finally:
            worker.stop()
            api.stop()
    print(
        f"## idle: one `openimagine worker` (fixture backend) over {seconds:.0f} s: "
        f"{used:.3f} CPU s ({used / seconds:.2%} of a core), {len(pids)} processes; "
        f"{load_note()}",
        flush=True,
    )


# -- polls under load --------------------------------------------------------------------


def polls(tasks: int, clients: int) -> None:
    """The fleet load test's run (`tests/faults/test_fleet_load.py`): `tasks` from `clients`
    concurrent clients, each submitting its share to one replica and polling it across both,
    one request every 0.5 s; 2 replicas, 4 worker processes (fixture backend, no model time),
    PostgreSQL and a SeaweedFS bucket."""
    from tests.fleet import Fleet, run_load
    from tests.s3_server import SeaweedS3

    keys = [f"bench-load-{i}-{secrets.token_hex(8)}" for i in range(4)]
    batch = [{**task("a lighthouse"), "seed": i + 1, "outputQuality": 20} for i in range(tasks)]
    with store_url("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        assert url is not None
        weed = SeaweedS3(Path(tmp) / "weed").start()
        fleet = Fleet(Path(tmp) / "fleet", store_url=url, s3=weed.server, keys=keys)
        try:
            fleet.start()
            report = run_load(fleet.bases, keys, batch, clients=clients, interval_s=0.5)
        finally:
            fleet.stop()
            weed.stop()
    done = sum(item.get("status") == "success" for item in report.items.values())
    p50, p99 = (report.percentile(report.poll_s, q) * 1e3 for q in (0.5, 0.99))
    bad = sum(n for status, n in report.statuses.items() if status >= 500)
    print(
        f"## polls under load: {tasks:,} tasks, {clients} clients, 2 replicas, 4 workers: "
        f"{done:,} succeeded in {report.wall_s:.1f} s; getResponse p50 {p50:.1f} ms, p99 "
        f"{p99:.1f} ms over {len(report.poll_s):,} polls; 5xx: {bad}, no answer: "
        f"{len(report.errors)}; {load_note()}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parts", nargs="*", default=["claims", "scaling", "idle", "polls"])
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts, comma-separated")
    parser.add_argument("--jobs", type=int, default=4000, help="jobs per claims run")
    parser.add_argument("--clip-seconds", type=float, default=10.0, help="scaling: a clip's time")
    parser.add_argument("--rounds", type=int, default=3, help="scaling: rounds of N tasks")
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--tasks", type=int, default=1000, help="polls: tasks submitted")
    parser.add_argument("--clients", type=int, default=200, help="polls: concurrent clients")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(f"# fleet on PostgreSQL, {machine()}", flush=True)
    for part in args.parts:
        if part == "claims":
            claims(counts, args.jobs)
        elif part == "scaling":
            scaling(counts, args.clip_seconds, args.rounds)
        elif part == "idle":
            idle(args.idle_seconds)
        elif part == "polls":
            polls(args.tasks, args.clients)
        else:
            raise SystemExit(f"unknown part {part!r}")


if __name__ == "__main__":
    main()
