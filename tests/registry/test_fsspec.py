"""fastreg:// as an fsspec filesystem: pandas, pyarrow and PIL read registry files through it
(found through fsspec's entry point, with no import of fastreg), listings come from trees, a
Parquet column read fetches a fraction of the file, many files come in one planned fetch, and a
file read whole is local the second time. The registry's remote is SeaweedFS (through a counting
proxy) or a read-only HTTP server."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from tests.faultproxy import FaultProxy
from tests.helpers import files_under, git
from tests.servers import start_http


def make_data(project: Path, make_images) -> dict[str, bytes]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    data = project / "data"
    (data / "tables").mkdir(parents=True)
    (data / "tables/people.csv").write_text("name,age\nada,36\ngrace,45\nalan,41\n")
    (data / "people.jsonl").write_text('{"name": "ada", "age": 36}\n{"name": "grace", "age": 45}\n')
    rng = np.random.default_rng(7)
    n = 200_000
    table = pa.table({"id": np.arange(n), "x": rng.random(n), "y": rng.random(n), "z": rng.random(n)})
    pq.write_table(table, data / "tables/wide.parquet", row_group_size=50_000, compression="none")
    img = Image.new("RGB", (64, 48), (10, 200, 30))
    img.save(data / "pixel.png")
    make_images(data / "images", train=30, validation=0, mean_kb=8)
    (project / "README.md").write_text("a registry with tables\n")
    return files_under(data)


@pytest.fixture
def registry(tmp_path: Path, project: Path, run, make_images, seaweed, bucket, monkeypatch):
    with FaultProxy(seaweed.endpoint, error_rate=0, reset_rate=0, delay_rate=0) as proxy:
        files = make_data(project, make_images)
        run("remote", "add", "-d", "store", f"s3://{bucket}/r")
        run("remote", "modify", "store", "endpoint_url", proxy.url)
        run("add", "data")
        run("push")
        git(project, "add", "-A")
        git(project, "commit", "-qm", "data")
        git(project, "tag", "v1")
        monkeypatch.chdir(tmp_path)
        yield str(project), files, proxy


def test_listing_reading_and_fetching(registry) -> None:
    url, files, proxy = registry
    fs = fsspec.filesystem("fastreg", repo=url, rev="v1")
    assert fs.ls("", detail=False) == [".gitattributes", "README.md", "data"]
    assert fs.info("data") == {"name": "data", "size": sum(map(len, files.values())), "type": "directory"}
    assert fs.info("data/tables/people.csv")["size"] == len(files["tables/people.csv"])
    assert sorted(fs.find("data")) == sorted(f"data/{k}" for k in files)
    assert fs.du("data/images") == sum(len(v) for k, v in files.items() if k.startswith("images/"))
    assert fs.glob("data/tables/*.csv") == ["data/tables/people.csv"]
    walked = {root: sorted(names) for root, _, names in fs.walk("data/tables")}
    assert walked == {"data/tables": ["people.csv", "wide.parquet"]}
    assert fs.cat("README.md") == b"a registry with tables\n"
    with pytest.raises(FileNotFoundError):
        fs.info("data/nope.txt")
    with pytest.raises(IsADirectoryError):
        fs.open("data/tables").read()
    with pytest.raises(PermissionError):
        fs.open("data/tables/people.csv", "wb")
    # ranges
    assert fs.cat_file("data/pixel.png", 1, 4) == files["pixel.png"][1:4]
    # many files: one planned batch (a few coalesced GETs, not one per file)
    images = fs.glob("data/images/**/*.jpg")
    assert len(images) == 30
    before = proxy.counts["requests"]
    got = fs.cat(images)
    assert {k: v for k, v in got.items()} == {f"data/{k}": v for k, v in files.items() if k.startswith("images/")}
    assert proxy.counts["requests"] - before <= 6
    # a folder to local disk
    fs.get("data/tables", "tables-copy", recursive=True)
    assert files_under(Path("tables-copy")) == {k[len("tables/"):]: v for k, v in files.items()
                                                 if k.startswith("tables/")}


def test_pandas_pyarrow_pil_through_the_entry_point(registry) -> None:
    url, files, proxy = registry
    # A fresh interpreter that never imports fastreg: fsspec finds the protocol by its entry point.
    code = ("import sys, fsspec, pandas as pd\n"
            "assert 'fastreg' not in sys.modules\n"
            f"df = pd.read_csv('fastreg://data/tables/people.csv', storage_options={{'repo': {url!r}}})\n"
            "print(list(df['name']), int(df['age'].sum()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert out.stdout.strip() == "['ada', 'grace', 'alan'] 122"
    import pyarrow.parquet as pq
    from PIL import Image

    fs = fsspec.filesystem("fastreg", repo=url)
    size = len(files["tables/wide.parquet"])
    before = proxy.counts["bytes_out"]
    table = pq.read_table("data/tables/wide.parquet", columns=["y"], filesystem=fs)
    moved = proxy.counts["bytes_out"] - before
    assert table.num_rows == 200_000 and table.column_names == ["y"]
    assert moved < 0.5 * size, (moved, size)  # one column of four, and the footer
    with fs.open("data/pixel.png") as f:
        assert Image.open(f).size == (64, 48)
    # a file read whole is kept in the user cache: the second read moves nothing
    with fsspec.open("fastreg://data/tables/wide.parquet", repo=url) as f:
        assert f.read() == files["tables/wide.parquet"]
    before = proxy.counts["bytes_out"]
    with fsspec.open("fastreg://data/tables/wide.parquet", repo=url) as f:
        assert f.read() == files["tables/wide.parquet"]
    assert proxy.counts["bytes_out"] == before


def test_http_remote(tmp_path: Path, project: Path, run, make_images, monkeypatch) -> None:
    files = make_data(project, make_images)
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "data")
    run("push")
    server = start_http(tmp_path / "remote")
    try:
        run("remote", "add", "-d", "-f", "store", server.url)
        git(project, "add", "-A")
        git(project, "commit", "-qm", "data over HTTP")
        monkeypatch.chdir(tmp_path)
        fs = fsspec.filesystem("fastreg", repo=str(project))
        assert fs.cat("data/tables/people.csv") == files["tables/people.csv"]
        got = fs.cat(fs.glob("data/images/**/*.jpg"))
        assert len(got) == 30 and all(v == files[k[len("data/"):]] for k, v in got.items())
        import pandas as pd

        df = pd.read_parquet("fastreg://data/tables/wide.parquet", columns=["x"],
                             storage_options={"repo": str(project)})
        assert len(df) == 200_000
        with fs.open("data/tables/wide.parquet") as f:
            f.seek(-8, io.SEEK_END)
            assert f.read() == files["tables/wide.parquet"][-8:]
    finally:
        server.stop()


def test_readers_that_need_the_size_dask_and_pyarrow_datasets(tmp_path: Path, project: Path, run,
                                                              make_images, monkeypatch) -> None:
    """cat_file with a negative start, read_block, tail (what dask's read_csv uses) on every kind
    of file: remote, in the user cache, a plain Git file; dask and pyarrow.dataset over fastreg://."""
    import dask.dataframe as dd
    import pyarrow.dataset as pads

    files = make_data(project, make_images)
    (project / "notes.csv").write_text("k,v\na,1\nb,2\n")  # a plain Git file
    run("remote", "add", "-d", "store", str(tmp_path / "remote"))
    run("add", "data")
    run("push")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "data")
    monkeypatch.chdir(tmp_path)
    fs = fsspec.filesystem("fastreg", repo=str(project), skip_instance_cache=True)
    csv = files["tables/people.csv"]
    for _ in range(2):  # first from the remote, then from the user cache
        assert fs.cat_file("data/tables/people.csv", start=-4) == csv[-4:]
        assert fs.tail("data/tables/people.csv", 5) == csv[-5:]
        assert fs.read_block("data/tables/people.csv", 0, 12, delimiter=b"\n") == b"name,age\nada,36\n"
        fs.cat("data/tables/people.csv")
    assert fs.cat_file("notes.csv", start=-2) == b"2\n" and fs.tail("notes.csv", 2) == b"2\n"
    df = dd.read_csv("fastreg://data/tables/people.csv", storage_options={"repo": str(project)},
                     blocksize=16).compute()
    assert sorted(df["name"]) == ["ada", "alan", "grace"] and df["age"].sum() == 122
    table = pads.dataset("data/tables/wide.parquet", filesystem=fs, format="parquet").to_table(columns=["x"])
    assert table.num_rows == 200_000
    with pytest.raises(ValueError, match="repo=URL"):
        fsspec.filesystem("fastreg", skip_instance_cache=True)


def test_duckdb_and_hugging_face_datasets_read_csv_json_and_parquet(registry, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """DuckDB (read_csv / read_parquet through register_filesystem: it asks for modified()) and
    Hugging Face `datasets` (csv, json, parquet; loaded and streamed) on fastreg:// paths."""
    import duckdb
    import fsspec

    url, files, _ = registry
    fs = fsspec.filesystem("fastreg", repo=url, rev="v1")
    when = fs.modified("data/tables/wide.parquet")
    assert when.tzinfo is not None and fs.created("data/tables/people.csv") == when
    with pytest.raises(FileNotFoundError):
        fs.modified("data/tables/nope.parquet")
    con = duckdb.connect()
    con.register_filesystem(fs)
    assert con.execute("select count(*), sum(id) from read_parquet('fastreg://data/tables/wide.parquet')").fetchone() \
        == (200_000, 200_000 * 199_999 // 2)
    assert con.execute("select max(age) from read_csv('fastreg://data/tables/people.csv')").fetchone() == (45,)

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    opts = {"repo": url, "rev": "v1"}
    people = datasets.load_dataset("csv", data_files="fastreg://data/tables/people.csv", storage_options=opts,
                                   split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert people["name"] == ["ada", "grace", "alan"]
    wide = datasets.load_dataset("parquet", data_files="fastreg://data/tables/wide.parquet", storage_options=opts,
                                 split="train", streaming=True)
    first = next(iter(wide))
    assert first["id"] == 0 and 0 <= first["x"] < 1
    streamed = datasets.load_dataset("csv", data_files="fastreg://data/tables/people.csv", storage_options=opts,
                                     split="train", streaming=True)
    assert [r["age"] for r in streamed] == [36, 45, 41]
    people = datasets.load_dataset("json", data_files="fastreg://data/people.jsonl", storage_options=opts,
                                   split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert people["age"] == [36, 45] and "people.jsonl" in files
