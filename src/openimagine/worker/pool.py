"""`WorkerPool`: spawn local worker processes, restart any that die, stop them on exit."""

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
                    log.warning(
                        "worker %d (pid %s) exited with %s; restarting",
                        index,
                        proc.pid,
                        proc.exitcode,
                    )
                    time.sleep(self.restart_delay_s)
                    if not self._stopping.is_set():
                        self._spawn(index)

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
