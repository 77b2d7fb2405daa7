"""The usage ledger through the doors a user sees: `GET /v1/usage` for a key's own totals,
`openimagine keys usage` for an operator billing every key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.helpers import BIN, Server, t2v


def usage(server: Server, key: str, **params: str) -> httpx.Response:
    return httpx.get(
        server.base + "/v1/usage",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_a_key_sees_what_it_used_and_an_operator_sees_every_key(
    fresh_server: Server, tmp_path: Path
):
    server = fresh_server.start()
    task = t2v(numberResults=2, includeCost=True, duration=1)
    assert server.post([task]).status_code == 200
    body = server.poll(task["taskUUID"], n=2)
    costs = [item["cost"] for item in body["data"]]
    assert len(costs) == 2

    got = usage(server, server.key)
    assert got.status_code == 200
    totals = got.json()
    assert {k: totals[k] for k in ("tasks", "results", "failed", "seconds")} == {
        "tasks": 1, "results": 2, "failed": 0, "seconds": 2.0,
    }  # fmt: skip
    assert abs(totals["cost"] - sum(costs)) < 1e-9
    before = usage(server, server.key, end="2000-01-01").json()
    assert (before["results"], before["cost"]) == (0, 0.0)  # the period counts
    bad = usage(server, server.key, start="yesterday")
    assert bad.status_code == 400 and bad.json()["errors"][0]["parameter"] == "start"
    assert usage(server, "oi_wrong").status_code == 401

    listed = subprocess.run(
        [str(BIN / "openimagine"), "keys", "usage", "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    row = next(line for line in listed.stdout.splitlines() if "configured" in line)
    cells = [cell.strip() for cell in row.split("│") if cell.strip()]
    assert cells[1:6] == ["configured", "1", "2", "0", "2.00"], listed.stdout
    assert f"${sum(costs):.4f}" in listed.stdout
