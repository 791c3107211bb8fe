"""One `fastreg bench` run: resolve the remote, preflight, measure, round-trip a dataset, clean up."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastreg.bench import SCHEMA
from fastreg.bench.runner import Cell, Plan, Runner, cleanup, find_packs, preflight
from fastreg.errors import FastregError, NotAProjectError, ReadOnlyStore, UsageError
from fastreg.repo import remotes
from fastreg.storage.base import Store
from fastreg.transfer import bridge


# -- which remote ------------------------------------------------------------------------------
@dataclass(slots=True)
class Target:
    remote: remotes.Remote
    base: Path  # what a relative local path is relative to
    roots: list[bytes] = field(default_factory=list)  # the current project's tracked data (HTTP read tests)


def resolve(text: str, endpoint_url: str | None, region: str | None, profile: str | None) -> Target:
    """A remote of the current project by name, or a URL: s3://BUCKET[/PREFIX], http(s)://..., or
    an existing local directory."""
    from fastreg.repo.project import Project

    project = None
    with contextlib.suppress(NotAProjectError):
        project = Project.find()
    remote: remotes.Remote | None = None
    if project is not None and remotes.NAME.fullmatch(text):
        remote = remotes.all_remotes(project.config).get(text)
    if remote is None:
        if text.startswith(("s3://", "gs://", "azure://", "ssh://", "http://", "https://")):
            remotes.check_url(text)
            remote = remotes.Remote("bench", text)
        elif os.path.isdir(text):
            remote = remotes.Remote("bench", str(Path(text).absolute()))
        else:
            where = "a remote of this project, " if project is not None else ""
            raise UsageError(f"{text!r} is not {where}an existing directory, or an s3://, gs://, azure://, ssh:// "
                             "or http(s):// URL")
    options = dict(remote.options)
    for key, value in (("endpoint_url", endpoint_url), ("region", region), ("profile", profile)):
        if value is not None:
            options[key] = value
    remote = remotes.Remote(remote.name, remote.url, options)
    roots: list[bytes] = []
    if project is not None:
        for t in project.metafiles():
            with contextlib.suppress(FastregError):
                roots.append(project.read_meta(t).digest)
    return Target(remote, project.root if project is not None else Path.cwd(), roots)


def _under(remote: remotes.Remote, base: Path, prefix: str) -> remotes.Remote:
    if remote.kind == "local":
        path = Path(remote.url).expanduser()
        return remotes.Remote(remote.name, str((path if path.is_absolute() else base / path) / prefix), remote.options)
    return remotes.Remote(remote.name, f"{remote.url.rstrip('/')}/{prefix}", remote.options)


# -- the run -----------------------------------------------------------------------------------
@dataclass(slots=True)
class BenchResult:
    target: Target
    plan: Plan
    prefix: str
    cells: list[Cell] = field(default_factory=list)
    setup_seconds: float = 0.0
    elapsed: float = 0.0
    dataset: dict[str, Any] | None = None
    written: int = 0  # objects the run wrote (the dataset's not included)
    cleaned: int | None = None  # objects deleted; None with --keep
    cleanup_seconds: float = 0.0
    kept_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        r = self.target.remote
        return {
            "schema": SCHEMA,
            "remote": {"name": r.name, "url": r.url, "kind": r.kind, "read_only": r.read_only,
                       **({"endpoint_url": r.options["endpoint_url"]} if "endpoint_url" in r.options else {})},
            "prefix": self.prefix,
            "sizes": self.plan.sizes, "jobs": self.plan.jobs,
            "duration": self.plan.duration,
            "setup_seconds": round(self.setup_seconds, 4),
            "elapsed": round(self.elapsed, 4),
            "cells": [c.to_json() for c in self.cells],
            "objects_written": self.written,
            "dataset": self.dataset,
            "cleanup": {"objects": self.cleaned, "seconds": round(self.cleanup_seconds, 4), "kept_at": self.kept_at},
        }


def run(target: Target, sizes: list[int], jobs: list[int], duration: float, dataset: Path | None = None,
        keep: bool = False, on_cell: Callable[[Cell, int, int], None] | None = None,
        on_phase: Callable[[str], None] | None = None) -> BenchResult:
    from fastreg.storage.wrappers import LimitedStore, RetryingStore

    remote = target.remote
    plan = Plan(sizes, jobs, duration, remote.read_only)
    if dataset is not None:
        from fastreg.bench.dataset import check_dataset

        if remote.read_only:
            raise UsageError(f"{remote.url} is read-only: --dataset pushes, so it needs a writable remote")
        check_dataset(dataset)
    prefix = f"fastreg-bench-{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(3).hex()}"
    bench_remote = remote if remote.read_only else _under(remote, target.base, prefix)
    result = BenchResult(target, plan, "" if remote.read_only else prefix)
    nj = max(jobs)
    raw = remotes.open_backend(bench_remote, target.base, nj)
    retrying = RetryingStore(raw, budget=bench_remote.retry_budget)
    store: Store = LimitedStore(retrying, nj)
    started = time.perf_counter()
    ok = False
    try:
        bridge.run(preflight(raw, write=not remote.read_only))
        runner = Runner(store, lambda: retrying.retries, plan, on_cell)
        if remote.read_only:
            runner.sources = bridge.run(find_packs(store, target.roots))
            if not runner.sources:
                hint = " (run it inside a project whose data is on this remote)" if not raw.can_list else ""
                raise ReadOnlyStore(f"{remote.url} is read-only and has no packs to read{hint}")
        try:
            result.cells = bridge.run(runner.run())
        finally:
            result.cells = runner.cells
            result.setup_seconds = runner.setup_seconds
            result.written = 0 if remote.read_only else 1 + sum(len(k) for k in runner.keys.values())
        result.elapsed = time.perf_counter() - started
        if dataset is not None:
            from fastreg.bench.dataset import round_trip

            if on_phase is not None:
                on_phase(f"dataset {dataset}")
            sub = _under(bench_remote, target.base, "dataset")
            result.dataset = round_trip(dataset,
                                        lambda: remotes.open_store(sub, target.base, remote.default_jobs()),
                                        remote.default_jobs(), remote.pack_size).to_json()
        ok = True
    finally:
        if not remote.read_only:
            if keep:
                result.kept_at = bench_remote.url
            else:
                if on_phase is not None:
                    on_phase("clean-up")
                t0 = time.perf_counter()
                # After a failure, clean up what can be cleaned (briefly: the store may be the
                # failure) and report the failure itself.
                if not ok:
                    retrying.budget = min(retrying.budget, 5.0)
                with contextlib.suppress(*(() if ok else (Exception,))):
                    result.cleaned = bridge.run(cleanup(store, nj))
                    if bench_remote.kind == "local":
                        _remove_empty_tree(Path(bench_remote.url))
                result.cleanup_seconds = time.perf_counter() - t0
        with contextlib.suppress(Exception):
            bridge.run(store.close())
    return result


def _remove_empty_tree(root: Path) -> None:
    """The bench prefix of a local remote, once every object in it is deleted (directories only:
    a file left there means something else wrote into it, and it stays)."""
    for dirpath, _, filenames in os.walk(root, topdown=False):
        if filenames:
            files = [f for f in filenames if f.startswith(".") and f.endswith(".tmp")]
            if len(files) != len(filenames):
                return
            for f in files:  # temp files of PUTs cancelled at the end of the budget
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, f))
        with contextlib.suppress(OSError):
            os.rmdir(dirpath)
