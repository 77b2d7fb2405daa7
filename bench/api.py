"""API benchmarks: submit throughput and getResponse latency, each against the bare endpoint.

    python -m bench.api

Submit: `wrk -t2 -c32 -d8s` POSTing one videoInference task (480x480, 1 s) per request with a
fresh taskUUID. getResponse: open loop, 100 pollers each asking for one task every 0.5 s from a
random phase for 10 s (~2,000 requests); p50/p99. Both sides alternate, best of two each.
The server under test has no workers, so the figures are the API's own.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from bench.common import MODEL, ROOT, bare_server, load_note, machine, our_server, ratio, verdict

KEY = "bench-key"
LUA = ROOT / "bench" / "submit.lua"
RUNS = 2


def wrk(base: str, seconds: int = 8) -> float:
    """Requests per second over one wrk run; any non-2xx response fails the benchmark."""
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "-s", str(LUA), base + "/v1"],
        capture_output=True,
        text=True,
        check=True,
        env={"BENCH_KEY": KEY, "PATH": "/usr/bin:/bin"},
    ).stdout
    m = re.search(r"BENCH requests=(\d+) duration_us=(\d+) non2xx=(\d+) errors=(\d+)", out)
    if m is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, duration_us, non2xx, errors = (int(x) for x in m.groups())
    if non2xx or errors or "Non-2xx" in out:
        raise RuntimeError(f"non-2xx responses or socket errors during the run:\n{out}")
    return requests / (duration_us / 1e6)


def submit_tasks(base: str, n: int) -> list[str]:
    """Queue `n` small tasks (nothing runs them: the server has no workers)."""
    ids = []
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        for _ in range(n):
            tid = str(uuid.uuid4())
            task = {
                "taskType": "videoInference",
                "taskUUID": tid,
                "model": MODEL,
                "positivePrompt": "bench",
                "width": 480,
                "height": 480,
                "duration": 1,
            }
            client.post(base + "/v1", json=[task]).raise_for_status()
            ids.append(tid)
    return ids


async def _poller(port: int, tid: str, end: float, out: list[float]) -> None:
    # A raw keep-alive HTTP/1.1 connection per poller. httpx's async pool with 100 connections
    # costs the client itself tens to thousands of milliseconds per request on 2 cores (bare
    # endpoint: p99 3.5 s through httpx, about 5 ms this way), which would measure the client.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps([{"taskType": "getResponse", "taskUUID": tid}]).encode()
    request = (
        b"POST /v1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    ) + body
    await asyncio.sleep(random.random() * 0.5)  # random phase, as independent SDK clients
    next_at = time.perf_counter()
    try:
        while next_at < end:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            out.append(time.perf_counter() - t0)
            if not 200 <= status < 300:
                raise RuntimeError(f"getResponse answered {status}")
            next_at += 0.5  # open loop: the schedule does not wait for slow responses
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    finally:
        writer.close()


async def poll_latency(
    port: int, ids: list[str], seconds: float = 10.0
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, requests) for one poller per id."""
    out: list[float] = []
    end = time.perf_counter() + seconds
    await asyncio.gather(*(_poller(port, tid, end, out) for tid in ids))
    qs = statistics.quantiles(out, n=100)
    return qs[49] * 1000, qs[98] * 1000, len(out)


def main() -> None:
    print(f"# API benchmarks on {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        bare = bare_server()
        ours = our_server(Path(tmp) / "data", KEY, workers=0)
        try:
            rps: dict[str, list[float]] = {"bare": [], "ours": []}
            for _ in range(RUNS):  # alternate sides, keep the best of each
                rps["bare"].append(wrk(bare.base))
                rps["ours"].append(wrk(ours.base))
            b, o = max(rps["bare"]), max(rps["ours"])
            print(
                f"submit throughput (wrk -t2 -c32 -d8s, best of {RUNS}): openimagine {o:,.0f} "
                f"req/s, bare FastAPI {b:,.0f} req/s -> {ratio(o, b)} (target >= 0.50x: "
                f"{verdict(o >= 0.5 * b)}); all runs ours {[round(x) for x in rps['ours']]} "
                f"bare {[round(x) for x in rps['bare']]}; {load_note()}"
            )
            ids = submit_tasks(ours.base, 100)
            lat: dict[str, list[tuple[float, float, int]]] = {"bare": [], "ours": []}
            for _ in range(RUNS):
                lat["bare"].append(asyncio.run(poll_latency(bare.port, ids)))
                lat["ours"].append(asyncio.run(poll_latency(ours.port, ids)))
            bo = min(lat["bare"], key=lambda r: r[1])
            oo = min(lat["ours"], key=lambda r: r[1])
            print(
                f"getResponse, 100 open-loop pollers @2/s for 10 s (no workers; best of {RUNS}): "
                f"openimagine p50 {oo[0]:.1f} ms p99 {oo[1]:.1f} ms ({oo[2]} requests); bare "
                f"p50 {bo[0]:.1f} ms p99 {bo[1]:.1f} ms -> p99 {ratio(oo[1], bo[1])} of bare "
                f"(target p99 <= 20 ms: {verdict(oo[1] <= 20)}); all p99s ours "
                f"{[round(r[1], 1) for r in lat['ours']]} bare "
                f"{[round(r[1], 1) for r in lat['bare']]}; {load_note()}"
            )
        finally:
            bare.stop()
            ours.stop()


if __name__ == "__main__":
    main()
