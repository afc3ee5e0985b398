"""Parity and speed of fastloss' CUDA kernels on a real GPU, against PyTorch
(and JAX when installed), loss + gradient w.r.t. the logits, float32.

Run on a machine with a GPU: ``python -m benchmarks.gpu_check [--out DIR]``.
Prints a Markdown table and writes it (``GPU_REPORT.md``) and long-format CSV
rows (``gpu_results.csv``: exactly ``benchmarks.report.COLUMNS``, ``device`` =
``cuda``) to ``--out`` when given; ``python -m benchmarks.report`` puts the rows
of ``benchmarks/results/gpu_results.csv`` in the GPU section of its report.

* parity: fastloss on device inputs vs a float64 reference computed on the
  device by PyTorch (max relative error of the loss, max abs error of the
  gradient relative to its max);
* speed: median of CUDA-event-timed calls after warm-up (fastloss' call
  includes its one synchronization: it returns the reduced loss to the host);
  PyTorch ``F.cross_entropy`` + ``torch.autograd.grad``; JAX
  ``jit(value_and_grad(optax-style softmax CE))``;
* floor: (labels + logits read + gradient written) / device copy bandwidth,
  the copy bandwidth measured here as (bytes read + bytes written) / time of a
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


def _rel_err(loss, grad, ref_loss, ref_grad):
    """max over loss and gradient of max|got - ref| / max|ref| (as ``cases.max_rel_err``)."""
    import torch

    g = torch.as_tensor(grad, device=ref_grad.device).double()
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
    args = ap.parse_args(argv)

    import torch
    import torch.nn.functional as F
    from numba import cuda

    import fastloss
    from fastloss import losses as L

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

    scce = L.SparseCategoricalCrossentropy(from_logits=True)
    rows = []
    for size in args.cases.split(","):
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

    rows += _elementwise_rows(args.elementwise, dev, sync, bw, name, numba_version, numba_cuda_version)

    head = f"GPU: {name}; device copy {bw / 1e12:.2f} TB/s ((read + written) / time); python {platform.python_version()}"
    lines = [head, "", "| case | provider | p50 | floor fraction | max rel err |", "|---|---|---|---|---|"]
    for r in rows:
        err = "" if r["max_rel_err"] == "" else format(r["max_rel_err"], ".1e")
        label = {"scce_logits": "SCCE logits", "huber": "Huber", "bce_probs": "BCE probs"}.get(r["kernel"], r["kernel"])
        lines.append(f"| {label} {r['size']} | {r['provider']} | {r['p50_s'] * 1e3:.3f} ms | "
                     f"{floor_fraction(r):.2f} | {err} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        write_csv(rows, os.path.join(args.out, "gpu_results.csv"))
        with open(os.path.join(args.out, "GPU_REPORT.md"), "w") as f:
            f.write("# fastloss on a GPU\n\n" + text + "\n")


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
        gout = torch.empty_like(x)
        loss, grad = obj.value_and_grad(t, x)
        x64 = x.double().requires_grad_(True)
        ref = tfn(x64, t.double())
        (rg,) = torch.autograd.grad(ref, x64)
        err = _rel_err(loss, torch.as_tensor(grad, device=dev), ref, rg)

        def tc():
            xx = x.detach().requires_grad_(True)
            lo = tfn(xx, t)
            (gg,) = torch.autograd.grad(lo, xx)
            return lo, gg

        res = {"fastloss grad_out=": _median_ms(lambda: obj.value_and_grad(t, x, grad_out=gout), sync),
               "fastloss": _median_ms(lambda: obj.value_and_grad(t, x), sync),
               "PyTorch": _median_ms(tc, sync)}
        errs = {"fastloss": err, "fastloss grad_out=": err, "PyTorch": _rel_err(*tc(), ref, rg)}
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


if __name__ == "__main__":
    main()
