"""Parity and speed of fastloss' CUDA kernels on a real GPU, against PyTorch
(and JAX when installed), loss + gradient, float32.

Run on a machine with a GPU: ``python -m benchmarks.gpu_check [--out DIR] [--profile]``.
Prints Markdown tables and writes them (``GPU_REPORT.md``) and long-format CSV
rows (``gpu_results.csv``: exactly ``benchmarks.report.COLUMNS``, ``device`` =
``cuda``) to ``--out`` when given; ``python -m benchmarks.report`` puts the rows
of ``benchmarks/results/gpu_results.csv`` in the GPU section of its report.

Cases: SCCE from logits (``--cases``; also timed with the previous two-pass
kernels, ``scce_logits_twopass``, and with one kernel setting switched (``VARIANTS``):
beyond 4096 classes the block-per-row kernel's loop as it was (``scce_logits_unroll1``),
with eight loads in flight (``_unroll8``), 1024 threads per block (``_rows1024``, and both,
``_unroll8_rows1024``), rows in flight up to all of L2 (``_l2_full``), the row kept in shared
memory between its two passes instead of L2 (``_smem_rows``, ``_smem_rows_unroll8``); up to 4096 classes the register kernel's loads
guarded one by one as they were (``_guarded_loads``); below 32 classes the
thread-per-row kernel instead of the staged one (``_thread_rows``)); CCE from logits with
one-hot targets (``--dense``; also with the kernels as they were, ``DENSE_VARIANTS``); SCCE
grad_hess, the boosting objective (``--grad-hess``; also with the block kernels the defaults replaced), elementwise Huber / BCE (``--elementwise``),
GIoU (``--boxes``; vs torchvision's loss where installed, else the same formula
in PyTorch), batch-hard triplet (``--triplet``; vs ``torch_batch_hard``, cdist
based; also timed on the Gram-matrix path, ``triplet_hard_gram``). The small
sizes show the per-call overhead; ``--profile`` adds a cProfile of small calls
(where the host time goes).

* parity: fastloss on device inputs vs a float64 reference computed on the
  device by PyTorch (max relative error of the loss, max abs error of the
  gradient relative to its max); every triplet loss and metric vs the CPU
  backend in float64 (``--triplet-parity``); calls on a PyTorch side stream and
  under ``fastloss.cuda_stream`` vs the default stream; the gradient's type for
  PyTorch inputs. A section that fails is reported in the checks table;
* speed: median of synchronized calls after warm-up (fastloss' call includes
  its one synchronization: it returns the reduced loss to the host);
* floor: (bytes read + bytes written) / device copy bandwidth, the copy
  bandwidth measured here as (bytes read + bytes written) / time of a
  device-to-device copy of 1 GiB (``floor_bytes`` and ``copy_bw_Bps`` columns,
  as in the CPU report).
"""

import argparse
import datetime
import os
import platform
import time

import numpy as np

from .report import COLUMNS, floor_fraction, write_csv

# provider names of the CPU report (same calls: PyTorch eager + autograd.grad, JAX jit(value_and_grad))
PROVIDERS = {"fastloss": "fastloss", "fastloss grad_out=": "fastloss_grad_out", "PyTorch": "torch_eager",
             "JAX jit": "jax_jit"}


def _G():
    from fastloss.backends.numba_cuda import crossentropy as G  # needs numba-cuda: imported where used

    return G


def _long(C):
    return C > _G().WARP_ROW_MAX  # the block-per-row kernel (beyond the register kernels)


# SCCE timed again with ``crossentropy`` settings switched, beside the default
# (the "fastloss grad_out=" row of the same size), where the settings' kernel
# runs: kernel name -> ({setting: value}, applies(C), label). The old kernels
# beside each change of 2026-12-05, and the long-row settings not yet chosen
# between (loads in flight per thread, threads per block, rows in flight).
VARIANTS = {
    "scce_logits_unroll1": ({"UNROLL": 1}, _long, "SCCE logits (block-per-row kernel, one load in flight)"),
    "scce_logits_unroll8": ({"UNROLL": 8}, _long, "SCCE logits (block-per-row kernel, eight loads in flight)"),
    "scce_logits_rows1024": ({"ROWS_TPB": 1024}, _long, "SCCE logits (block-per-row kernel, 1024 threads per block)"),
    "scce_logits_unroll8_rows1024": ({"UNROLL": 8, "ROWS_TPB": 1024}, _long,
                                     "SCCE logits (block-per-row kernel, eight loads in flight, 1024 threads)"),
    "scce_logits_l2_full": ({"ROWS_L2_SHARE": 1.0}, _long,
                            "SCCE logits (block-per-row kernel, rows in flight up to all of L2)"),
    "scce_logits_smem_rows": ({"ROWS_SMEM": True}, _long,
                              "SCCE logits (block-per-row kernel, the row kept in shared memory between its passes)"),
    "scce_logits_smem_rows_unroll8": ({"ROWS_SMEM": True, "UNROLL": 8}, _long,
                                      "SCCE logits (the row kept in shared memory, eight loads in flight)"),
    "scce_logits_thread_rows": ({"STAGED": False}, lambda C: C < _G().SMALL_C,
                                "SCCE logits (short rows: each thread reads its own row, as before)"),
    "scce_logits_guarded_loads": ({"REG_LOADS_FIRST": False}, lambda C: _G().SMALL_C <= C <= _G().WARP_ROW_MAX,
                                  "SCCE logits (register kernel, loads guarded one by one)"),
}


# The same for CCE (``_cce_rows``): the kernels the changes of 2026-12-05 replaced.
DENSE_VARIANTS = {
    "cce_logits_block_rows": ({"STAGED": False}, lambda C: C < _G().SMALL_C,
                              "CCE logits (short rows: a 256-thread block per row, as before)"),
    "cce_logits_threepass": ({"CCE_FUSED": False, "UNROLL": 1}, _long,
                             "CCE logits (block-per-row kernel: three passes, one load in flight, as before)"),
}


def _with_settings(mod, settings, fn):
    """``fn()`` with ``mod``'s ``settings`` switched (restored after); None,
    with the failure printed, where it raises (a variant that fails to launch
    must not take the section's other rows with it)."""
    old = {k: getattr(mod, k) for k in settings}
    for k, v in settings.items():
        setattr(mod, k, v)
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - reported, the other rows go on
        print(f"variant {mod.__name__} {settings} failed: {type(exc).__name__}: {str(exc)[:300]}")
        return None
    finally:
        for k, v in old.items():
            setattr(mod, k, v)


def _rel_err(loss, grad, ref_loss, ref_grad):
    """max over loss and gradient of max|got - ref| / max|ref| (as ``cases.max_rel_err``)."""
    import torch

    g = torch.as_tensor(grad, device=ref_grad.device).double()
    loss = loss.detach() if hasattr(loss, "detach") else loss
    rel_loss = abs(float(loss) - ref_loss.item()) / abs(ref_loss.item())
    return max(rel_loss, ((g - ref_grad).abs().max() / ref_grad.abs().max()).item())


def _median_ms(fn, sync, n=20, warm=3):
    for _ in range(warm):
        fn()
    sync()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3, float(np.percentile(ts, 20)) * 1e3, float(np.percentile(ts, 80)) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--cases", default="8192x32000,65536x1000,1048576x10,4096x1000,256x10")
    ap.add_argument("--elementwise", default="huber:4194304x1,bce_probs:65536x256,huber:256x1",
                    help="comma-separated kernel:RxK cases of the elementwise kernels ('' for none)")
    ap.add_argument("--dense", default="1048576x10,65536x1000,8192x32000",
                    help="RxC cases of CCE from logits with one-hot targets ('' for none)")
    ap.add_argument("--grad-hess", default="1048576x10,65536x100",
                    help="RxC cases of SCCE grad_hess from logits, a boosting objective ('' for none)")
    ap.add_argument("--boxes", default="4194304,256", help="GIoU box counts ('' for none)")
    ap.add_argument("--triplet", default="16384x128,4096x128,256x128",
                    help="batch-hard triplet NxD cases ('' for none)")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the host side of small calls (cProfile; GPU_PROFILE.txt under --out)")
    ap.add_argument("--kernels", action="store_true",
                    help="also break each timed case's device time down by kernel and copy (torch.profiler/CUPTI; "
                         "GPU_KERNELS.md under --out)")
    ap.add_argument("--triplet-parity", default="1024x64",
                    help="NxD: every triplet loss and metric on the GPU vs the CPU backend in float64 ('' for none)")
    args = ap.parse_args(argv)

    import torch

    import fastloss

    dev = torch.device("cuda")
    sync = torch.cuda.synchronize
    name = torch.cuda.get_device_name(0)

    big = torch.empty(1 << 28, dtype=torch.float32, device=dev)
    dst = torch.empty_like(big)
    t_copy, _, _ = _median_ms(lambda: dst.copy_(big), sync, n=10)
    bw = 2 * big.numel() * 4 / (t_copy / 1e3)
    del big, dst

    try:
        import jax
        import jax.numpy as jnp

        def _jce(x, y):
            lse = jax.nn.logsumexp(x, axis=-1)
            return jnp.mean(lse - jnp.take_along_axis(x, y[:, None], axis=-1)[:, 0])

        jvg = jax.jit(jax.value_and_grad(_jce))
        have_jax = any(d.platform == "gpu" for d in jax.devices())
    except Exception:
        have_jax = False
    try:
        import numba_cuda

        numba_cuda_version = getattr(numba_cuda, "__version__", "")
    except ImportError:
        numba_cuda_version = ""
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = ""

    meta = dict(machine=name, cores=os.cpu_count(), python=platform.python_version(), numpy=np.__version__,
                numba=numba_version, numba_cuda=numba_cuda_version, fastloss=getattr(fastloss, "__version__", ""),
                torch=torch.__version__)
    checks = []

    def safe(fn, *a):
        """One section's rows; a failure is reported in the checks table, not fatal."""
        try:
            return fn(*a)
        except Exception as exc:  # noqa: BLE001 - the report says what failed
            checks.append((fn.__name__, f"FAILED: {type(exc).__name__}: {str(exc)[:300]}", ""))
            return []

    def _scce_rows():
        return _scce_section(args.cases, dev, sync, bw, name, numba_version, numba_cuda_version, have_jax,
                             jvg if have_jax else None)

    rows = safe(_scce_rows)
    rows += safe(_elementwise_rows, args.elementwise, dev, sync, bw, name, numba_version, numba_cuda_version)
    rows += safe(_cce_rows, args.dense, dev, sync, bw, meta)
    rows += safe(_grad_hess_rows, args.grad_hess, dev, sync, bw, meta)
    rows += safe(_box_rows, args.boxes, dev, sync, bw, meta)
    rows += safe(_triplet_rows, args.triplet, dev, sync, bw, meta)
    checks += safe(_stream_checks, dev)
    checks += safe(_triplet_parity, args.triplet_parity, dev)
    checks += safe(_grad_hess_parity, dev)
    _write(args, rows, checks, name, bw, dev)


def _scce_section(cases, dev, sync, bw, name, numba_version, numba_cuda_version, have_jax, jvg):
    """SCCE from logits vs PyTorch (and JAX), plus the two-pass kernels (REGS off)."""
    import torch
    import torch.nn.functional as F

    import fastloss
    from fastloss import losses as L

    if have_jax:
        import jax
        import jax.numpy as jnp
    scce = L.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for size in cases.split(","):
        R, C = (int(v) for v in size.split("x"))
        g = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(R, C, device=dev, generator=g) * 3
        y = torch.randint(0, C, (R,), device=dev, generator=g)
        gout = torch.empty_like(x)

        # parity vs a float64 reference on the device
        loss, grad = scce.value_and_grad(y, x)
        gt = torch.as_tensor(grad, device=dev)
        x64 = x.double().requires_grad_(True)
        ref = F.cross_entropy(x64, y)
        (rg,) = torch.autograd.grad(ref, x64)
        errs = {"fastloss": _rel_err(loss, gt, ref, rg)}
        errs["fastloss grad_out="] = errs["fastloss"]

        def fl():
            scce.value_and_grad(y, x, grad_out=gout)

        def fl_new():
            scce.value_and_grad(y, x)

        def tc():
            xx = x.detach().requires_grad_(True)
            lo = F.cross_entropy(xx, y)
            (gg,) = torch.autograd.grad(lo, xx)
            return lo, gg

        floor_bytes = y.element_size() * R + 2 * R * C * 4
        errs["PyTorch"] = _rel_err(*tc(), ref, rg)
        res = {"fastloss grad_out=": _median_ms(fl, sync), "fastloss": _median_ms(fl_new, sync), "PyTorch": _median_ms(tc, sync)}
        if have_jax:
            xj = jnp.asarray(x.cpu().numpy())
            yj = jnp.asarray(y.cpu().numpy())
            res["JAX jit"] = _median_ms(lambda: jax.block_until_ready(jvg(xj, yj)), lambda: None)
            jl, jg = jvg(xj, yj)
            errs["JAX jit"] = _rel_err(float(jl), torch.as_tensor(np.asarray(jg), device=dev), ref, rg)
        # the previous kernels (two reads of each row, float64 statistics): REGS off
        G = _G()

        def timed():
            lo, gr = scce.value_and_grad(y, x)
            return {"p": _median_ms(fl, sync), "err": _rel_err(lo, torch.as_tensor(gr, device=dev), ref, rg)}

        def variant(settings):
            """The p50/p20/p80 and error of SCCE with ``G``'s ``settings`` switched; None where it failed."""
            return _with_settings(G, settings, timed)

        two_pass = variant({"REGS": False})
        # each kernel change of 2026-12-05 beside its old version (and, beyond
        # 4096 classes, the settings still to choose between), where that kernel runs
        others = {kernel: variant(settings) for kernel, (settings, applies, _) in VARIANTS.items() if applies(C)}
        n_timed = 20  # _median_ms' default n
        for prov, (p50, p20, p80) in res.items():
            row = dict.fromkeys(COLUMNS, "")
            row.update(
                kernel="scce_logits",
                provider=PROVIDERS[prov],
                backend="cuda" if prov.startswith("fastloss") else "",
                device="cuda",
                size=size,
                n_elements=R * C,
                dtype="float32",
                p20_s=p20 / 1e3,
                p50_s=p50 / 1e3,
                p80_s=p80 / 1e3,
                repeats=n_timed,
                number=1,
                floor_bytes=floor_bytes,
                copy_bw_Bps=bw,
                max_rel_err=errs.get(prov, ""),
                machine=name,
                cores=os.cpu_count(),
                python=platform.python_version(),
                numpy=np.__version__,
                numba=numba_version,
                numba_cuda=numba_cuda_version,
                fastloss=getattr(fastloss, "__version__", ""),
                torch=torch.__version__,
                jax=jax.__version__ if have_jax else "",
                date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            )
            rows.append(row)
        meta0 = {c: rows[-1][c] for c in ("machine", "cores", "python", "numpy", "numba", "numba_cuda", "fastloss",
                                          "torch")}
        for kernel, t in {"scce_logits_twopass": two_pass, **others}.items():
            if t is not None:
                rows.append(_row(kernel, "fastloss grad_out=", size, R * C, t["p"], floor_bytes, bw, t["err"], meta0))
    return rows


def _write(args, rows, checks, name, bw, dev):
    """Print the tables; write them, the CSV rows and the profiles under ``--out``."""
    head = f"GPU: {name}; device copy {bw / 1e12:.2f} TB/s ((read + written) / time); python {platform.python_version()}"
    lines = [head, "", "| case | provider | p50 | floor fraction | max rel err |", "|---|---|---|---|---|"]
    for r in rows:
        err = "" if r["max_rel_err"] == "" else format(r["max_rel_err"], ".1e")
        label = {"scce_logits": "SCCE logits", "huber": "Huber", "bce_probs": "BCE probs", "giou": "GIoU",
                 "triplet_hard": "TripletHard", "triplet_hard_gram": "TripletHard (Gram-matrix path)",
                 "scce_logits_twopass": "SCCE logits (two-pass kernels)",
                 "cce_logits": "CCE logits (one-hot targets)",
                 "scce_gh": "SCCE grad_hess (gradient and Hessian, boosting)",
                 "scce_gh_block_rows": "SCCE grad_hess (short rows: a block of 32 threads per row, as before)",
                 "scce_gh_two_pass": "SCCE grad_hess (a block per row, two reads of it, as before)",
                 **{k: v[2] for k, v in {**VARIANTS, **DENSE_VARIANTS}.items()}}.get(r["kernel"], r["kernel"])
        lines.append(f"| {label} {r['size']} | {r['provider']} | {r['p50_s'] * 1e3:.3f} ms | "
                     f"{floor_fraction(r):.2f} | {err} |")
    lines += ["", "| check | result (max rel err vs reference, or what was found) | note |", "|---|---|---|"]
    lines += [f"| {c} | {e:.1e} | {note} |" if isinstance(e, float) else f"| {c} | {e} | {note} |"
              for c, e, note in checks]
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_csv(rows, os.path.join(args.out, "gpu_results.csv"))
        with open(os.path.join(args.out, "GPU_REPORT.md"), "w") as f:
            f.write("# fastloss on a GPU\n\n" + text + "\n")
    for flag, fn, fname in ((args.kernels, _kernel_breakdown, "GPU_KERNELS.md"),
                            (args.profile, _host_profile, "GPU_PROFILE.txt")):
        if not flag:
            continue
        try:
            out = fn(dev)
        except Exception as exc:  # noqa: BLE001 - the tables above are already written
            out = f"{fn.__name__} FAILED: {type(exc).__name__}: {exc}"
        print(out)
        if args.out:
            with open(os.path.join(args.out, fname), "w") as f:
                f.write(out)


def _elementwise_rows(spec, dev, sync, bw, name, numba_version, numba_cuda_version):
    """Huber / BCE (probabilities) on device inputs vs PyTorch (F.huber_loss,
    F.binary_cross_entropy + autograd.grad), parity vs a float64 PyTorch
    reference; same columns as the SCCE rows."""
    import torch
    import torch.nn.functional as F

    import fastloss
    from fastloss import losses as L

    objs = {"huber": (L.Huber(), lambda p, t: F.huber_loss(p, t)),
            "bce_probs": (L.BinaryCrossentropy(), lambda p, t: F.binary_cross_entropy(p, t))}
    rows = []
    for item in [c for c in spec.split(",") if c]:
        kernel, size = item.split(":")
        R, K = (int(v) for v in size.split("x"))
        obj, tfn = objs[kernel]
        g = torch.Generator(device=dev).manual_seed(0)
        if kernel == "huber":
            t = torch.randn(R, K, device=dev, generator=g)
            x = torch.randn(R, K, device=dev, generator=g) * 2
        else:
            t = torch.randint(0, 2, (R, K), device=dev, generator=g).float()
            x = torch.rand(R, K, device=dev, generator=g) * 0.98 + 0.01
        res, errs, _ = _vs_peer(obj, t, x, lambda xx: tfn(xx, t.double()), lambda xx: tfn(xx, t), sync)
        for prov, (p50, p20, p80) in res.items():
            row = dict.fromkeys(COLUMNS, "")
            row.update(kernel=kernel, provider=PROVIDERS[prov], backend="cuda" if prov.startswith("fastloss") else "",
                       device="cuda", size=size, n_elements=R * K, dtype="float32", p20_s=p20 / 1e3,
                       p50_s=p50 / 1e3, p80_s=p80 / 1e3, repeats=20, number=1, floor_bytes=3 * R * K * 4,
                       copy_bw_Bps=bw, max_rel_err=errs[prov], machine=name, cores=os.cpu_count(),
                       python=platform.python_version(), numpy=np.__version__, numba=numba_version,
                       numba_cuda=numba_cuda_version, fastloss=getattr(fastloss, "__version__", ""),
                       torch=torch.__version__,
                       date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
            rows.append(row)
    return rows


def _vs_peer(obj, yt, yp, ref_fn, peer_fn, sync):
    """fastloss (``grad_out=`` and allocating) and a PyTorch peer, timed on the
    same inputs; the errors of both against ``ref_fn`` evaluated in float64
    with autograd. ``ref_fn``/``peer_fn`` map y_pred (float64 / as given) to the
    loss. Returns ``(timings, errors, (ref, ref_grad))``."""
    import torch

    # a device buffer on the GPU; on the CPU (tests/test_gpu_check.py) fastloss takes NumPy ones
    gout = torch.empty_like(yp) if yp.is_cuda else np.empty(tuple(yp.shape), str(yp.dtype).removeprefix("torch."))
    loss, grad = obj.value_and_grad(yt, yp)
    x64 = yp.detach().double().requires_grad_(True)
    ref = ref_fn(x64)
    (rg,) = torch.autograd.grad(ref, x64)
    err = _rel_err(loss, torch.as_tensor(grad, device=yp.device), ref, rg)

    def tc():
        xx = yp.detach().requires_grad_(True)
        lo = peer_fn(xx)
        (gg,) = torch.autograd.grad(lo, xx)
        return lo, gg

    res = {"fastloss grad_out=": _median_ms(lambda: obj.value_and_grad(yt, yp, grad_out=gout), sync),
           "fastloss": _median_ms(lambda: obj.value_and_grad(yt, yp), sync), "PyTorch": _median_ms(tc, sync)}
    errs = {"fastloss": err, "fastloss grad_out=": err, "PyTorch": _rel_err(*tc(), ref, rg)}
    return res, errs, (ref, rg)


def _wall_us(obj, yt, yp, gout, calls, warm):
    """Microseconds per ``value_and_grad(grad_out=gout)`` call, back to back
    after ``warm`` calls, synchronized at the end (no profiler running)."""
    import torch

    for _ in range(warm):
        obj.value_and_grad(yt, yp, grad_out=gout)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        obj.value_and_grad(yt, yp, grad_out=gout)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def _host_profile(dev, calls=300):
    """Where a small call's host time goes: cProfile over ``calls`` calls each of
    SCCE 256x10, Huber 256x1, GIoU 256 boxes and TripletHard 256x128 on device
    inputs (grad_out given), top functions by own time, and the time per call
    without the profiler."""
    import cProfile
    import io
    import pstats

    import torch

    from fastloss import losses as L

    g = torch.Generator(device=dev).manual_seed(2)
    x = torch.randn(256, 10, device=dev, generator=g)
    y = torch.randint(0, 10, (256,), device=dev, generator=g)
    h = torch.randn(256, 1, device=dev, generator=g)
    t, p = _boxes(256, dev)
    e = torch.randn(256, 128, device=dev, generator=g)
    lab = torch.randint(0, 16, (256,), device=dev, generator=g)
    cases = [
        ("SCCE 256x10", L.SparseCategoricalCrossentropy(from_logits=True), y, x),
        ("Huber 256x1", L.Huber(), h, h * 0.5),
        ("GIoU 256", L.GIoULoss(box_format="xyxy"), t, p),
        ("TripletHard 256x128", L.TripletHardLoss(), lab, e),
    ]
    out = io.StringIO()
    for name, obj, yt, yp in cases:
        gout = torch.empty_like(yp)
        per = _wall_us(obj, yt, yp, gout, calls, warm=5)
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(calls):
            obj.value_and_grad(yt, yp, grad_out=gout)
        torch.cuda.synchronize()
        pr.disable()
        out.write(f"\n=== {name}: {per:.1f} us per call (no profiler) ===\n")
        st = pstats.Stats(pr, stream=out)
        st.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def _short_kernel_name(name):
    """``module.function`` out of an Itanium-mangled Numba kernel name
    (``_ZN8fastloss...12crossentropy10_make_regs12_3clocals_3e10kern_24241E5Array...``
    -> ``_make_regs.kern``); other names as they are."""
    if not name.startswith("_ZN"):
        return name
    parts, i = [], 3
    while i < len(name) and name[i].isdigit():
        j = i
        while j < len(name) and name[j].isdigit():
            j += 1
        n = int(name[i:j])
        parts.append(name[j:j + n])
        i = j + n
    parts = [p.split("_24")[0] for p in parts if p != "_3clocals_3e"]  # "$N" suffixes, "<locals>"
    return ".".join(parts[-2:]) if parts else name


def kernel_table(events, calls):
    """Markdown rows ``| name | launches per call | device us per call |`` from
    ``(name, count, device_us_total)`` triples (``torch.profiler``'s averages of
    ``calls`` calls), slowest first, and the device time per call summed. Numba
    kernels carry their Python name inside the mangled one (``_ZN...scce_rows...``):
    it is cut out so that the table reads."""
    rows, total = [], 0.0
    for name, count, dev_us in events:
        if dev_us <= 0:
            continue
        rows.append((dev_us / calls, count / calls, _short_kernel_name(name)[:70]))
        total += dev_us / calls
    rows.sort(reverse=True)
    lines = [f"| {n} | {c:g} | {t:.1f} |" for t, c, n in rows]
    return lines, total


def _kernel_breakdown(dev, calls=10):
    """Each case's device time per call by kernel and copy (torch.profiler's CUDA
    activities: CUPTI records Numba's launches as well as PyTorch's), beside the
    wall time per call without the profiler. Wall minus device is the host's
    share: launches, argument marshalling, the one synchronization."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fastloss import losses as L

    g = torch.Generator(device=dev).manual_seed(5)

    def ce(R, C):
        return torch.randint(0, C, (R,), device=dev, generator=g), torch.randn(R, C, device=dev, generator=g)

    def trip(N, D):
        return torch.randint(0, max(2, N // 16), (N,), device=dev, generator=g), torch.randn(N, D, device=dev, generator=g)

    def onehot(y, x):
        return torch.nn.functional.one_hot(y, x.shape[1]).to(x.dtype), x

    scce = L.SparseCategoricalCrossentropy(from_logits=True)
    cases = [
        ("SCCE logits 8192x32000", scce, ce(8192, 32000)),
        ("SCCE logits 65536x1000", scce, ce(65536, 1000)),
        ("SCCE logits 1048576x10", scce, ce(1048576, 10)),
        ("SCCE logits 256x10", scce, ce(256, 10)),
        ("CCE logits 8192x32000 (one-hot)", L.CategoricalCrossentropy(from_logits=True), onehot(*ce(8192, 32000))),
        ("Huber 4194304x1", L.Huber(), (torch.randn(4194304, 1, device=dev, generator=g),
                                        torch.randn(4194304, 1, device=dev, generator=g))),
        ("GIoU 4194304", L.GIoULoss(box_format="xyxy"), _boxes(4194304, dev)),
        ("TripletHard 16384x128", L.TripletHardLoss(), trip(16384, 128)),
        ("TripletHard 256x128", L.TripletHardLoss(), trip(256, 128)),
    ]
    out = [f"# Device time by kernel ({calls} calls each, grad_out given)", ""]
    for title, obj, (yt, yp) in cases:
        gout = torch.empty_like(yp)
        wall = _wall_us(obj, yt, yp, gout, calls, warm=3)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(calls):
                obj.value_and_grad(yt, yp, grad_out=gout)
            torch.cuda.synchronize()
        evs = []
        for e in prof.key_averages():
            us = getattr(e, "device_time_total", None)
            if us is None:
                us = getattr(e, "cuda_time_total", 0.0)
            evs.append((e.key, e.count, float(us)))
        lines, total = kernel_table(evs, calls)
        out += [f"## {title}: wall {wall:.1f} us per call, device {total:.1f} us "
                f"(host share {max(0.0, wall - total):.1f} us)", "",
                "| kernel or copy | per call | device us per call |", "|---|---|---|"] + lines + [""]
        del yt, yp, gout
        torch.cuda.empty_cache()
    return "\n".join(out)


def _row(kernel, prov, size, n, p, floor_bytes, bw, err, meta):
    p50, p20, p80 = p
    row = dict.fromkeys(COLUMNS, "")
    row.update(kernel=kernel, provider=PROVIDERS[prov], backend="cuda" if prov.startswith("fastloss") else "",
               device="cuda", size=size, n_elements=n, dtype="float32", p20_s=p20 / 1e3, p50_s=p50 / 1e3,
               p80_s=p80 / 1e3, repeats=20, number=1, floor_bytes=floor_bytes, copy_bw_Bps=bw, max_rel_err=err,
               date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), **meta)
    return row


def _cce_rows(spec, dev, sync, bw, meta):
    """CCE from logits with one-hot targets (dense: the targets are read too;
    floor 3 x R x C x 4 bytes) vs PyTorch's cross_entropy with probability
    targets; and with the settings of ``DENSE_VARIANTS`` switched where their
    kernel runs (the kernels as they were before 2026-12-05)."""
    import torch
    import torch.nn.functional as F

    from fastloss import losses as L

    obj = L.CategoricalCrossentropy(from_logits=True)
    rows = []
    for size in [c for c in spec.split(",") if c]:
        R, C = (int(v) for v in size.split("x"))
        g = torch.Generator(device=dev).manual_seed(1)
        x = torch.randn(R, C, device=dev, generator=g) * 3
        t = F.one_hot(torch.randint(0, C, (R,), device=dev, generator=g), C).to(x.dtype)
        res, errs, (ref, rg) = _vs_peer(obj, t, x, lambda xx: F.cross_entropy(xx, t.double()),
                                        lambda xx: F.cross_entropy(xx, t), sync)
        rows += [_row("cce_logits", k, size, R * C, v, 3 * R * C * 4, bw, errs[k], meta) for k, v in res.items()]
        gout = torch.empty_like(x)

        def timed():
            lo, gr = obj.value_and_grad(t, x)
            return _median_ms(lambda: obj.value_and_grad(t, x, grad_out=gout), sync), \
                _rel_err(lo, torch.as_tensor(gr, device=dev), ref, rg)

        for kernel, (settings, applies, _) in (DENSE_VARIANTS.items() if x.is_cuda else ()):
            got = _with_settings(_G(), settings, timed) if applies(C) else None
            if got is not None:
                rows.append(_row(kernel, "fastloss grad_out=", size, R * C, got[0], 3 * R * C * 4, bw, got[1], meta))
    return rows


def _grad_hess_rows(spec, dev, sync, bw, meta):
    """grad_hess of SCCE from logits (a multi-class boosting objective: gradient
    and Hessian diagonal per class) on device inputs vs the same in PyTorch ops
    (softmax, p - onehot, p (1 - p)); floor: logits and labels read, gradient
    and Hessian written. Also with the kernel the default replaced: below 32
    classes the block-per-row kernel (``scce_gh_block_rows``), from 32 the
    same with two reads of the row (``scce_gh_two_pass``; the default holds
    the row in registers)."""
    import torch

    from fastloss import losses as L

    obj = L.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for size in [c for c in spec.split(",") if c]:
        R, C = (int(v) for v in size.split("x"))
        g = torch.Generator(device=dev).manual_seed(2)
        x = torch.randn(R, C, device=dev, generator=g) * 3
        y = torch.randint(0, C, (R,), device=dev, generator=g)
        onehot = torch.nn.functional.one_hot(y, C)

        def tc(xx=x):
            p = torch.softmax(xx, -1)
            return p - onehot, p * (1 - p)

        rg, rh = tc(x.double())

        def err_of(gh):
            gg, hh = (torch.as_tensor(a, device=dev).double() for a in gh)
            return max(float((gg - rg).abs().max() / rg.abs().max()), float((hh - rh).abs().max() / rh.abs().max()))

        errs = {"fastloss": err_of(obj.grad_hess(y, x)), "PyTorch": err_of(tc())}
        floor = y.element_size() * R + 3 * R * C * 4
        res = {"fastloss": _median_ms(lambda: obj.grad_hess(y, x), sync), "PyTorch": _median_ms(tc, sync)}
        rows += [_row("scce_gh", k, size, R * C, v, floor, bw, errs[k], meta) for k, v in res.items()]
        if x.is_cuda:
            from fastloss.backends.numba_cuda import gradhess as GH

            # the kernel the default replaced at this row length, timed beside it
            name, settings = (("scce_gh_block_rows", {"GH_STAGED": False}) if C < _G().SMALL_C
                              else ("scce_gh_two_pass", {"GH_REGS": False}))
            got = _with_settings(GH, settings,
                                 lambda: (_median_ms(lambda: obj.grad_hess(y, x), sync), err_of(obj.grad_hess(y, x))))
            if got is not None:
                rows.append(_row(name, "fastloss", size, R * C, got[0], floor, bw, got[1], meta))
    return rows


def torch_giou_loss(p, t):
    """GIoU loss per box pair (x1, y1, x2, y2), mean (torchvision's formula,
    written here so that torchvision is not needed)."""
    import torch

    x1 = torch.maximum(p[:, 0], t[:, 0])
    y1 = torch.maximum(p[:, 1], t[:, 1])
    x2 = torch.minimum(p[:, 2], t[:, 2])
    y2 = torch.minimum(p[:, 3], t[:, 3])
    inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    union = area_p + area_t - inter
    iou = inter / union
    cx1 = torch.minimum(p[:, 0], t[:, 0])
    cy1 = torch.minimum(p[:, 1], t[:, 1])
    cx2 = torch.maximum(p[:, 2], t[:, 2])
    cy2 = torch.maximum(p[:, 3], t[:, 3])
    area_c = (cx2 - cx1) * (cy2 - cy1)
    return (1 - (iou - (area_c - union) / area_c)).mean()


def _boxes(n, dev, seed=0):
    import torch

    g = torch.Generator(device=dev).manual_seed(seed)
    lo = torch.rand(n, 2, device=dev, generator=g) * 100
    t = torch.cat([lo, lo + torch.rand(n, 2, device=dev, generator=g) * 20 + 1], 1)
    p = t + torch.randn(n, 4, device=dev, generator=g) * 3
    # no coordinate equal to the target's: at a tie of max / min, PyTorch's
    # autograd (the float64 reference) splits the gradient between the two,
    # TF (and fastloss) give it to one, both subgradients. 4M boxes in float32
    # from the CPU generator had 7 such ties (t + 3 randn rounding back to t),
    # a 0.34 gradient "error" on the CPU backends: the likely cause of the
    # 4.7e-2 of the 2026-12-05 H100 run (the CUDA generator's ties, not counted)
    p = torch.where(p == t, p + 0.25, p)
    p = torch.cat([torch.minimum(p[:, :2], p[:, 2:] - 0.5), p[:, 2:]], 1)  # keep corners ordered
    return t, p


def _box_rows(spec, dev, sync, bw, meta):
    """GIoU (TF Addons' loss, x1y1x2y2 boxes, mean) vs PyTorch autograd of the
    same formula (torchvision's generalized_box_iou_loss where installed)."""
    import torch

    from fastloss import losses as L

    try:
        from torchvision.ops import generalized_box_iou_loss as tv

        peer = lambda p, t: tv(p, t, reduction="mean")  # noqa: E731
    except Exception:
        peer = torch_giou_loss
    obj = L.GIoULoss(box_format="xyxy")
    rows = []
    for item in [c for c in spec.split(",") if c]:
        n = int(item)
        t, p = _boxes(n, dev)
        res, errs, _ = _vs_peer(obj, t, p, lambda pp: torch_giou_loss(pp, t.double()), lambda pp: peer(pp, t), sync)
        rows += [_row("giou", k, str(n), n * 4, v, 3 * n * 16, bw, errs[k], meta) for k, v in res.items()]
    return rows


def torch_batch_hard(x, y, margin=1.0):
    """Batch-hard triplet loss (TF Addons' rules, L2 distances) the way PyTorch
    code computes it: cdist, masks, max/min, mean of the hinge."""
    import torch

    d = torch.cdist(x, x)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool, device=x.device)
    pos = same & ~eye
    hp = torch.where(pos, d, torch.zeros_like(d)).max(1).values
    hn = torch.where(~same, d, torch.full_like(d, float("inf"))).min(1).values
    return torch.relu(hp - hn + margin).mean()


def _triplet_rows(spec, dev, sync, bw, meta):
    """Batch-hard triplet loss + gradient (fastloss on device inputs) vs
    ``torch_batch_hard`` with autograd; parity of the two against each other in
    float64 (labels with several members per class: every row has positives
    and negatives, where both define the loss alike). Floor: embeddings read +
    gradient written."""
    import torch

    from fastloss import losses as L

    obj = L.TripletHardLoss()
    rows = []
    for item in [c for c in spec.split(",") if c]:
        N, D = (int(v) for v in item.split("x"))
        g = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(N, D, device=dev, generator=g)
        y = torch.randint(0, max(2, N // 16), (N,), device=dev, generator=g)
        gout = torch.empty_like(x)
        res, errs, (ref, rg) = _vs_peer(obj, y, x, lambda xx: torch_batch_hard(xx, y),
                                        lambda xx: torch_batch_hard(xx, y), sync)
        rows += [_row("triplet_hard", k, item, N * D, v, 2 * N * D * 4, bw, errs[k], meta) for k, v in res.items()]
        # the other kernel path: the Gram matrix written, then mined (FUSED_HARD off)
        from fastloss.backends.numba_cuda import triplet as T

        T.FUSED_HARD = False
        try:
            loss2, grad2 = obj.value_and_grad(y, x)
            err2 = _rel_err(loss2, torch.as_tensor(grad2, device=dev), ref, rg)
            p = _median_ms(lambda: obj.value_and_grad(y, x, grad_out=gout), sync)
        finally:
            T.FUSED_HARD = True
        rows.append(_row("triplet_hard_gram", "fastloss grad_out=", item, N * D, p, 2 * N * D * 4, bw, err2, meta))
    return rows


def _stream_checks(dev):
    """A call on a PyTorch side stream (its inputs produced there) and under
    ``fastloss.cuda_stream``: results equal those of the default stream."""
    import torch

    import fastloss
    from fastloss import losses as L

    scce = L.SparseCategoricalCrossentropy(from_logits=True)
    g = torch.Generator(device=dev).manual_seed(1)
    x0 = torch.randn(4096, 1000, device=dev, generator=g)
    y0 = torch.randint(0, 1000, (4096,), device=dev, generator=g)
    ref_l, ref_g = scce.value_and_grad(y0, x0)
    ref_g = torch.as_tensor(ref_g, device=dev)
    out = []
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        x = x0 * 1.0  # produced on s: the call must run after it
        y = y0.clone()
        l1, g1 = scce.value_and_grad(y, x)
        g1 = torch.as_tensor(g1, device=dev)
    s.synchronize()
    out.append(("SCCE 4096x1000 on a torch side stream", _rel_err(l1, g1, ref_l, ref_g),
                "inputs made on the stream"))
    _, g_raw = scce.value_and_grad(y0, x0)
    out.append(("gradient type for PyTorch inputs", type(g_raw).__module__ + "." + type(g_raw).__name__,
                "expected torch.Tensor (allocated by PyTorch's caching allocator)"))
    s2 = torch.cuda.Stream()
    with fastloss.cuda_stream(s2):
        l2, g2 = L.Huber().value_and_grad(x0, x0 * 0.5)
    s2.synchronize()
    rl, rg = L.Huber().value_and_grad(x0, x0 * 0.5)
    out.append(("Huber 4096x1000 under fastloss.cuda_stream", _rel_err(l2, torch.as_tensor(g2, device=dev), torch.tensor(float(rl)), torch.as_tensor(rg, device=dev)), ""))
    return out


def _grad_hess_parity(dev):
    """grad_hess (boosting) on device inputs against the CPU backend, float64,
    on shapes boosting uses: (n, 1) scores and (n, C) multi-class scores."""
    import torch

    from fastloss import losses as L

    rng = np.random.default_rng(3)
    n = 1 << 20
    x1 = rng.standard_normal((n, 1))
    y01 = rng.integers(0, 2, (n, 1)).astype(np.float64)
    xc = rng.standard_normal((65536, 10))
    lab = rng.integers(0, 10, 65536)
    cases = [
        ("BinaryCrossentropy(from_logits=True)", L.BinaryCrossentropy(from_logits=True), y01, x1),
        ("Huber", L.Huber(), rng.standard_normal((n, 1)), x1),
        ("MeanSquaredLogarithmicError", L.MeanSquaredLogarithmicError(), np.abs(x1) * 2, np.abs(x1)),
        ("SparseCategoricalCrossentropy(from_logits=True)", L.SparseCategoricalCrossentropy(from_logits=True), lab, xc),
        ("CategoricalCrossentropy(from_logits=True)", L.CategoricalCrossentropy(from_logits=True),
         np.eye(10)[lab], xc),
    ]
    out = []
    for title, obj, y, x in cases:
        rg, rh = obj.grad_hess(y, x)
        dg, dh = obj.grad_hess(torch.as_tensor(y, device=dev), torch.as_tensor(x, device=dev))
        dg, dh = torch.as_tensor(dg, device=dev).cpu().numpy(), torch.as_tensor(dh, device=dev).cpu().numpy()
        err = max(float(np.abs(dg - rg).max() / max(np.abs(rg).max(), 1e-300)),
                  float(np.abs(dh - rh).max() / max(np.abs(rh).max(), 1e-300)))
        out.append((f"grad_hess {title} {x.shape[0]}x{x.shape[1]} float64", err, "vs the CPU backend"))
    return out


def _triplet_parity(spec, dev):
    """Every triplet loss and metric on the GPU against the CPU backend in float64."""
    import torch

    from fastloss import losses as L

    if not spec:
        return []
    N, D = (int(v) for v in spec.split("x"))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D))
    x[5] = x[4]
    lab = rng.integers(0, max(2, N // 8), N)
    out = []
    for cls in (L.TripletSemiHardLoss, L.TripletHardLoss, L.TripletBatchAllLoss):
        for metric in ("L2", "squared-L2", "angular"):
            obj = cls(distance_metric=metric)
            rl, rg = obj.value_and_grad(lab, x)
            dl, dg = obj.value_and_grad(torch.as_tensor(lab, device=dev), torch.as_tensor(x, device=dev))
            gg = torch.as_tensor(dg, device=dev).cpu().numpy()
            err = max(abs(float(dl) - float(rl)) / max(abs(float(rl)), 1e-300),
                      float(np.abs(gg - rg).max() / max(np.abs(rg).max(), 1e-300)))
            out.append((f"{cls.__name__} {metric} {spec} float64", err, "vs the CPU backend"))
    return out


if __name__ == "__main__":
    main()
