"""`WorkerPool`: spawn local worker processes, restart any that die, stop them on exit.

A worker waits out a store outage itself (it never exits for one); but one that cannot start
(its store unreachable at startup, say) would exit again at once, so a worker that dies soon
after its start is restarted after a longer pause each time (up to `_MAX_RESTART_DELAY_S`),
not in a tight loop that reloads its model every second.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from openimagine.config import Settings

log = logging.getLogger("openimagine.pool")

WorkerTarget = Callable[[Settings, int, int], None]

_SHORT_LIFE_S = 60.0  # a worker that dies sooner than this after its start is in a crash loop
_MAX_RESTART_DELAY_S = 30.0


class WorkerPool:
    """`count` worker processes (spawned, so the parent never imports torch).

    Args:
        settings: Passed to each process.
        count: How many.
        target: The process's main, `target(settings, index, parent_pid)`: a module-level
            function (spawn pickles it by name).
        restart_delay_s: Pause before a dead worker is started again.
    """

    def __init__(
        self,
        settings: Settings,
        count: int,
        target: WorkerTarget,
        restart_delay_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.count = count
        self.target = target
        self.restart_delay_s = restart_delay_s
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: dict[int, BaseProcess] = {}
        self._started: dict[int, float] = {}  # monotonic start time, by index
        self._delays: dict[int, float] = {}  # the pause before the next restart, by index
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    def _spawn(self, index: int) -> None:
        proc = self._ctx.Process(
            target=self.target,
            args=(self.settings, index, os.getpid()),
            name=f"openimagine-worker-{index}",
        )
        proc.start()
        self._procs[index] = proc
        self._started[index] = time.monotonic()
        log.info("started worker %d (pid %s)", index, proc.pid)

    def start(self) -> None:
        """Spawn the workers and a thread that restarts any that exit."""
        for i in range(self.count):
            self._spawn(i)
        self._monitor = threading.Thread(target=self._watch, name="worker-monitor", daemon=True)
        self._monitor.start()

    def pids(self) -> list[int]:
        """PIDs of the live workers."""
        return [p.pid for p in self._procs.values() if p.pid is not None and p.is_alive()]

    def _watch(self) -> None:
        # perf: wait on the processes' sentinels rather than waking to look: a wake-up on a
        # machine whose cores the workers' torch threads fill stalls them (OpenMP barriers).
        while not self._stopping.is_set():
            sentinels = [p.sentinel for p in self._procs.values()]
            multiprocessing.connection.wait(sentinels, timeout=5.0)
            for index, proc in list(self._procs.items()):
                if not proc.is_alive() and not self._stopping.is_set():
                    delay = self._restart_delay(index)
                    log.warning(
                        "worker %d (pid %s) exited with %s; restarting in %.0f s",
                        index,
                        proc.pid,
                        proc.exitcode,
                        delay,
                    )
                    if self._stopping.wait(delay):
                        return
                    try:
                        self._spawn(index)
                    except Exception:  # the dead process stays: tried again next round
                        log.exception("could not restart worker %d", index)

    def _restart_delay(self, index: int) -> float:
        """`restart_delay_s`, doubled for each restart in a row of a worker that died young."""
        lived = time.monotonic() - self._started.get(index, 0.0)
        previous = self._delays.get(index)
        if previous is None or lived >= _SHORT_LIFE_S:
            delay = self.restart_delay_s
        else:
            delay = min(_MAX_RESTART_DELAY_S, 2 * previous)
        self._delays[index] = delay
        return delay

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every worker (each hands its job back), then SIGKILL stragglers."""
        self._stopping.set()
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in self._procs.values():
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                log.warning("worker pid %s did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.join(5)
        if self._monitor is not None:
            self._monitor.join(2)
