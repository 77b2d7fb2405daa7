"""Worker peak memory against the pipeline alone, for one 15 s 1280x720 clip.

    python -m bench.memory [--width 1280 --height 720 --duration 15]

Worker: a fresh `openimagine serve --workers 1`; the worker's pid comes from GET /health
(ids are `host:pid:index`); its VmHWM (peak RSS over its life, read from /proc) is taken once
its model is loaded and again after the task reports success. Yardstick: a fresh subprocess
(`--standalone`) that loads the same pipeline through the project's backend and makes the same
clip with the project's render code (bench/direct.py), reporting its own VmHWM. One run each:
peak RSS barely varies between runs, and each side takes about 4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import THREADS, build_checkpoint, machine, our_server, verdict, vm_hwm_kib
from bench.direct import Case
from bench.e2e import KEY, Poller, server_env, via_server

CASE = Case(1280, 720, 15)
TARGET = 1.2


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def standalone(case: Case, out: Path) -> None:
    """The yardstick process: load, make the clip, print VmHWM at each phase as JSON."""
    from bench.direct import Direct

    direct = Direct()
    loaded = vm_hwm_kib()
    timing = direct.render(case, out)
    print(
        json.dumps(
            {
                "loaded": loaded,
                "generated": timing.peak_after_generate_kib,
                "peak": vm_hwm_kib(),
                "seconds": timing.total_s,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=CASE.width)
    parser.add_argument("--height", type=int, default=CASE.height)
    parser.add_argument("--duration", type=int, default=CASE.duration_s)
    parser.add_argument("--standalone", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    case = Case(args.width, args.height, args.duration)
    if args.standalone:
        standalone(case, args.standalone)
        return
    print(f"# worker memory benchmark on {machine()}; torch threads {THREADS} on both sides")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = server_env(build_checkpoint(tmp / "models"))
        # The yardstick first, alone on the machine (no server running yet).
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "bench.memory", "--standalone", str(tmp / "alone.mp4")),
                *("--width", str(case.width), "--height", str(case.height)),
                *("--duration", str(case.duration_s)),
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        alone = json.loads(proc.stdout.strip().splitlines()[-1])
        server = our_server(tmp / "data", KEY, workers=1, env=env)
        try:
            server.wait_ready()
            (pid,) = server.worker_pids()
            ready = vm_hwm_kib(pid)
            poller = Poller(server.port, KEY)
            seconds, _ = via_server(poller, case)
            poller.close()
            peak = vm_hwm_kib(pid)
        finally:
            server.stop()
    print(
        f"worker peak RSS, one {case.label} task: {mib(peak)}; standalone pipeline + encode "
        f"{mib(alone['peak'])} -> {peak / alone['peak']:.2f}x (target <= {TARGET:.2f}x: "
        f"{verdict(peak <= TARGET * alone['peak'])})"
    )
    print(
        f"  worker: {mib(ready)} once loaded, {mib(peak)} after the task ({seconds:.0f} s "
        f"end to end); standalone: {mib(alone['loaded'])} loaded, {mib(alone['generated'])} "
        f"after generate, {mib(alone['peak'])} after encode ({alone['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
