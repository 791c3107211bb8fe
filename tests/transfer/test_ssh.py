"""An SSH server as a remote (ssh://, SFTP) end to end through the CLI, on the distribution's
real sshd: push, a fresh clone's pull byte for byte, check, remote gc; an unknown host key and a
refused key are one error line each, nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import setup_registry
from tests.transfer.remote_e2e import (
    pull_in_fresh_clone,
    push_stopped_mid_way_then_again,
    remote_gc_drops_what_no_commit_refers_to,
)


def test_ssh_push_pull_check_and_gc(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                    sshd, ssh_home) -> None:
    remote = tmp_path / "on-server" / "registry"
    original = setup_registry(project, run, make_images, sshd.url(str(remote)), ("keyfile", sshd.keyfile))
    run("push")
    out, _ = run("status", "--remote")
    assert "Everything is in remote" in out
    assert any((remote / "index").iterdir()) and not list(remote.rglob(".*.tmp"))
    run("check", "-r", "store")
    pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original)
    remote_gc_drops_what_no_commit_refers_to(project, run, monkeypatch)
    pull_in_fresh_clone(project, tmp_path / "consumer2", run, monkeypatch, original)


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
    from tests.servers import start_sshd

    server = start_sshd()
    try:
        (ssh_home / ".ssh" / "known_hosts").write_text(Path(server.known_hosts).read_text())
        remote = tmp_path / "on-server" / "registry"
        original = setup_registry(project, run, make_images, server.url(str(remote)), ("keyfile", server.keyfile),
                                  ("pack_size", "1M"), ("retry_budget", "2"))
        index = remote / "index"
        push_stopped_mid_way_then_again(project, lambda: index.is_dir() and any(index.iterdir()), server.kill,
                                        server.restart, run)
        pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original)
    finally:
        server.stop()
