"""The API process, as `serve` builds it, loads neither torch nor the content detector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "cv2", "onnxruntime", "nudenet")


def test_building_and_starting_the_api_imports_no_model_library(tmp_path: Path):
    code = f"""
import json, sys
import anyio
from fastapi.testclient import TestClient
from openimagine.cli import app as cli
from openimagine.composition import build_api, migrate
from openimagine.config import Settings

settings = Settings(data_dir={str(tmp_path)!r})
anyio.run(migrate, settings)
with TestClient(build_api(settings)) as client:
    health = client.get("/health").json()
print(json.dumps({{"health": health, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["health"]["status"] == "ok" and report["health"]["randomWeights"] is True
    assert report["loaded"] == []
