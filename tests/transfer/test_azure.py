"""An Azure Blob Storage remote (azure://) end to end through the CLI, on a real Azurite: push, a
fresh clone's pull byte for byte, check, remote gc; the account key kept out of Git and out of
every output; a wrong key and a missing container are one error line each."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import setup_registry
from tests.servers import AZURITE_ACCOUNT, AZURITE_KEY
from tests.transfer.remote_e2e import (
    pull_in_fresh_clone,
    push_stopped_mid_way_then_again,
    remote_gc_drops_what_no_commit_refers_to,
)


def _azure(project: Path, run, make_images, container: str, azurite) -> dict[str, bytes]:
    original = setup_registry(project, run, make_images, f"azure://{container}/registry",
                              ("account_name", AZURITE_ACCOUNT), ("endpoint_url", azurite.endpoint))
    run("remote", "modify", "store", "account_key", AZURITE_KEY)  # a secret: config.local, never shown
    return original


def test_azure_push_pull_check_and_gc(tmp_path: Path, project: Path, run, make_images, monkeypatch,
                                      azurite, container) -> None:
    original = _azure(project, run, make_images, container, azurite)
    assert AZURITE_KEY not in (project / ".fastreg" / "config").read_text()
    assert AZURITE_KEY in (project / ".fastreg" / "config.local").read_text()
    out, _ = run("remote", "list", "-v")
    assert AZURITE_KEY not in out and "account_key=(secret)" in out
    run("push")
    out, _ = run("status", "--remote")
    assert "Everything is in remote" in out
    run("check", "-r", "store")
    pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original,
                        lambda: run("remote", "modify", "store", "account_key", AZURITE_KEY))  # a teammate's key
    remote_gc_drops_what_no_commit_refers_to(project, run, monkeypatch)


def test_azure_wrong_key_and_missing_container_are_one_error_line(project: Path, run, make_images,
                                                                  azurite, container) -> None:
    _azure(project, run, make_images, container, azurite)
    wrong = "d3Jvbmcga2V5"
    run("remote", "modify", "store", "account_key", wrong)
    _, err = run("push", rc=7)
    assert "access denied" in err and wrong not in err
    run("remote", "modify", "store", "account_key", AZURITE_KEY)
    run("remote", "modify", "store", "url", "azure://no-such-container/reg")
    _, err = run("push", rc=7)
    assert "no such container 'no-such-container'" in err and AZURITE_KEY not in err


def test_a_connection_string_that_does_not_parse_is_never_shown(project: Path, run, make_images, azurite,
                                                                container) -> None:
    setup_registry(project, run, make_images, f"azure://{container}/registry")
    secret = "AccountName=x;AccountKey=c2VjcmV0LWtleQ==;Nonsense"
    run("remote", "modify", "store", "connection_string", secret)
    _, err = run("push", rc=7)
    assert "does not parse" in err and "c2VjcmV0" not in err
    out, _ = run("remote", "list")
    assert "c2VjcmV0" not in out and "connection_string=(secret)" in out


def _listed(server, container: str, prefix: str) -> list[str]:
    import asyncio

    from fastreg.storage.azure import AzureStore

    async def keys() -> list[str]:
        store = AzureStore(f"azure://{container}", connection_string=server.connection_string)
        try:
            return [o.key for o in await store.list(prefix)]
        finally:
            await store.close()

    return asyncio.run(keys())


def test_azure_server_killed_mid_push_then_push_again(tmp_path: Path, project: Path, run, make_images,
                                                      monkeypatch) -> None:
    from tests.servers import make_container, start_azurite

    servers = [start_azurite()]
    try:
        first = servers[0]
        make_container(first, "killed")
        original = setup_registry(project, run, make_images, "azure://killed/reg",
                                  ("account_name", AZURITE_ACCOUNT), ("endpoint_url", first.endpoint),
                                  ("pack_size", "1M"), ("retry_budget", "2"))
        run("remote", "modify", "store", "account_key", AZURITE_KEY)
        push_stopped_mid_way_then_again(project, lambda: bool(_listed(first, "killed", "reg/index/")), first.halt,
                                        lambda: servers.append(start_azurite(first.port, first.workdir)), run)
        pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original,
                            lambda: run("remote", "modify", "store", "account_key", AZURITE_KEY))
    finally:
        servers[-1].stop()


def test_the_account_may_be_named_in_the_url(project: Path, run, make_images, azurite, container,
                                             monkeypatch, tmp_path: Path) -> None:
    """azure://CONTAINER@ACCOUNT/PREFIX (the netloc form) is the same remote as account_name."""
    original = setup_registry(project, run, make_images, f"azure://{container}@{AZURITE_ACCOUNT}/reg",
                              ("endpoint_url", azurite.endpoint))
    run("remote", "modify", "store", "account_key", AZURITE_KEY)
    run("push")
    pull_in_fresh_clone(project, tmp_path / "consumer", run, monkeypatch, original,
                        lambda: run("remote", "modify", "store", "account_key", AZURITE_KEY))
    _, err = run("remote", "add", "bad", f"azure://{container}@Not_An_Account/reg", rc=2)
    assert "not an Azure URL" in err
