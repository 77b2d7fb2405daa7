"""The counters and histograms the processes record into, and multiprocess mode.

`openimagine serve` runs the API and spawns its workers; `openimagine worker` spawns workers
alone. Either way, one process answers scrapes for all of them: before anything is recorded,
the command calls `use_multiprocess_dir`, and every process (the command's own and the spawned
ones, which inherit the directory through the environment) writes its values to its own files
there, which `exposition` adds up when it is scraped. A worker that dies keeps its counts; the
directory is emptied when the command starts, so counters start at zero with it (Prometheus
takes a reset in its stride).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client in each process

# A task waits from seconds to hours; generation and encoding take seconds to minutes.
WAIT_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
RUN_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)
ENCODE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)

DELIVERED, RETRIED, GAVE_UP = "delivered", "retried", "failed"  # a delivery try's outcome


class Metrics:
    """The instruments of one process (see the README's "Metrics and logs" for each).

    Args:
        registry: Where they are registered; a fresh one by default. In multiprocess mode
            their values go to the shared directory whatever the registry.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.task_wait = Histogram(
            "openimagine_task_wait_seconds",
            "Time from a task's submit to its first claim by a worker.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.task_run = Histogram(
            "openimagine_task_run_seconds",
            "Time from a claim to the end of that attempt (finished, failed, handed back).",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.generate = Histogram(
            "openimagine_generate_seconds",
            "Model time of one result (inputs loaded, the backend's generate).",
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.encode = Histogram(
            "openimagine_encode_seconds",
            "Time to fit and encode one result to its file, by output format.",
            ["format"],
            buckets=ENCODE_BUCKETS,
            registry=r,
        )
        self.tasks_finished = Counter(
            "openimagine_tasks_finished",
            "Tasks a worker ended, by status (succeeded, failed, canceled).",
            ["status"],
            registry=r,
        )
        self.task_failures = Counter(
            "openimagine_task_failures",
            "Failed tasks by error code (the code clients see).",
            ["code"],
            registry=r,
        )
        self.tasks_reaped = Counter(
            "openimagine_tasks_reaped",
            "Tasks ended because their worker's lease ran out after the last attempt.",
            registry=r,
        )
        self.cost = Counter(
            "openimagine_cost_usd",
            "Dollars billed: the cost of each result that succeeded (as the usage ledger).",
            registry=r,
        )
        self.deliveries = Counter(
            "openimagine_deliveries",
            "Delivery tries by kind (webhook, upload) and outcome (delivered; retried: it "
            "failed and is tried again; failed: given up).",
            ["kind", "outcome"],
            registry=r,
        )

    def claimed(self, created_at: float, started_at: float | None, attempt: int) -> None:
        """A worker claimed a task: its wait is counted on the first attempt only."""
        if attempt == 1 and started_at is not None:
            self.task_wait.observe(max(0.0, started_at - created_at))

    def ran(self, seconds: float) -> None:
        """An attempt ended (any way) `seconds` after its claim."""
        self.task_run.observe(seconds)

    def generated(self, seconds: float) -> None:
        """The backend generated one result."""
        self.generate.observe(seconds)

    def encoded(self, fmt: str, seconds: float) -> None:
        """One result was fitted and encoded to `fmt` (mp4, webm, mov)."""
        self.encode.labels(fmt.lower()).observe(seconds)

    def result_succeeded(self, cost: float | None) -> None:
        """A result was stored: its cost is billed."""
        if cost:
            self.cost.inc(cost)

    def task_finished(self, status: str, code: str | None = None) -> None:
        """A task ended with `status`; a failed one counts under its error `code`."""
        self.tasks_finished.labels(status).inc()
        if status == "failed":
            self.task_failures.labels(code or "unknown").inc()

    def reaped(self, count: int) -> None:
        """The reaper ended `count` tasks."""
        if count:
            self.tasks_reaped.inc(count)

    def delivery(self, kind: str, outcome: str) -> None:
        """A delivery try ended: `DELIVERED`, `RETRIED` or `GAVE_UP`."""
        self.deliveries.labels(kind, outcome).inc()


# compat: prometheus_client keeps multiprocess values per process (its files are named by
# pid), so the instruments are per process too: built on first use, after the command chose
# (or not) multiprocess mode.
_process: Metrics | None = None
_lock = threading.Lock()


def instruments() -> Metrics:
    """This process's instruments."""
    global _process
    with _lock:
        if _process is None:
            _process = Metrics()
        return _process


def use_multiprocess_dir(path: Path) -> Path:
    """Record this process's values, and those of the processes it spawns from now on, in
    files under `path`, emptied first. Call before anything is recorded in this process.

    Returns the directory (absolute), for `exposition.Exposition`.
    """
    path = path.resolve()  # the spawned processes may change directory
    with _lock:
        if _process is not None:
            raise RuntimeError("multiprocess mode must be chosen before metrics are recorded")
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        # Spawned processes read the variable when they import prometheus_client; this one
        # has imported it already, so its value class is switched here.
        os.environ[MULTIPROC_ENV] = str(path)
        if not getattr(values.ValueClass, "_multiprocess", False):
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    return path
