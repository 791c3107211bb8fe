"""An SSH server as a remote (ssh://, SFTP) end to end through the CLI, on the distribution's
real sshd: push, a fresh clone's pull byte for byte, check, remote gc; an unknown host key and a
refused key are one error line each, nothing written."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import setup_registry
from tests.transfer.test_push_pull import clone, workspace


def test_ssh_push_pull_check_and_gc(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                    sshd, ssh_home) -> None:
    remote = tmp_path / "on-server" / "registry"
    original = setup_registry(project, run, make_images, sshd.url(str(remote)), ("keyfile", sshd.keyfile))
    run("push")
    out, _ = run("status", "--remote")
    assert "Everything is in remote" in out
    assert any((remote / "index").iterdir()) and not list(remote.rglob(".*.tmp"))
    run("check", "-r", "store")
    other = clone(project, tmp_path / "consumer", monkeypatch)
    run("pull")
    assert workspace(other) == original
    monkeypatch.chdir(project)
    (project / "scratch.bin").write_bytes(os.urandom(300_000))
    run("add", "scratch.bin")
    run("push")
    run("remote", "modify", "store", "gc_grace", "0")
    (project / "scratch.bin.fastreg").unlink()
    out, _ = run("gc", "--all-commits", "-r")
    assert "Remote store: deleted 1 packs" in out or "rewrote" in out
    clone(project, tmp_path / "consumer2", monkeypatch)
    run("pull")
    assert workspace(tmp_path / "consumer2") == original


def test_ssh_unknown_host_key_and_refused_key_are_one_error_line(tmp_path: Path, project: Path, run, make_images,
                                                                 sshd, ssh_home) -> None:
    remote = tmp_path / "on-server" / "registry"
    setup_registry(project, run, make_images, sshd.url(str(remote)), ("keyfile", sshd.keyfile))
    (ssh_home / ".ssh" / "known_hosts").write_text("")  # this machine has never seen the server
    _, err = run("push", rc=7)
    assert "is not in ~/.ssh/known_hosts" in err and f"ssh-keyscan -p {sshd.port} 127.0.0.1" in err
    assert not remote.exists()
    (ssh_home / ".ssh" / "known_hosts").write_text(Path(sshd.known_hosts).read_text())
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True)
    run("remote", "modify", "store", "keyfile", str(other_key))
    _, err = run("push", rc=7)
    assert "permission denied" in err and not remote.exists()


def test_ssh_server_killed_mid_push_then_push_again(tmp_path: Path, project: Path, run, make_images,
                                                    monkeypatch, ssh_home) -> None:
    """A server of its own (killed with every connection it serves, then started again)."""
    import sys
    import time

    from tests.servers import start_sshd

    server = start_sshd()
    try:
        (ssh_home / ".ssh" / "known_hosts").write_text(Path(server.known_hosts).read_text())
        remote = tmp_path / "on-server" / "registry"
        original = setup_registry(project, run, make_images, server.url(str(remote)), ("keyfile", server.keyfile),
                                  ("pack_size", "1M"), ("retry_budget", "2"))
        proc = subprocess.Popen([sys.executable, "-m", "fastreg", "push", "-j", "1"], cwd=project,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
        index = remote / "index"
        deadline = time.monotonic() + 60
        while not (index.is_dir() and any(index.iterdir())) and time.monotonic() < deadline:
            time.sleep(0.002)
        server.kill()  # one pack committed, more to go
        _, err = proc.communicate(timeout=120)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 7 and len(lines) == 1 and lines[0].startswith("error: "), err
        server.restart()
        run("push")
        other = clone(project, tmp_path / "consumer", monkeypatch)
        run("pull")
        assert workspace(other) == original
    finally:
        server.stop()
