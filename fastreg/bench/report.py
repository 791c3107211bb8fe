"""The table `fastreg bench` prints, and its plot (matplotlib, the optional extra fastreg[plot])."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastreg import tmpnames
from fastreg.bench import human_size
from fastreg.errors import DependencyError, FileSystemError


def _ms(summary: dict[str, float] | None, key: str) -> str:
    if summary is None:
        return "-"
    v = summary[key]
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def table(doc: dict[str, Any]) -> str:
    r = doc["remote"]
    lines = [f"fastreg bench {r['url']} ({r['kind']}{', read-only' if r['read_only'] else ''}): "
             f"{len(doc['cells'])} cells in a {doc['duration']:g} s budget, warm-up {doc['setup_seconds']:.1f} s, "
             f"measured {doc['elapsed']:.1f} s"]
    head = (f"{'op':5} {'size':>5} {'jobs':>4} {'requests':>8} {'MiB/s':>8} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
            f"{'p99 ms':>7} {'ttfb50':>7} {'ttfb99':>7} {'cpu':>4} {'errors':>6} {'retries':>7}")
    lines += [head, "-" * len(head)]
    for c in doc["cells"]:
        size = "-" if c["op"] == "list" else human_size(c["size"])
        rate = "-" if c["mib_per_s"] is None else f"{c['mib_per_s']:.1f}"
        rps = "-" if c["requests_per_s"] is None else f"{c['requests_per_s']:.1f}"
        line = (f"{c['op']:5} {size:>5} {c['jobs']:>4} {c['requests']:>8} {rate:>8} {rps:>8} "
                f"{_ms(c['latency_ms'], 'p50'):>7} {_ms(c['latency_ms'], 'p95'):>7} {_ms(c['latency_ms'], 'p99'):>7} "
                f"{_ms(c['ttfb_ms'], 'p50'):>7} {_ms(c['ttfb_ms'], 'p99'):>7} {c['client_cpu']:>4.0%} {c['errors']:>6} "
                f"{c['retries']:>7}")
        if c["op"] == "list" and c.get("keys_per_s") is not None:
            line += f"   {c['keys_per_s']:.0f} keys/s ({c['keys']} keys)"
        if c.get("note"):
            line += f"   {c['note']}"
        lines.append(line)
    if any(c["client_cpu"] >= 0.85 for c in doc["cells"]):
        lines.append("cpu: fastreg's CPU time per wall second (all its threads); near 100% the event loop, "
                     "not the backend, may be what limits a cell.")
    d = doc.get("dataset")
    if d:
        lines.append("")
        lines.append(f"dataset {d['path']}: {d['files']} files, {d['bytes'] / 2**20:.1f} MiB")
        for side in ("push", "pull"):
            s = d[side]
            rate = "-" if s["mib_per_s"] is None else f"{s['mib_per_s']:.1f} MiB/s"
            extra = f", {s['packs']} packs" if side == "push" else ""
            lines.append(f"  {side}: {s['seconds']:.2f} s, {s['bytes'] / 2**20:.1f} MiB moved ({rate}{extra}, "
                         f"{s['requests']} requests)")
        lines.append("  time: " + ", ".join(f"{k} {v:.2f} s ({d['shares'][k]:.0%})" for k, v in d["phases"].items()))
    c = doc["cleanup"]
    if c["kept_at"]:
        lines.append(f"Kept the objects written under {c['kept_at']} (--keep).")
    elif c["objects"] is not None:
        lines.append(f"Cleaned up {c['objects']} objects in {c['seconds']:.1f} s.")
    return "\n".join(lines)


def compare(docs: list[dict[str, Any]]) -> str:
    """Several backends measured in one run, side by side: one row per cell (the same cells for
    each), each backend's MiB/s (list: keys/s) and p50 latency."""
    names = [f"{i + 1}" for i in range(len(docs))]
    lines = ["fastreg bench: " + str(len(docs)) + " backends, the same cells for each, measured one after "
             "the other in this run:"]
    for n, d in zip(names, docs, strict=True):
        r = d["remote"]
        lines.append(f"  [{n}] {r['url']} ({r['kind']}{', read-only' if r['read_only'] else ''}): measured "
                     f"{d['elapsed']:.1f} s, errors {sum(c['errors'] for c in d['cells'])}, retries "
                     f"{sum(c['retries'] for c in d['cells'])}")
    cells: dict[tuple[str, int, int], list[dict[str, Any] | None]] = {}
    for i, d in enumerate(docs):
        for c in d["cells"]:
            cells.setdefault((c["op"], c["size"], c["jobs"]), [None] * len(docs))[i] = c
    head = f"{'op':5} {'size':>5} {'jobs':>4}" + "".join(f" {'[' + n + '] MiB/s':>12} {'p50 ms':>7}" for n in names)
    lines += ["", head, "-" * len(head)]
    for (op, size, jobs), row in cells.items():
        line = f"{op:5} {'-' if op == 'list' else human_size(size):>5} {jobs:>4}"
        for c in row:
            if c is None or not c["requests"]:
                line += f" {'-':>12} {'-':>7}"
                continue
            rate = c.get("keys_per_s") if op == "list" else c["mib_per_s"]
            shown = "-" if rate is None else (f"{rate:.0f} keys/s" if op == "list" else f"{rate:.1f}")
            line += f" {shown:>12} {_ms(c['latency_ms'], 'p50'):>7}"
        lines.append(line)
    return "\n".join(lines)


def plot_compare(docs: list[dict[str, Any]], out: Path) -> None:
    """GET and PUT throughput vs concurrency, one line per backend and object size."""
    if not plot_available():
        raise DependencyError("--plot needs matplotlib: pip install 'fastreg[plot]'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["-", "--", ":", "-."]
    for ax, op in zip(axes[0], ("get", "put"), strict=True):
        for i, d in enumerate(docs):
            cells = [c for c in d["cells"] if c["op"] == op and c["requests"] > 0 and c["mib_per_s"] is not None]
            for k, size in enumerate(sorted({c["size"] for c in cells})):
                pts = sorted((c["jobs"], c["mib_per_s"]) for c in cells if c["size"] == size)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], styles[k % len(styles)], marker="o",
                        color=colors[i % len(colors)], label=f"{d['remote']['kind']} {human_size(size)}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent requests")
        ax.set_ylabel("MiB/s")
        ax.set_title(f"{op} throughput by backend (colour) and object size (line style)")
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle("fastreg bench: " + ", ".join(d["remote"]["url"] for d in docs), fontsize=10)
    fig.tight_layout()
    _save(fig, out)


def _save(fig: Any, out: Path) -> None:
    """The figure as a PNG at out (a temp name, then renamed), closed either way."""
    import matplotlib.pyplot as plt

    tmp = tmpnames.beside(out, ".tmp")
    try:
        fig.savefig(tmp, format="png", dpi=110)
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FileSystemError(f"--plot {out}: cannot write it ({exc.strerror})") from None
    finally:
        plt.close(fig)


def plot_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def plot(doc: dict[str, Any], out: Path) -> None:
    """Throughput vs concurrency per object size (put solid, get dashed) and latency percentiles
    of put and get, one line per size and percentile."""
    if not plot_available():
        raise DependencyError("--plot needs matplotlib: pip install 'fastreg[plot]'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in doc["cells"] if c["requests"] > 0]
    ops = [op for op in ("put", "get", "range") if any(c["op"] == op for c in cells)]
    panels = 1 + len(ops)
    ncols = 2 if panels > 1 else 1
    nrows = (panels + ncols - 1) // ncols
    fig, grid = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.6 * nrows), squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[panels:]:
        ax.set_visible(False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    sizes = sorted({c["size"] for c in cells if c["op"] in ("put", "get")})
    jobs = sorted({c["jobs"] for c in cells})

    def concurrency_axis(ax: Any) -> None:
        ax.set_xscale("log", base=2)
        ax.set_xticks(jobs, [str(j) for j in jobs])
        ax.minorticks_off()
        ax.set_xlabel("concurrent requests")
        ax.grid(True, alpha=0.3)

    ax = axes[0]
    for i, size in enumerate(sizes):
        for op, style in (("put", "-"), ("get", "--")):
            pts = sorted((c["jobs"], c["mib_per_s"]) for c in cells if c["op"] == op and c["size"] == size)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", color=colors[i % len(colors)],
                        label=f"{op} {human_size(size)}")
    concurrency_axis(ax)
    ax.set_yscale("log")
    ax.set_ylabel("MiB/s")
    ax.set_title("throughput (put solid, get dashed)")
    ax.legend(fontsize=7, ncol=2)
    for k, op in enumerate(ops, start=1):
        ax = axes[k]
        op_sizes = sorted({c["size"] for c in cells if c["op"] == op})
        for i, size in enumerate(op_sizes):
            pts = sorted((c["jobs"], c["latency_ms"]) for c in cells if c["op"] == op and c["size"] == size
                         and c["latency_ms"])
            for pct, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
                ax.plot([p[0] for p in pts], [p[1][pct] for p in pts], style, marker=".",
                        color=colors[i % len(colors)], label=f"{human_size(size)} {pct}")
        concurrency_axis(ax)
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"{op} latency (p50 solid, p95 dashed, p99 dotted)" if op != "range"
                     else "ranged get latency (p50, p95, p99)")
        ax.legend(fontsize=7, ncol=3)
    fig.suptitle(f"fastreg bench {doc['remote']['url']}", fontsize=10)
    fig.tight_layout()
    _save(fig, out)
