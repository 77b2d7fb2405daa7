"""Every benchmark in sequence (`make bench`): API, end to end, worker memory, encoder,
noisy neighbour, fleet.

    python -m bench.run_all

Each runs in its own process, so one benchmark's memory (a loaded pipeline, a 4 GB clip) never
counts against the next, and the figures print as they come.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import ROOT, load_note, machine, today

BENCHES = (
    "bench.api",
    "bench.e2e",
    "bench.memory",
    "bench.encode",
    "bench.noisy",
    "bench.fleet",
)


def main() -> None:
    print(f"# openimagine benchmarks, {today()}, {machine()}", flush=True)
    failed = []
    for module in BENCHES:
        print(f"\n$ python -m {module}   ({load_note()} at start)", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=False).returncode
        print(f"({module}: {time.perf_counter() - t0:.0f} s, exit {rc})", flush=True)
        if rc:
            failed.append(module)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
