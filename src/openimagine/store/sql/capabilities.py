"""The filter of a claim by capability (`domain.jobs.Capability`): a job on one of the
worker's models, no bigger than its device takes (`jobs.pixel_frames`; NULL, unknown, fits
any worker).

The filter's text depends only on the capability's shape (how many models it names, whether
it bounds the size) and its values are parameters: a worker's claim is one constant
statement, which psycopg prepares. It only passes over rows: a claim still reads the head of
the queue in (turn, seq) order (plan checked in tests/integration/test_pg_plans.py), and pays
for each job it cannot take ahead of the first it can.
"""

from __future__ import annotations

import functools
from typing import Any

from openimagine.domain.jobs import Capability

Shape = tuple[int, bool]  #: how many models it names (0: any), and whether it bounds the size


def shape(capability: Capability) -> Shape:
    """What the filter's text depends on."""
    return len(capability.models), bool(capability.max_pixel_frames)


@functools.cache
def where(of: Shape) -> str:
    """` AND …` conditions on `jobs` for a capability of this shape (empty: any job)."""
    models, bounded = of
    sql = ""
    if models:
        sql += f" AND model IN ({', '.join(f':model_{i}' for i in range(models))})"
    if bounded:
        sql += " AND (pixel_frames IS NULL OR pixel_frames <= :max_pixel_frames)"
    return sql


def params(capability: Capability) -> dict[str, Any]:
    """The values of `where(shape(capability))`."""
    values: dict[str, Any] = {f"model_{i}": m for i, m in enumerate(capability.models)}
    if capability.max_pixel_frames:
        values["max_pixel_frames"] = capability.max_pixel_frames
    return values
