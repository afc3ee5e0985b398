"""Run the fastloss benchmarks against their peers and write a report.

Usage (from the repository root)::

    python -m benchmarks.report                   # quick set (~1-3 min), results in benchmarks/results/
    python -m benchmarks.report --full            # every size
    python -m benchmarks.report --cases scce,focal --repeats 11 --out /tmp/bench
    python -m benchmarks.report --from-csv benchmarks/results/results.csv   # regenerate Markdown/plots only
    FASTLOSS_TFA_PYTHON=/opt/tfa/bin/python python -m benchmarks.report     # + TF Addons rows
    pip install -e ".[peers]" && python -m benchmarks.report                # + PyTorch and JAX (CPU) rows

PyTorch and JAX are used when they are installed (``--no-torch``/``--no-jax`` leave
them out). GPU rows are not measured here: they are read from
``benchmarks/results/gpu_results.csv`` (written on a GPU machine by
``python -m benchmarks.gpu_check --out benchmarks/results``, same columns) when
that file exists, or from ``--gpu-csv FILE``, and reported in a section of their
own (``--no-gpu`` leaves them out); ``--from-csv`` mode includes them too.

Writes ``results.csv`` and ``results.json`` (long format: one row per case x
provider x backend; the CPU rows of this run), ``REPORT.md`` and, with matplotlib,
``time_vs_size.png``, ``speedup.png`` and ``floor_fraction.png`` (and ``gpu_*.png``
for GPU rows); prints the summary table to stdout
and a progress bar to stderr. Cases and providers: ``benchmarks/cases.py``;
timing and peak-memory method: ``benchmarks/_timing.py``.
"""

import argparse
import csv
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

from . import _timing
from . import cases as C

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results"
DEFAULT_GPU_CSV = DEFAULT_OUT / "gpu_results.csv"

COLUMNS = [
    "kernel",
    "provider",
    "backend",
    "device",
    "size",
    "n_elements",
    "dtype",
    "p20_s",
    "p50_s",
    "p80_s",
    "repeats",
    "number",
    "warmup_s",
    "peak_mem_bytes",
    "mem_method",
    "floor_bytes",
    "copy_bw_Bps",
    "max_rel_err",
    "machine",
    "cores",
    "python",
    "numpy",
    "numba",
    "numba_layer",
    "numba_cuda",
    "tensorflow",
    "keras",
    "fastloss",
    "tfa",
    "torch",
    "jax",
    "date",
]
INT_COLS = {"n_elements", "repeats", "number", "peak_mem_bytes", "floor_bytes", "cores"}
FLOAT_COLS = {"p20_s", "p50_s", "p80_s", "warmup_s", "copy_bw_Bps", "max_rel_err"}

PROVIDER_LABELS = {
    "fastloss": "fastloss",
    "fastloss_grad_out": "fastloss grad_out=",
    "tf_function": "TF tf.function",
    "tf_eager": "TF eager",
    "tfa_function": "TFA tf.function",
    "tfa_eager": "TFA eager",
    "torch_eager": "PyTorch eager",
    "jax_jit": "JAX jit",
    "numpy": "NumPy",
}
# peer columns of the summary table, in this order (those present in the rows)
PEERS = ("tf_function", "tf_eager", "tfa_function", "tfa_eager", "torch_eager", "jax_jit", "numpy")


# ------------------------------------------------------------------ helpers


class Progress:
    """A plain text progress bar on stderr (no tqdm)."""

    def __init__(self, total, width=28, stream=None):
        self.total = max(1, total)
        self.done = 0
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()

    def show(self, text):
        frac = min(1.0, self.done / self.total)
        fill = int(round(frac * self.width))
        bar = "#" * fill + "-" * (self.width - fill)
        el = time.perf_counter() - self.t0
        self.stream.write(f"\r[{bar}] {self.done:>3}/{self.total} {el:6.1f}s  {text[:60]:<60}")
        self.stream.flush()

    def step(self, text=""):
        self.done += 1
        self.show(text)

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def _version(mod):
    try:
        m = __import__(mod)
        return getattr(m, "__version__", "")
    except Exception:  # noqa: BLE001 - an absent/broken optional package is just "absent"
        return ""


def fmt_time(s):
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1.0:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(b):
    if b is None:
        return ""
    if b < 2**20:
        return f"{b / 2**10:.0f} KiB"
    if b < 2**30:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**30:.2f} GiB"


def fmt_ratio(x):
    if x is None:
        return ""
    if x < 1:
        return f"{x:.2f}x"  # the peer is faster (GPU rows)
    return f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


def fmt_frac(x):
    return "" if x is None else f"{x:.2f}"


def floor_time(row):
    """Copy-floor seconds: (input bytes + gradient bytes) / NumPy copy bandwidth."""
    bw = row.get("copy_bw_Bps")
    fb = row.get("floor_bytes")
    if not bw or not fb:
        return None
    return fb / bw


def floor_fraction(row):
    """Floor time / measured p50 (1.0 = as fast as a NumPy copy of the same bytes)."""
    ft = floor_time(row)
    return None if ft is None or not row.get("p50_s") else ft / row["p50_s"]


# --------------------------------------------------------------------- I/O


def write_csv(rows, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in COLUMNS})


def _coerce(k, v):
    if v is None or v == "":
        return None if (k in INT_COLS or k in FLOAT_COLS) else ""
    if k in INT_COLS:
        return int(float(v))
    if k in FLOAT_COLS:
        return float(v)
    return v


def read_csv(path):
    with open(path, newline="") as fh:
        return [{k: _coerce(k, r.get(k)) for k in COLUMNS} for r in csv.DictReader(fh)]


def write_json(rows, path):
    with open(path, "w") as fh:
        json.dump([{k: r.get(k) for k in COLUMNS} for r in rows], fh, indent=1)
        fh.write("\n")


# --------------------------------------------------------------- analysis


def _case_key(row):
    return (row["kernel"], row["size"])


def _ordered_cases(rows):
    order = {c.id: i for i, c in enumerate(C.CASES)}
    kernel_rank = {}
    for i, c in enumerate(C.CASES):
        kernel_rank.setdefault(c.kernel, i)
    keys = []
    for r in rows:
        k = _case_key(r)
        if k not in keys:
            keys.append(k)
    # kernels in the order of C.CASES, then by size (sizes not in C.CASES, e.g. GPU ones, fall in place)
    return sorted(keys, key=lambda k: (kernel_rank.get(k[0], 10**6), k[0], _n_of(rows, k),
                                       order.get(f"{k[0]}-{k[1]}", 10**6)))


def _n_of(rows, key):
    for r in rows:
        if _case_key(r) == key:
            return r["n_elements"] or 0
    return 0


def _label(kernel, size):
    return f"{C.KERNEL_LABELS.get(kernel, kernel)} {size}"


def _pick(rows, key, provider, backend=None):
    for r in rows:
        if _case_key(r) == key and r["provider"] == provider and (backend is None or r["backend"] == backend):
            return r
    return None


def _backends(rows):
    out = []
    for r in rows:
        if r["provider"] in C.FASTLOSS_PROVIDERS and r["backend"] not in out:
            out.append(r["backend"])
    return out


def is_gpu(row):
    """A row measured on a GPU (``device`` column other than empty / ``cpu``)."""
    return (row.get("device") or "cpu") != "cpu"


def split_devices(rows):
    """``(cpu_rows, gpu_rows)``."""
    return [r for r in rows if not is_gpu(r)], [r for r in rows if is_gpu(r)]


def has_tf(rows):
    return any(r["provider"] in C.TF_PROVIDERS for r in rows)


def has_tfa(rows):
    return any(r["provider"] in C.TFA_PROVIDERS for r in rows)


def speedup(rows, key, backend, peer, fl_provider="fastloss"):
    fl = _pick(rows, key, fl_provider, backend)
    pr = _pick(rows, key, peer)
    if fl is None or pr is None or not fl["p50_s"] or not pr["p50_s"]:
        return None
    return pr["p50_s"] / fl["p50_s"]


def summary_table(rows):
    """Markdown lines: one row per case x fastloss backend."""
    peers = [p for p in PEERS if any(r["provider"] == p for r in rows)]
    head = ["case", "backend", "fastloss", "fastloss grad_out="]
    head += [PROVIDER_LABELS[p] for p in peers]
    head += ["copy floor"]
    head += [f"x {PROVIDER_LABELS[p]}" for p in peers if p != "numpy"]
    head += ["floor fraction", "floor fraction (grad_out=)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in _ordered_cases(rows):
        for b in _backends(rows) or [""]:
            fl = _pick(rows, key, "fastloss", b)
            fo = _pick(rows, key, "fastloss_grad_out", b)
            ref = fl or fo or next(r for r in rows if _case_key(r) == key)
            cells = [_label(*key), b or "-"]
            cells += [fmt_time(fl["p50_s"]) if fl else "", fmt_time(fo["p50_s"]) if fo else ""]
            for p in peers:
                pr = _pick(rows, key, p)
                cells.append(fmt_time(pr["p50_s"]) if pr else "")
            cells.append(fmt_time(floor_time(ref)))
            cells += [fmt_ratio(speedup(rows, key, b, p)) for p in peers if p != "numpy"]
            cells += [fmt_frac(floor_fraction(fl)) if fl else "", fmt_frac(floor_fraction(fo)) if fo else ""]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def detail_table(rows, key):
    head = ["provider", "backend", "p50", "p20 - p80", "warm-up (1st call)", "peak mem", "floor fraction",
            "fastloss speed-up", "max rel err vs float64"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fl_by_backend = {b: _pick(rows, key, "fastloss", b) for b in _backends(rows)}
    order = {p: i for i, p in enumerate(C.PROVIDER_ORDER)}
    sel = sorted((r for r in rows if _case_key(r) == key), key=lambda r: (order.get(r["provider"], 99), r["backend"]))
    for r in sel:
        if r["provider"] in C.FASTLOSS_PROVIDERS:
            sp = ""
        else:
            sps = []
            for b, fl in fl_by_backend.items():
                if fl and fl["p50_s"] and r["p50_s"]:
                    s = fmt_ratio(r["p50_s"] / fl["p50_s"])
                    sps.append(s if len(fl_by_backend) == 1 else f"{b}: {s}")
            sp = ", ".join(sps)
        prov = PROVIDER_LABELS.get(r["provider"], r["provider"])
        if r["provider"] in C.TFA_PROVIDERS and r.get("tfa"):
            prov += f" (TF {r['tensorflow']}, TFA {r['tfa']})"
        mem = fmt_bytes(r["peak_mem_bytes"])
        if mem and r.get("mem_method") and r["mem_method"] != "rss_hwm":
            mem += f" ({r['mem_method']})"
        err = "" if r.get("max_rel_err") is None else f"{r['max_rel_err']:.1e}"
        lines.append(
            "| "
            + " | ".join(
                [
                    prov,
                    r["backend"] or "-",
                    fmt_time(r["p50_s"]),
                    f"{fmt_time(r['p20_s'])} - {fmt_time(r['p80_s'])}",
                    fmt_time(r["warmup_s"]),
                    mem,
                    fmt_frac(floor_fraction(r)),
                    sp,
                    err,
                ]
            )
            + " |"
        )
    return lines


def gpu_section(rows):
    """Markdown lines of the GPU section (rows recorded by ``benchmarks/gpu_check.py``)."""
    meta = next((r for r in rows if r["provider"] in C.FASTLOSS_PROVIDERS), rows[0])
    machines = []
    for r in rows:
        if r.get("machine") and r["machine"] not in machines:
            machines.append(r["machine"])
    L = [f"## GPU: {', '.join(machines) or '?'}", ""]
    L.append(f"- **Date:** {meta.get('date') or '?'}")
    L.append(f"- **Machine:** {', '.join(machines) or '?'}"
             + (f" (host: {meta['cores']} logical cores)" if meta.get("cores") else ""))
    vers = [f"Python {meta.get('python') or '?'}", f"NumPy {meta.get('numpy') or '?'}",
            f"Numba {meta.get('numba') or '?'}"]
    if meta.get("numba_cuda"):
        vers.append(f"numba-cuda {meta['numba_cuda']}")
    vers.append(f"fastloss {meta.get('fastloss') or '?'}")
    for col, name in (("torch", "PyTorch"), ("jax", "JAX")):
        v = next((r.get(col) for r in rows if r.get(col)), "")
        if v:
            vers.append(f"{name} {v}")
    L.append("- **Versions:** " + ", ".join(vers))
    L.append(f"- **fastloss backends measured:** {', '.join(_backends(rows)) or 'none'}")
    bw = meta.get("copy_bw_Bps")
    if bw:
        L.append(f"- **Device copy bandwidth:** {bw / 1e12:.2f} TB/s (device-to-device copy of 1 GiB, "
                 "(bytes read + bytes written) / time)")
    L.append("")
    L.append("Recorded by `python -m benchmarks.gpu_check --out benchmarks/results` on that machine and read "
             "from `gpu_results.csv`. Inputs live on the GPU (PyTorch CUDA tensors; fastloss takes them through "
             "`__cuda_array_interface__`, no copies); p50 of synchronized calls, loss + gradient w.r.t. the "
             "logits, float32. fastloss' call includes its one synchronization (the reduced loss comes back to "
             "the host). `copy floor` = (input bytes + gradient bytes) / device copy bandwidth; `x Peer` = peer "
             "p50 / fastloss p50 (below 1: the peer is faster).")
    L.append("")
    L += summary_table(rows)
    L.append("")
    for key in _ordered_cases(rows):
        L.append(f"### GPU: {_label(*key)}")
        L.append("")
        L += detail_table(rows, key)
        L.append("")
    return L


# ------------------------------------------------------------------- plots


def make_plots(rows, out_dir, prefix="", where="", floor_label="NumPy copy floor"):
    """Write the PNGs (``prefix`` before each file name, ``where`` after each title); returns
    their file names, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    kernels = []
    for r in rows:
        if r["kernel"] not in kernels:
            kernels.append(r["kernel"])
    series = []
    for r in rows:
        s = (r["provider"], r["backend"])
        if s not in series:
            series.append(s)
    order = {p: i for i, p in enumerate(C.PROVIDER_ORDER)}
    series.sort(key=lambda s: (order.get(s[0], 99), s[1]))
    nb = len(_backends(rows))

    def slabel(p, b):
        lab = PROVIDER_LABELS.get(p, p)
        return f"{lab} [{b}]" if (b and nb > 1) else lab

    colors = {s: f"C{i % 10}" for i, s in enumerate(series)}

    # 1. time vs size, log-log, one panel per kernel
    ncol = min(2, len(kernels))
    nrow = math.ceil(len(kernels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, 4.3 * nrow), squeeze=False)
    for ax, k in zip(axes.flat, kernels):
        for s in series:
            pts = sorted((r["n_elements"], r["p50_s"]) for r in rows if r["kernel"] == k and (r["provider"], r["backend"]) == s)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=colors[s], label=slabel(*s))
        fl = {}
        for r in rows:
            if r["kernel"] == k and floor_time(r):
                fl[r["n_elements"]] = floor_time(r)
        if fl:
            xs = sorted(fl)
            ax.plot(xs, [fl[x] for x in xs], "k--x", lw=1, label=floor_label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(C.KERNEL_LABELS.get(k, k) + " (loss + grad, float32)" + where, fontsize=9 if where else None)
        ax.set_xlabel("elements of y_pred")
        ax.set_ylabel("p50 seconds per call")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(kernels):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}time_vs_size.png", dpi=110)
    plt.close(fig)
    files.append(f"{prefix}time_vs_size.png")

    keys = _ordered_cases(rows)
    labels = [_label(*k) for k in keys]

    # 2. speed-up of fastloss over each peer
    peers = [p for p in PEERS if any(r["provider"] == p for r in rows)]
    backends = _backends(rows) or [""]
    if peers:
        fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(keys) + 3), 4.5))
        groups = [(b, p) for b in backends for p in peers]
        w = 0.8 / len(groups)
        for gi, (b, p) in enumerate(groups):
            ys = [speedup(rows, k, b, p) for k in keys]
            xs = [i + (gi - (len(groups) - 1) / 2) * w for i in range(len(keys))]
            ax.bar([x for x, y in zip(xs, ys) if y], [y for y in ys if y], width=w,
                   label=f"vs {PROVIDER_LABELS[p]}" + (f" [{b}]" if nb > 1 else ""), color=f"C{gi % 10}")
        ax.axhline(1.0, color="k", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("fastloss speed-up (peer p50 / fastloss p50)")
        ax.set_title("Speed-up of fastloss (new gradient per call) over peers" + where)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}speedup.png", dpi=110)
        plt.close(fig)
        files.append(f"{prefix}speedup.png")

    # 3. fraction of the copy floor
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(keys) + 3), 4.5))
    w = 0.8 / max(1, len(series))
    for si, s in enumerate(series):
        ys = []
        for k in keys:
            r = _pick(rows, k, s[0], s[1])
            ys.append(floor_fraction(r) if r else None)
        xs = [i + (si - (len(series) - 1) / 2) * w for i in range(len(keys))]
        ax.bar([x for x, y in zip(xs, ys) if y], [y for y in ys if y], width=w, label=slabel(*s), color=colors[s])
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("copy-floor time / p50 (1 = copy speed)")
    ax.set_title("Fraction of the memory-copy floor reached" + where)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}floor_fraction.png", dpi=110)
    plt.close(fig)
    files.append(f"{prefix}floor_fraction.png")
    return files


# ---------------------------------------------------------------- markdown


def render_markdown(rows, out_dir, plots=True, notes=()):
    """Write REPORT.md (and the plots) into ``out_dir``; returns the Markdown text."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows = rows
    rows, gpu_rows = split_devices(all_rows)
    if not rows and not gpu_rows:
        raise ValueError("no benchmark rows to report")
    L = ["# fastloss benchmark report", ""]
    if rows:
        meta = next((r for r in rows if r["provider"] in C.FASTLOSS_PROVIDERS), rows[0])
        tf, tfa = has_tf(rows), has_tfa(rows)
        bw = meta.get("copy_bw_Bps")
        L.append(f"- **Date:** {meta.get('date') or '?'}")
        L.append(f"- **Machine:** {meta.get('machine') or '?'} ({meta.get('cores') or '?'} logical cores)")
        numba_s = f"Numba {meta.get('numba') or 'absent'}"
        if meta.get("numba_layer"):
            numba_s += f" (threading layer {meta['numba_layer']})"
        vers = [f"Python {meta.get('python')}", f"NumPy {meta.get('numpy')}", numba_s, f"fastloss {meta.get('fastloss')}"]
        tfrow = next((r for r in rows if r["provider"] in C.TF_PROVIDERS), None)
        if tfrow:
            vers.append(f"TensorFlow {tfrow.get('tensorflow')} (Keras {tfrow.get('keras')})")
        else:
            vers.append("TensorFlow absent")
        tfarow = next((r for r in rows if r["provider"] in C.TFA_PROVIDERS), None)
        if tfarow:
            vers.append(
                f"TF Addons {tfarow.get('tfa')} (own interpreter: Python {tfarow.get('python')}, "
                f"TF {tfarow.get('tensorflow')}, NumPy {tfarow.get('numpy')})"
            )
        torchrow = next((r for r in rows if r["provider"] in C.TORCH_PROVIDERS), None)
        if torchrow:
            vers.append(f"PyTorch {torchrow.get('torch')} ({torchrow.get('cores') or '?'} threads)")
        jaxrow = next((r for r in rows if r["provider"] in C.JAX_PROVIDERS), None)
        if jaxrow:
            vers.append(f"JAX {jaxrow.get('jax')}")
        L.append("- **Versions:** " + ", ".join(vers))
        L.append(f"- **fastloss backends measured:** {', '.join(_backends(rows)) or 'none'}")
        if bw:
            L.append(f"- **NumPy copy bandwidth:** {bw / 1e9:.1f} GB/s (`np.copyto` of a 256 MiB float32 array, "
                     f"(bytes read + bytes written) / time, median of 7; counted as bytes copied per second it is "
                     f"{bw / 2e9:.1f} GB/s, and with that convention every floor time below doubles)")
        L.append("")
        if not tf:
            L.append("> **TensorFlow is absent** (no `tf_function`/`tf_eager` rows): fastloss is reported against the "
                     "NumPy memory-copy floor alone" + (" and the peers that did run." if len({r['provider'] for r in rows} - set(C.FASTLOSS_PROVIDERS)) else "."))
            L.append("")
        if not tfa:
            L.append("> TF Addons peers not run (set `FASTLOSS_TFA_PYTHON` to an interpreter with `tensorflow-addons`).")
            L.append("")
        absent = [name for name, provs in (("PyTorch", C.TORCH_PROVIDERS), ("JAX", C.JAX_PROVIDERS))
                  if not any(r["provider"] in provs for r in rows)]
        if absent:
            L.append(f"> {' and '.join(absent)} CPU peers not run (not installed, or left out; "
                     "`pip install -e \".[peers]\"` installs them).")
            L.append("")
        for n in notes:
            L.append(f"> {n}")
            L.append("")
        L.append("## Summary")
        L.append("")
        L.append("p50 seconds per call of loss + gradient w.r.t. `y_pred`, float32, NumPy in and NumPy out. "
                 "`x Peer` = peer p50 / fastloss p50 (fastloss allocating a new gradient each call, as the peers do). "
                 "`floor fraction` = copy-floor time / p50 (1.00 = as fast as NumPy copies the same bytes).")
        L.append("")
        L += summary_table(rows)
        L.append("")
        L.append("## Per case")
        L.append("")
        for key in _ordered_cases(rows):
            r0 = next(r for r in rows if _case_key(r) == key)
            L.append(f"### {_label(*key)}")
            L.append("")
            ft = floor_time(r0)
            L.append(f"{r0['n_elements']:,} elements; floor bytes {fmt_bytes(r0['floor_bytes'])}"
                     + (f"; copy floor {fmt_time(ft)}" if ft else ""))
            L.append("")
            L += detail_table(rows, key)
            L.append("")
    else:
        L += ["No CPU rows (GPU rows only).", ""]
        for n in notes:
            L += [f"> {n}", ""]
    if gpu_rows:
        L += gpu_section(gpu_rows)
    L.append("## Plots")
    L.append("")
    files = None
    if plots:
        files = (make_plots(rows, out_dir) if rows else []) or []
        if gpu_rows and files is not None:
            gfiles = make_plots(gpu_rows, out_dir, prefix="gpu_", where=f" -- GPU: {gpu_rows[0].get('machine') or '?'}",
                                floor_label="device copy floor")
            files = None if gfiles is None else files + gfiles
    if files:
        for f in files:
            L.append(f"![{f}]({f})")
            L.append("")
    elif plots:
        L.append("matplotlib is not installed: no plots (`pip install matplotlib`).")
        L.append("")
    else:
        L.append("Plots not requested.")
        L.append("")
    L += [
        "## Method",
        "",
        "- **Cases** (`benchmarks/cases.py`): SCCE from logits (int64 labels), BCE on probabilities "
        "(float32 0/1 targets, probabilities in [1e-3, 1-1e-3]), CCE from logits (one-hot float32), TF Addons "
        "SigmoidFocalCrossEntropy defaults (probabilities, alpha 0.25, gamma 2, reduction \"none\") on shape "
        "`(N, 1)`: N elements, one loss per element; TF Addons GIoULoss defaults (mode \"giou\", mean over boxes) "
        "on `(N, 4)` float32 boxes (`Nx4`). Keras default reduction (mean) elsewhere. "
        "TF Addons TripletSemiHardLoss / TripletHardLoss defaults (margin 1, L2) on `N x D` embeddings "
        "(~unit norm, entries on a 2**-11 grid so float32 distances are exact; ~16 per class, int32 labels); "
        "the copy floor there is the bytes alone (the O(N^2 D) Gram product is not in it).",
        "- **Providers:** `fastloss` = `obj.value_and_grad(y_true, y_pred)` under `fastloss.use_backend(b)` for each "
        "available backend; `fastloss grad_out=` reuses one gradient buffer. `TF tf.function` = "
        "`tf.function` of GradientTape + the Keras 3 loss class (for SigmoidFocal: TF Addons' function body "
        "ported to TF ops, since TFA does not run on this TF; likewise for GIoU; for the triplets TFA's algorithm, "
        "N^2 x N tiling included, in TF ops); the NumPy -> tensor conversion and `.numpy()` "
        "of loss and gradient are inside the timed call. `TF eager` = the same without `tf.function`. "
        "`TFA *` = real `tfa.losses.SigmoidFocalCrossEntropy` / `GIoULoss` / `TripletSemiHardLoss` / "
        "`TripletHardLoss` in a separate interpreter (`benchmarks/tfa_runner.py --kernel ...`). "
        "`NumPy` = a vectorized float32 SCCE. TF thread pools are left at their defaults. "
        "`PyTorch eager` (when installed) = `torch.from_numpy` of the inputs, the loss written to the Keras / TFA "
        "semantics (`F.cross_entropy` for SCCE/CCE logits, `F.binary_cross_entropy` of probabilities clamped to "
        "[1e-7, 1 - 1e-7], TFA's focal and GIoU formulas in torch ops), `torch.autograd.grad`, `.numpy()` of loss and gradient, "
        "`torch.set_num_threads(<logical cores>)`. `JAX jit` (when installed) = `jax.jit(jax.value_and_grad(loss))` "
        "called on the NumPy arrays, results turned into NumPy arrays in the timed call; XLA's default CPU threads.",
        "- **Timing:** the first call of each provider is timed alone (`warm-up`: Numba compile or on-disk "
        "cache load, TF tracing; excluded from p20/p50/p80), then one more untimed call; each repeat runs "
        "enough calls to last >= the minimum repeat time, and repeats go round-robin over the providers of a "
        "case so machine drift hits all alike. p20/p50/p80 are over the repeats.",
        "- **Peak memory:** extra resident memory of ONE call: `VmHWM - VmRSS` after `gc.collect()`, "
        "`malloc_trim(0)` and a reset of the high-water mark (`/proc/self/clear_refs`). Process-wide, so "
        "TensorFlow's C++ allocations count; the returned arrays (the gradient) count; the inputs do not. "
        "Memory an allocator keeps from earlier calls and reuses is not seen (so it is a lower bound for TF). "
        "`mem_method` says `tracemalloc` where this is unavailable (then TF is invisible).",
        "- **Copy floor:** copy bandwidth `B` = (bytes read + bytes written) / time of `np.copyto` of 256 MiB "
        "float32 (single-threaded NumPy), measured in the same run. Floor time = (input bytes + gradient "
        "bytes) / `B`: `y_true` and `y_pred` read once, the gradient written once. A multi-threaded kernel "
        "can beat a single-threaded copy, so a fraction above 1 is possible.",
        "- **Error:** `max rel err` = max over loss and gradient of max|got - ref| / max|ref| against a float64 "
        "NumPy reference of the Keras / TFA semantics, from one call after timing.",
        "- **GPU rows** are not measured by this script: they are recorded on a GPU machine by "
        "`python -m benchmarks.gpu_check --out benchmarks/results` (`gpu_results.csv`, the same columns, "
        "`device` = `cuda`) and read back here. There the inputs are device tensors (PyTorch CUDA tensors; "
        "fastloss reads them through `__cuda_array_interface__`), times are medians of synchronized calls, "
        "and the floor is (input bytes + gradient bytes) / device-to-device copy bandwidth.",
        "",
    ]
    text = "\n".join(L)
    (out_dir / "REPORT.md").write_text(text)
    return text


# -------------------------------------------------------------------- runs


def _git_suffix(pkg_dir):
    """``+g<commit>[.dirty]`` when fastloss runs from a git checkout (the kernels change often)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=pkg_dir, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=pkg_dir, capture_output=True,
                               text=True, timeout=10)
        return f"+g{head.stdout.strip()}" + (".dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def _meta(tf_version, keras_version, torch_version="", jax_version=""):
    import numpy as np

    try:
        import fastloss

        flv = getattr(fastloss, "__version__", "") + _git_suffix(Path(fastloss.__file__).resolve().parent)
    except ImportError:
        flv = ""
    return {
        "device": "cpu",
        "machine": _timing.machine_string(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _version("numba"),
        "tensorflow": tf_version,
        "keras": keras_version,
        "fastloss": flv,
        "tfa": "",
        "torch": torch_version,
        "jax": jax_version,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def _numba_layer():
    """``"omp, 2 threads"``: Numba's threading layer (known once a parallel kernel ran)."""
    try:
        import numba

        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = "not initialised"
        return f"{layer}, {numba.get_num_threads()} threads"
    except ImportError:
        return ""


def run_tfa(tfa_python, sizes, repeats, min_time, timeout=900, kernel="sigmoid_focal"):
    """Rows from ``tfa_runner.py --kernel kernel`` under ``tfa_python``; raises RuntimeError on failure."""
    cmd = [tfa_python, str(HERE / "tfa_runner.py"), "--kernel", kernel, "--sizes", ",".join(sizes),
           "--repeats", str(repeats), "--min-time", str(min_time)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-800:]}")
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("[")]
    if not lines:
        raise RuntimeError(f"no JSON from {cmd[1]}: {p.stdout[-400:]} {p.stderr[-400:]}")
    return json.loads(lines[-1])


def run_benchmarks(cases, repeats=7, min_time=0.05, use_tf=True, tfa_python=None, progress=True, notes=None,
                   use_torch=True, use_jax=True, only=None):
    """Run ``cases``; returns the long-format rows. PyTorch and JAX peers run when installed.
    ``only``: keep just these providers (the peer subprocess uses it)."""
    notes = notes if notes is not None else []
    tf = keras = torch = jax = None
    if use_tf:
        tf, keras = C.import_tf()
    if use_torch:
        torch = C.import_torch()
    if use_jax:
        jax = C.import_jax()
    tf_version = getattr(tf, "__version__", "") if tf else ""
    keras_version = getattr(keras, "__version__", "") if keras else ""
    meta = _meta(tf_version, keras_version, getattr(torch, "__version__", "") if torch else "",
                 getattr(jax, "__version__", "") if jax else "")
    if not C.fastloss_backends():
        notes.append("fastloss has no available backend here: no fastloss rows.")
    tfa_sizes = {k: [c.size for c in cases if c.kernel == k] for k in C.TFA_KERNELS}
    tfa_sizes = {k: v for k, v in tfa_sizes.items() if v}
    do_tfa = bool(tfa_python and tfa_sizes)
    bar = Progress(1 + 3 * len(cases) + (1 if do_tfa else 0), stream=sys.stderr if progress else open(os.devnull, "w"))
    bar.show("copy bandwidth")
    bw = _timing.copy_bandwidth()
    bar.step(f"copy bandwidth {bw / 1e9:.1f} GB/s")
    rows = []
    warnings.filterwarnings("ignore", message=".*is not in scope", module="numba")  # NumbaIRAssumptionWarning
    for case in cases:
        bar.show(f"{case.label}: data + float64 reference")
        y_true, y_pred = C.make_data(case)
        ref = C.reference(case, y_true, y_pred)
        fb = C.floor_bytes(case, y_true, y_pred)
        provs = C.provider_list(case, tf_available=tf is not None, torch_available=torch is not None,
                                jax_available=jax is not None)
        if only is not None:
            provs = [pb for pb in provs if pb[0] in only]
        if not provs:
            bar.step(f"{case.label}: no provider")
            bar.step(f"{case.label}: -")
            bar.step(f"{case.label}: done")
            continue
        fns = {pb: C.make_provider(case, pb[0], pb[1], y_true, y_pred) for pb in provs}
        bar.step(f"{case.label}: timing {len(fns)} providers")
        stats = _timing.time_interleaved(fns, repeats=repeats, min_time=min_time)
        bar.step(f"{case.label}: peak memory + check")
        for pb, fn in fns.items():
            err = C.max_rel_err(ref, fn())
            peak, method = _timing.peak_memory(fn)
            rows.append({
                "kernel": case.kernel, "provider": pb[0], "backend": pb[1], "size": case.size,
                "n_elements": case.n_elements, "dtype": "float32", **stats[pb],
                "peak_mem_bytes": peak, "mem_method": method, "floor_bytes": fb, "copy_bw_Bps": bw,
                "max_rel_err": err, **meta,
            })
        del fns, y_true, y_pred, ref
        _timing.trim()
        bar.step(f"{case.label}: done")
    layer = _numba_layer()
    for r in rows:
        r["numba_layer"] = layer
    if do_tfa:
        bar.show(f"TF Addons via {tfa_python}")
        for kernel, sizes in tfa_sizes.items():
            try:
                for r in run_tfa(tfa_python, sizes, repeats, min_time, kernel=kernel):
                    row = {**meta, **r, "copy_bw_Bps": bw, "keras": ""}
                    row["machine"], row["cores"], row["date"] = meta["machine"], meta["cores"], meta["date"]
                    row["fastloss"], row["numba"], row["numba_layer"] = meta["fastloss"], "", ""
                    rows.append(row)
            except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
                notes.append(f"TF Addons runner ({kernel}) failed: {e}")
        bar.step("TF Addons done")
    elif tfa_python and not tfa_sizes:
        notes.append("FASTLOSS_TFA_PYTHON is set but no SigmoidFocal or GIoU case was selected.")
    bar.close()
    if tf is None and use_tf:
        notes.append("TensorFlow could not be imported in this interpreter.")
    return rows


PEER_PROVIDERS = ("torch_eager", "jax_jit")


def run_peers_subprocess(args, notes, bw):
    """PyTorch / JAX rows from a child process: loaded beside fastloss, their
    thread pools and allocators slowed fastloss' own calls (BCE 65536x256
    9.0 -> 16.5 ms), so they are timed in an interpreter of their own."""
    import importlib.util
    import tempfile

    want = []
    if not args.no_torch and importlib.util.find_spec("torch"):
        want.append("torch")
    if not args.no_jax and importlib.util.find_spec("jax"):
        want.append("jax")
    if not want:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peers.json"
        cmd = [sys.executable, "-m", "benchmarks.report", "--peers-json", str(out), "--no-tf", "--no-gpu", "--no-plots",
               "--cases", args.cases or "", "--out", tmp]
        if args.full:
            cmd.append("--full")
        if args.repeats:
            cmd += ["--repeats", str(args.repeats)]
        if args.min_time:
            cmd += ["--min-time", str(args.min_time)]
        cmd += [] if "torch" in want else ["--no-torch"]
        cmd += [] if "jax" in want else ["--no-jax"]
        try:
            subprocess.run(cmd, cwd=str(HERE.parent), check=True, timeout=3600, stdout=subprocess.DEVNULL)
            rows = json.loads(out.read_text())
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, ValueError) as e:
            notes.append(f"PyTorch/JAX peer process failed: {e}")
            return []
    for r in rows:
        r["copy_bw_Bps"] = bw
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the quick set of sizes (default)")
    mode.add_argument("--full", action="store_true", help="every size in benchmarks/cases.py")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="output directory (default benchmarks/results)")
    ap.add_argument("--cases", default="", help="comma-separated substrings of case ids, e.g. scce,bce_probs-65536")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per provider (default 7 quick, 11 full)")
    ap.add_argument("--min-time", type=float, default=None, help="minimum seconds per repeat (default 0.05 quick, 0.1 full)")
    ap.add_argument("--from-csv", metavar="FILE", help="only regenerate REPORT.md and plots from recorded rows")
    ap.add_argument("--no-tf", action="store_true", help="do not import TensorFlow (fastloss vs the copy floor)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even when it is installed")
    ap.add_argument("--no-jax", action="store_true", help="leave JAX out even when it is installed")
    ap.add_argument("--gpu-csv", metavar="FILE", default=None,
                    help="GPU rows recorded by benchmarks.gpu_check (default benchmarks/results/gpu_results.csv "
                         "when it exists)")
    ap.add_argument("--no-gpu", action="store_true", help="leave the recorded GPU rows out of the report")
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--list", action="store_true", help="list the selected cases and exit")
    ap.add_argument("--peers-json", metavar="FILE", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    notes = []
    if args.from_csv:
        rows = read_csv(args.from_csv)
    else:
        filters = [f.strip() for f in args.cases.split(",") if f.strip()]
        cases = C.select_cases(full=args.full, filters=filters)
        if args.list:
            for c in cases:
                print(c.id)
            return 0
        if not cases:
            ap.error(f"no case matches --cases {args.cases!r}; ids: {', '.join(c.id for c in C.CASES)}")
        repeats = args.repeats or (11 if args.full else 7)
        min_time = args.min_time or (0.1 if args.full else 0.05)
        if args.peers_json:  # the child of run_peers_subprocess
            rows = run_benchmarks(cases, repeats=repeats, min_time=min_time, use_tf=False, progress=False,
                                  notes=notes, use_torch=not args.no_torch, use_jax=not args.no_jax,
                                  only=PEER_PROVIDERS)
            Path(args.peers_json).write_text(json.dumps(rows, default=str))
            return 0
        tfa_python = os.environ.get("FASTLOSS_TFA_PYTHON") or None
        rows = run_benchmarks(cases, repeats=repeats, min_time=min_time, use_tf=not args.no_tf,
                              tfa_python=tfa_python, notes=notes, use_torch=False, use_jax=False)
        bw = next((r["copy_bw_Bps"] for r in rows if r.get("copy_bw_Bps")), None)
        peer_rows = run_peers_subprocess(args, notes, bw)
        rows += peer_rows
        if peer_rows:
            notes.append("PyTorch / JAX peers timed in a child process (in the same process they slow fastloss' calls).")
        notes.insert(0, f"Mode: {'full' if args.full else 'quick'}; {repeats} repeats of >= {min_time} s per provider.")
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "results.csv")
        write_json(rows, out / "results.json")
    if args.no_gpu:
        rows = [r for r in rows if not is_gpu(r)]
    else:
        gpu_csv = Path(args.gpu_csv) if args.gpu_csv else (DEFAULT_GPU_CSV if DEFAULT_GPU_CSV.exists() else None)
        same = bool(gpu_csv and args.from_csv and gpu_csv.resolve() == Path(args.from_csv).resolve())
        if gpu_csv and not same and (args.gpu_csv or not any(is_gpu(r) for r in rows)):
            rows = rows + [r for r in read_csv(gpu_csv) if is_gpu(r)]
    render_markdown(rows, out, plots=not args.no_plots, notes=notes)
    cpu_rows, gpu_rows = split_devices(rows)
    if cpu_rows:
        print("\n".join(summary_table(cpu_rows)))
    if gpu_rows:
        print(f"\nGPU ({gpu_rows[0].get('machine') or '?'}, recorded):")
        print("\n".join(summary_table(gpu_rows)))
    if not has_tf(cpu_rows):
        print("\nTensorFlow is absent: fastloss is reported against the NumPy copy floor alone.")
    for n in notes:
        print(n, file=sys.stderr)
    print(f"\nwrote {out / 'REPORT.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
