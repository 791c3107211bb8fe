"""The storage backends a team could choose, side by side in one `fastreg bench` run: S3
(SeaweedFS), Google Cloud Storage (fake-gcs-server), Azure Blob (Azurite), an SSH server (the
distribution's sshd) and a local directory, each on this machine, each measured with the same
cells, then one comparison table and one plot (bench/work/backends.png).

These are emulators on loopback: the figures compare fastreg's clients and the emulators' own
costs on this machine, not the cloud services; they show what the command gives a team that
points it at its real endpoints.

    python bench/backends.py [--duration 20s] [--sizes 64K,1M,16M] [-j 1,8,32]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

from bench.tools import ensure_bytecode, fastreg_cmd, sh  # noqa: E402
from bench.trash import retire  # noqa: E402


def main() -> None:
    from tests.servers import (
        ACCESS_KEY,
        AZURITE_ACCOUNT,
        AZURITE_KEY,
        SECRET_KEY,
        make_bucket,
        make_container,
        make_gcs_bucket,
        start_azurite,
        start_gcs,
        start_seaweed,
        start_sshd,
    )

    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="20s")
    ap.add_argument("--sizes", default="64K,1M,16M")
    ap.add_argument("-j", "--jobs", default="1,8,32")
    args = ap.parse_args()
    ensure_bytecode()
    WORK.mkdir(exist_ok=True)
    proj = WORK / "backends-project"
    retire(proj)
    proj.mkdir(parents=True)
    home = Path(tempfile.mkdtemp(prefix="fastreg-bench-home-"))
    (home / ".ssh").mkdir(mode=0o700)
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "HOME": str(home)}
    fastreg = fastreg_cmd()
    servers = []
    try:
        seaweed = start_seaweed()
        servers.append(seaweed)
        gcs = start_gcs()
        servers.append(gcs)
        azurite = start_azurite()
        servers.append(azurite)
        sshd = start_sshd()
        servers.append(sshd)
        (home / ".ssh" / "known_hosts").write_text(Path(sshd.known_hosts).read_text())
        make_bucket(seaweed.endpoint, "bench")
        make_gcs_bucket(gcs.endpoint, "bench")
        make_container(azurite, "bench")
        local = WORK / "backends-local"
        retire(local)
        local.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=proj, check=True)
        sh([*fastreg, "init", "-q"], proj, env)
        for name, url, options in (
                ("s3", "s3://bench/b", [("endpoint_url", seaweed.endpoint)]),
                ("gcs", "gs://bench/b", [("endpoint_url", gcs.endpoint)]),
                ("azure", "azure://bench/b", [("account_name", AZURITE_ACCOUNT), ("account_key", AZURITE_KEY),
                                              ("endpoint_url", azurite.endpoint)]),
                ("ssh", sshd.url(str(WORK / "backends-sftp")), [("keyfile", sshd.keyfile)])):
            sh([*fastreg, "remote", "add", name, url], proj, env)
            for option, value in options:
                sh([*fastreg, "remote", "modify", name, option, value], proj, env)
        plot = WORK / "backends.png"
        cmd = [*fastreg, "bench", "s3", "gcs", "azure", "ssh", str(local), "--duration", args.duration,
               "--sizes", args.sizes, "-j", args.jobs, "--plot", str(plot)]
        print(f"bench: {' '.join(cmd[len(fastreg):])}", file=sys.stderr)
        p = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SystemExit(f"bench: fastreg bench failed:\n{p.stdout}\n{p.stderr}")
        print(p.stdout)
    finally:
        for server in reversed(servers):
            server.stop()
        retire(proj)


if __name__ == "__main__":
    main()
