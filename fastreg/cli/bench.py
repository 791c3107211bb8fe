"""`fastreg bench`: a storage backend measured the way fastreg uses it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fastreg.cli.output import steady_malloc
from fastreg.errors import DependencyError, UsageError


def cmd_bench(args: argparse.Namespace) -> int:
    steady_malloc()
    import json
    from pathlib import Path

    from fastreg import bench
    from fastreg.bench import core, report
    from fastreg.bench.runner import Cell

    sizes = bench.parse_sizes(args.sizes)
    jobs = bench.parse_jobs(args.jobs)
    duration = bench.parse_duration(args.duration)
    plot = Path(args.plot) if args.plot else None
    if plot is not None:
        if not report.plot_available():
            raise DependencyError("--plot needs matplotlib: pip install 'fastreg[plot]'")
        if not plot.absolute().parent.is_dir():
            raise UsageError(f"--plot {plot}: the directory {plot.absolute().parent} does not exist")
    dataset = Path(args.dataset) if args.dataset else None
    targets = [core.resolve(t, args.endpoint_url, args.region, args.profile) for t in args.target]
    show = not args.quiet and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=None, desc="bench: warm-up", unit="cell", file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_cell(cell: Cell, done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.set_description(f"bench: {cell.op} {bench.human_size(cell.size)} x{cell.jobs}")
            bar.update(1)

    def on_phase(name: str) -> None:
        if bar is not None:
            bar.set_description(f"bench: {name}")
            bar.refresh()

    docs = []
    try:
        for target in targets:  # one after the other: no backend shares the machine with another
            if bar is not None and len(targets) > 1:
                bar.reset()
                on_phase(f"{target.remote.url}: warm-up")
            docs.append(core.run(target, sizes, jobs, duration, dataset, args.keep, on_cell, on_phase).to_json())
    finally:
        if bar is not None:
            bar.close()
    if plot is not None:
        if len(docs) == 1:
            report.plot(docs[0], plot)
        else:
            report.plot_compare(docs, plot)
    if args.json:
        print(json.dumps(docs[0] if len(docs) == 1 else {"schema": docs[0]["schema"], "runs": docs}, indent=1))
    elif not args.quiet:
        if len(docs) > 1:
            for doc in docs:
                print(report.table(doc) + "\n")
            print(report.compare(docs))
        else:
            print(report.table(docs[0]))
        if plot is not None:
            print(f"Plot: {plot}")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Declare this group's commands on the subparsers `sub` (each with the `common` flags)."""
    from fastreg.bench import DEFAULT_DURATION, DEFAULT_JOBS, DEFAULT_SIZES

    p = sub.add_parser(
        "bench", parents=[common], help="benchmark a storage backend the way fastreg uses it",
        description="Measure a remote with fastreg's own storage stack (retries included): PUT and GET "
        "throughput, requests/s and latency percentiles per object size and concurrency, time to first "
        "byte of ranged GETs, LIST rate, errors and retries; with --dataset, a real push and pull of a "
        "directory and where its time goes. Objects are written under a unique prefix and deleted at "
        "the end. A read-only remote (HTTP, read_only) gets the read tests only, on its existing packs.")
    p.add_argument("target", metavar="REMOTE_OR_URL", nargs="+",
                   help="a remote of this project, s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], "
                   "azure://CONTAINER[/PREFIX], ssh://[USER@]HOST[:PORT]/PATH, http(s)://HOST/PATH or a directory; "
                   "several: each measured in turn with the same cells, then compared side by side (one "
                   "table, one plot)")
    p.add_argument("--sizes", default=DEFAULT_SIZES, metavar="LIST",
                   help=f"object sizes, comma-separated (default {DEFAULT_SIZES})")
    p.add_argument("-j", "--jobs", default=DEFAULT_JOBS, metavar="LIST",
                   help=f"concurrent requests to try, comma-separated (default {DEFAULT_JOBS})")
    p.add_argument("--duration", default=DEFAULT_DURATION, metavar="TIME",
                   help=f"time budget of the measurements, shared by all cells, e.g. 30s, 2m (default "
                   f"{DEFAULT_DURATION}); clean-up and --dataset come on top")
    p.add_argument("--dataset", metavar="PATH", help="also push and pull this directory through fastreg's pipeline")
    p.add_argument("--json", action="store_true", help="print the figures as JSON (schema in docs/bench.md)")
    p.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency to a PNG (needs fastreg[plot])")
    p.add_argument("--keep", action="store_true", help="leave the objects written (their prefix is printed)")
    p.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint (overrides the remote's)")
    p.add_argument("--region", metavar="REGION", help="S3 region (overrides the remote's)")
    p.add_argument("--profile", metavar="PROFILE", help="AWS profile (overrides the remote's)")
    p.set_defaults(func=cmd_bench)
