"""What `openimagine generate` shows while it works: a live bar on a terminal, one line per
stage everywhere else (logs, CI, pipes)."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from openimagine.client import TaskStatus


class Display:
    """Stages (`starting a local server`, `queued`, `generating`, `downloading …`) with a
    percentage, on `console` (stderr)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self._progress: Progress | None = None
        self._row: TaskID | None = None
        self._label = ""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def note(self, text: str) -> None:
        """A line of its own (above the bar, if one is shown)."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stage(self, label: str, percent: int | None = None) -> None:
        """Show `label`, at `percent` (None: no measure yet)."""
        if label != self._label:
            self._label = label
            if not self.live:
                self.note(label)
        if not self.live:
            return
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.start()
            self._row = self._progress.add_task(label, total=None)
        assert self._row is not None  # noqa: S101 - set with the progress
        total = None if percent is None else 100
        self._progress.update(self._row, description=label, completed=percent or 0, total=total)

    def task(self, status: TaskStatus) -> None:
        """A poll of the task: queued (with its position, if the server tells) or generating."""
        if status.progress == 0 and not status.done:
            position = status.queue_position
            self.stage("queued" if position is None else f"queued (position {position})")
        else:
            self.stage("generating", status.progress)

    def bytes(self, done: int, total: int | None) -> None:
        """A download's progress."""
        self.stage(self._label, None if not total else min(100, done * 100 // total))

    def stop(self) -> None:
        """End the bar (its last state stays on screen)."""
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._row, self._label = None, None, ""
