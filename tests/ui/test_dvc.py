"""`fastreg ui` on a DVC project read as a registry (built by real DVC 3): the same documents."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys

from aiohttp.test_utils import TestClient, TestServer

from fastreg.ui.model import Registry
from fastreg.ui.server import make_app
from tests.dvctools import DvcProject
from tests.ui.test_api import settled_versions


async def test_a_dvc_registry_is_browsed_like_a_fastreg_one(reg3: DvcProject) -> None:
    client = TestClient(TestServer(make_app(Registry(reg3.url))))
    await client.start_server()
    try:
        versions = await settled_versions(client)
        assert versions["kind"] == "dvc"
        by_tag = {r["name"]: c for c in versions["commits"] for r in c["refs"]}
        assert set(by_tag) >= {"v1", "v2"} and by_tag["v2"]["parents"] == [by_tag["v1"]["commit"]]
        diff = await (await client.get("/api/diff?a=v1&b=v2")).json()
        cli = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "fastreg", "diff", "--repo", reg3.url,
                                                       "v1", "v2", "--json"], capture_output=True, text=True,
                                      check=True)
        assert diff["summary"] == json.loads(cli.stdout)["summary"]
        assert {k: v["files"] for k, v in by_tag["v2"]["changes"].items()} == \
            {k: v["files"] for k, v in diff["summary"].items()}
        assert diff["summary"]["added"]["files"] > 0 and diff["summary"]["modified"]["files"] == 1

        cats = reg3.root / "data" / "train" / "cats"
        folder = await (await client.get("/api/tree/data/train/cats?rev=v2")).json()
        assert [e["name"] for e in folder["entries"]] == sorted(p.name for p in cats.iterdir())
        first = sorted(cats.iterdir())[0]
        doc = await (await client.get(f"/api/file/data/train/cats/{first.name}?rev=v2")).json()
        data = first.read_bytes()
        assert doc["digest"] == "md5:" + hashlib.md5(data).hexdigest()
        assert doc["size"] is None  # a DVC manifest does not record it, and nothing was read yet
        raw = await client.get(f"/raw/data/train/cats/{first.name}?rev=v2")
        assert raw.status == 200 and await raw.read() == data
        again = await (await client.get(f"/api/file/data/train/cats/{first.name}?rev=v2")).json()
        assert again["size"] == len(data)  # learnt from the bytes read
        page = await client.get("/browse/data/train/cats?rev=v1")
        assert page.status == 200 and first.name in await page.text()
    finally:
        await client.close()
