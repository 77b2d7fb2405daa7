"""The yardstick side of the e2e and memory benchmarks: the project's own backend and render
code used as a library in one process, with no server, store, event loop or worker thread.

It repeats what `JobRunner._produce` does for one result (frame count, generation params,
output target, comment) so both sides make byte-identical files from the same request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from bench.common import MODEL, THREADS, vm_hwm_kib


@dataclass(frozen=True, slots=True)
class Case:
    """One request: size, length and seed (steps and format are the server's defaults)."""

    width: int
    height: int
    duration_s: int
    seed: int = 1234

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height} {self.duration_s} s"


@dataclass(frozen=True, slots=True)
class Timing:
    """Phases of one direct run; `peak_after_generate_kib` is this process's VmHWM then."""

    generate_s: float
    encode_s: float
    peak_after_generate_kib: int

    @property
    def total_s(self) -> float:
        return self.generate_s + self.encode_s


class Direct:
    """A warm backend in this process, configured from the same OPENIMAGINE_* environment as
    the server's worker (checkpoint, torch threads, steps, encode threads)."""

    def __init__(self) -> None:
        import torch

        from openimagine.backends.registry import make_backend
        from openimagine.config import Settings
        from openimagine.worker.main import quiet_libraries

        self.settings = Settings()
        quiet_libraries(self.settings)  # the worker's own library setup (offline, no bars)
        self.backend = make_backend(self.settings)
        self.info = self.backend.load(self.settings.workers.device)
        # make_backend passes OPENIMAGINE_WORKERS__TORCH_THREADS to the backend; set it here too
        # so the yardstick never runs on torch's default thread count by accident.
        torch.set_num_threads(self.settings.workers.torch_threads or THREADS)

    def render(self, case: Case, out: Path) -> Timing:
        """Generate and encode `case` to `out`, as a worker does for one result."""
        from openimagine.domain.generation import GenerationParams
        from openimagine.media.fit import frames_needed
        from openimagine.models.grok_imagine_video import GROK_IMAGINE_VIDEO as card
        from openimagine.worker.render import Target, render_clip

        num_frames = frames_needed(Fraction(case.duration_s), card.fps)
        grid = self.backend.grid(case.width, case.height, num_frames)
        params = GenerationParams(PROMPT, grid, card.fps, case.seed, self.settings.model.steps)
        comment = f"openimagine {MODEL} weights={self.info.weights} seed={case.seed}"
        if self.info.random_weights:
            comment += " RANDOM WEIGHTS: output is noise"
        target = Target(
            width=case.width,
            height=case.height,
            num_frames=num_frames,
            fps=card.fps,
            fmt=card.default_output_format,
            quality=int(card.output_quality.default or 95),
            threads=self.settings.workers.encode_threads,
            comment=comment,
        )
        t0 = time.perf_counter()
        clip = self.backend.generate(params, lambda _s, _n: None, lambda: False)
        t1 = time.perf_counter()
        peak = vm_hwm_kib()
        render_clip(clip, target, out, lambda _i, _n: None)
        t2 = time.perf_counter()
        del clip
        return Timing(t1 - t0, t2 - t1, peak)


PROMPT = "a lighthouse in a storm"
