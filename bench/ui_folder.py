"""`fastreg ui` on an ImageNet-shaped 1M-file dataset (bench/scale.py's shape: 1,000 class folders of
1,000 files): how long a folder page takes, through the real server and HTTP on 127.0.0.1.

The dataset's tree is built in the project's cache in the real format (DirBuilder, as `add`
writes it) from synthetic file records, and committed as ds.fastreg, so no 4 GB of files are
written: a folder page reads Git, the metafile and tree nodes, never file data. Timed, after one
request to the versions page (the registry's mirror is there, as after any earlier page):

  - a folder of 1,000 images, first visit (its tree nodes read from the cache, then the page
    rendered: 1,000 tiles) and again (the nodes in memory), for 20 different folders;
  - the same folder's JSON (/api/tree), and the dataset's top (1,000 folders).

    python bench/ui_folder.py [--files 1000000]       # prints a RESULTS.md section
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(ROOT))

CLASSES = 1000
TARGET_MS = 300.0


def make_project(root: Path, files: int) -> None:
    from fastreg.objects import metafile
    from fastreg.objects.tree import DirBuilder, FileRecord
    from fastreg.repo.project import Project

    if (root / "ds.fastreg").exists():
        return
    root.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "fastreg", "init"], cwd=root, check=True, capture_output=True)
    cache = Project(root).cache
    per = files // CLASSES
    top = DirBuilder(cache)
    for c in range(CLASSES):
        folder = DirBuilder(cache)
        for k in range(per):
            i = c * per + k
            folder.add_file(f"img_{i:08d}.jpg", FileRecord(4096 + i % 2048, i.to_bytes(16, "big"), b""))
        top.add_dir(f"n{c:08d}", folder.finish())
    train = DirBuilder(cache)
    train.add_dir("train", top.finish())
    rec = train.finish()
    (root / "ds.fastreg").write_text(metafile.dumps(metafile.Metafile("ds", "dir", rec.digest, rec.size, rec.files)))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "1M files"], cwd=root, check=True, env=env)
    subprocess.run(["git", "tag", "v1"], cwd=root, check=True)


def get_ms(url: str) -> tuple[float, int]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return (time.perf_counter() - t) * 1000, len(body)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--folders", type=int, default=20, help="folders visited")
    args = ap.parse_args()
    base = WORK / f"ui-{args.files}"
    proj = base / "project"
    t = time.perf_counter()
    make_project(proj, args.files)
    print(f"bench: the {args.files:,}-file project in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    env = {**os.environ, "XDG_CACHE_HOME": str(base / "xdg"), "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen([sys.executable, "-m", "fastreg", "ui", "--port", "0"], cwd=proj, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        m = re.search(r"(http://127\.0\.0\.1:\d+/)", p.stdout.readline())
        if not m:
            raise SystemExit(f"bench: fastreg ui did not start: {p.stderr.read() if p.stderr else ''}")
        url = m.group(1)
        first_page, _ = get_ms(url)
        per = args.files // CLASSES
        first, again, api, sizes = [], [], [], []
        for k in range(args.folders):
            c = (k * 37 + 500) % CLASSES
            page = f"{url}browse/ds/train/n{c:08d}?rev=v1"
            ms, size = get_ms(page)
            first.append(ms)
            sizes.append(size)
            again.append(get_ms(page)[0])
            api.append(get_ms(f"{url}api/tree/ds/train/n{c:08d}?rev=v1")[0])
        top = [get_ms(f"{url}browse/ds/train?rev=v1")[0] for _ in range(3)]
    finally:
        p.terminate()
        p.communicate(timeout=30)

    def med(xs: list[float]) -> str:
        return f"{statistics.median(xs):.0f} ms (max {max(xs):.0f})"

    print(f"## fastreg ui: a folder page of a {args.files:,}-file dataset ({time.strftime('%Y-%m-%d')})\n")
    print("Command: `python bench/ui_folder.py" + (f" --files {args.files}" if args.files != 1_000_000 else "")
          + "`. The real server over HTTP on 127.0.0.1, this 2-core VM; the dataset's tree (1,000 class "
          f"folders of {per:,} files, the real node format) in the project's cache, so pages read Git and "
          "tree nodes only. Medians over "
          f"{args.folders} folders.\n")
    print("| Request | Time |\n|---|---|")
    print(f"| versions page, first request (mirror clone included) | {first_page:.0f} ms |")
    print(f"| folder page of {per:,} images, first visit | {med(first)} |")
    print(f"| the same page again | {med(again)} |")
    print(f"| /api/tree of that folder | {med(api)} |")
    print(f"| the dataset's top: {CLASSES:,} folders | {med(top)} |")
    print(f"\nA folder page is {statistics.median(sizes) / 1024:.0f} KiB of HTML. Target: a folder page in "
          f"≤ {TARGET_MS:.0f} ms: {'met' if statistics.median(first) <= TARGET_MS else 'NOT met'} "
          f"(first visit, median {statistics.median(first):.0f} ms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
