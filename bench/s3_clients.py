"""S3 clients compared on a local SeaweedFS server: obstore (the one delivery/s3.py uses) and
boto3 (the reference SDK).

    python -m bench.s3_clients [--small N] [--large-mib M]

For each client, on the same bucket: the cost of loading it (import and first client, in a
fresh interpreter, with the memory it adds), small-object PUT / GET / HEAD latency, a large
file's upload and download (multipart and streamed, as the blob store does them), and
presigning a GET, which the API does for every result of every poll. Both clients use one
connection pool and their own retry policy; nothing else runs against the server.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from tests.s3_server import S3Server, SeaweedS3

from bench.common import load_note, machine, today

_LOAD = {
    "obstore": (
        "from obstore.store import S3Store\n"
        "s = S3Store('{b}', config={{'endpoint': '{e}', 'access_key_id': '{a}', "
        "'secret_access_key': '{k}'}}, client_options={{'allow_http': True}})\n"
    ),
    "boto3": (
        "import boto3\n"
        "s = boto3.client('s3', endpoint_url='{e}', aws_access_key_id='{a}', "
        "aws_secret_access_key='{k}', region_name='us-east-1')\n"
    ),
}


def load_cost(name: str, srv: S3Server, runs: int = 3) -> tuple[float, float]:
    """(seconds, MiB of RSS) that importing the client and making one takes, fresh process."""
    body = _LOAD[name].format(b=srv.bucket, e=srv.endpoint, a=srv.access_key, k=srv.secret_key)
    code = (
        "import time, re\n"
        "def rss():\n"
        "    s = open('/proc/self/status').read()\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', s).group(1)) / 1024\n"
        "r0 = rss(); t0 = time.perf_counter()\n"
        + body
        + "print(time.perf_counter() - t0, rss() - r0)\n"
    )
    best = (float("inf"), 0.0)
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        best = min(best, (float(out[0]), float(out[1])))
    return best


class Obstore:
    name = "obstore"

    def __init__(self, srv: S3Server) -> None:
        import obstore
        from obstore.store import S3Store

        self.obs = obstore
        self.store = S3Store(
            srv.bucket,
            config={
                "endpoint": srv.endpoint,
                "access_key_id": srv.access_key,
                "secret_access_key": srv.secret_key,
                "region": srv.region,
            },
            client_options={"allow_http": True},
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self.obs.put(self.store, key, data, attributes={"Content-Type": "video/mp4"})

    def put_file(self, key: str, path: Path) -> None:
        self.obs.put(self.store, key, path, attributes={"Content-Type": "video/mp4"})

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.obs.get(self.store, key).bytes())

    def get_file(self, key: str, path: Path) -> None:
        with path.open("wb") as f:
            for chunk in self.obs.get(self.store, key).stream(min_chunk_size=1 << 20):
                f.write(chunk)

    def head(self, key: str) -> int:
        return int(self.obs.head(self.store, key)["size"])

    def presign(self, key: str) -> str:
        return self.obs.sign(self.store, "GET", key, timedelta(hours=24))


class Boto3:
    name = "boto3"

    def __init__(self, srv: S3Server) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = srv.bucket
        self.client = boto3.client(
            "s3",
            endpoint_url=srv.endpoint,
            aws_access_key_id=srv.access_key,
            aws_secret_access_key=srv.secret_key,
            region_name=srv.region,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"mode": "standard"},
            ),
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="video/mp4")

    def put_file(self, key: str, path: Path) -> None:
        extra = {"ContentType": "video/mp4"}
        self.client.upload_file(str(path), self.bucket, key, ExtraArgs=extra)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_file(self, key: str, path: Path) -> None:
        self.client.download_file(self.bucket, key, str(path))

    def head(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def presign(self, key: str) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=86400)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def run(client: Obstore | Boto3, srv: S3Server, small: int, large_mib: int, tmp: Path) -> dict:
    name = client.name
    data = os.urandom(64 * 1024)
    keys = [f"{name}/small-{i}.mp4" for i in range(small)]
    it = iter(keys)
    put = timed(lambda: client.put_bytes(next(it), data), small)
    it = iter(keys)
    get = timed(lambda: client.get_bytes(next(it)), small)
    it = iter(keys)
    head = timed(lambda: client.head(next(it)), small)
    presign_n = 5000
    t0 = time.perf_counter()
    for i in range(presign_n):
        client.presign(keys[i % small])
    presign_us = (time.perf_counter() - t0) / presign_n * 1e6
    big = tmp / f"{name}-big.mp4"
    big.write_bytes(os.urandom(large_mib << 20))
    up = timed(lambda: client.put_file(f"{name}/big.mp4", big), 3)
    down = timed(lambda: client.get_file(f"{name}/big.mp4", tmp / f"{name}-down.mp4"), 3)
    assert (tmp / f"{name}-down.mp4").read_bytes() == big.read_bytes()
    assert client.get_bytes(keys[0]) == data
    load_s, load_mib = load_cost(name, srv)
    return {
        "client": name,
        "load ms": load_s * 1e3,
        "load MiB": load_mib,
        "PUT 64K ms": statistics.median(put) * 1e3,
        "GET 64K ms": statistics.median(get) * 1e3,
        "HEAD ms": statistics.median(head) * 1e3,
        f"PUT {large_mib}M MB/s": (large_mib * 1.048576) / min(up),
        f"GET {large_mib}M MB/s": (large_mib * 1.048576) / min(down),
        "presign µs": presign_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=200, help="small objects per client")
    parser.add_argument("--large-mib", type=int, default=64, help="size of the large file")
    args = parser.parse_args()
    print(f"# S3 clients, {today()}, {machine()}, {load_note()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        weed = SeaweedS3(Path(tmp) / "weed").start()
        try:
            rows = []
            for cls in (Obstore, Boto3):
                rows.append(
                    run(cls(weed.server), weed.server, args.small, args.large_mib, Path(tmp))
                )
        finally:
            weed.stop()
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = [row[c] if isinstance(row[c], str) else f"{row[c]:.3g}" for c in cols]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
