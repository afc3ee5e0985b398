"""Host time per call of the CUDA backend, this tree against an earlier one, on a GPU.

``python -m benchmarks.gpu_overhead --before DIR [--out DIR] [--rounds 2]``

Times ``value_and_grad(..., grad_out=...)`` on PyTorch CUDA inputs, back to back
and synchronized at the end of each batch, for small inputs (where the call is
all host time) and large ones, in child processes: the tree in ``--before``
(a copy of an earlier fastloss: ``bash benchmarks/gpu_session.sh --fetch``
puts one in .before/), this tree with numba-cuda's own launches
(``FASTLOSS_CUDA_FAST_LAUNCH=0``), and this tree as it is; the three in turn,
``--rounds`` times, so that a drift of the machine shows as a spread between
rounds rather than as a difference. Prints a Markdown table (and writes
GPU_OVERHEAD.md under ``--out``): the median over rounds of each child's median
microseconds per call, and the ratio to ``before``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

CASES = ("SCCE 256x10", "Huber 256x1", "GIoU 256", "TripletHard 256x128", "SCCE 65536x1000", "Huber 4194304x1",
         "GIoU 4194304")


def _child():
    import numpy as np
    import torch

    import fastloss
    from fastloss import losses as L

    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(3)

    def boxes(n):
        xy = torch.rand(n, 2, device=dev, generator=g) * 100
        wh = torch.rand(n, 2, device=dev, generator=g) * 20 + 1
        t = torch.cat([xy, xy + wh], 1)
        p = t + torch.randn(n, 4, device=dev, generator=g)
        return t, torch.cat([torch.minimum(p[:, :2], p[:, 2:]), torch.maximum(p[:, :2], p[:, 2:])], 1)

    def make(name):
        if name.startswith("SCCE"):
            R, C = (int(v) for v in name.split()[1].split("x"))
            return (L.SparseCategoricalCrossentropy(from_logits=True),
                    torch.randint(0, C, (R,), device=dev, generator=g), torch.randn(R, C, device=dev, generator=g))
        if name.startswith("Huber"):
            R, K = (int(v) for v in name.split()[1].split("x"))
            t = torch.randn(R, K, device=dev, generator=g)
            return L.Huber(), t, t * 0.5 + 0.1
        if name.startswith("GIoU"):
            return (L.GIoULoss(box_format="xyxy"), *boxes(int(name.split()[1])))
        N, D = (int(v) for v in name.split()[1].split("x"))
        return (L.TripletHardLoss(), torch.randint(0, 16, (N,), device=dev, generator=g),
                torch.randn(N, D, device=dev, generator=g))

    out = {"fastloss": os.path.dirname(fastloss.__file__)}
    for name in CASES:
        try:
            obj, yt, yp = make(name)
            gout = torch.empty_like(yp)
            n = 200 if yp.numel() < 100000 else 30
            for _ in range(5):
                obj.value_and_grad(yt, yp, grad_out=gout)
            torch.cuda.synchronize()
            per = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    obj.value_and_grad(yt, yp, grad_out=gout)
                torch.cuda.synchronize()
                per.append((time.perf_counter() - t0) / n * 1e6)
            out[name] = float(np.median(per))
        except Exception as exc:  # noqa: BLE001 - the other cases still run
            out[name + " error"] = f"{type(exc).__name__}: {exc}"[:300]
    try:
        from fastloss.backends.numba_cuda import _launch

        out["launch_stats"] = dict(_launch.STATS)
        out["launch_refusals"] = list(getattr(_launch, "REFUSALS", []))
    except ImportError:
        pass
    print("RESULT " + json.dumps(out))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", required=True, help="directory holding an earlier fastloss package")
    ap.add_argument("--out", default=None)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child()
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    configs = [("before", os.path.abspath(args.before), "1"), ("now, numba-cuda launches", here, "0"),
               ("now", here, "1")]
    results = {c[0]: [] for c in configs}
    stats = {}
    for r in range(args.rounds):
        for label, tree, fast in configs:
            env = dict(os.environ, FASTLOSS_CUDA_FAST_LAUNCH=fast)
            env["PYTHONPATH"] = tree + os.pathsep + here + os.pathsep + env.get("PYTHONPATH", "")
            # the child runs this file by path, so that `import fastloss` finds `tree` first
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--before", args.before, "--child"],
                               env=env, cwd="/", capture_output=True, text=True, timeout=600)
            line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
            if p.returncode or not line:
                print(f"{label} round {r}: failed (rc {p.returncode})\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
                continue
            res = json.loads(line[0][7:])
            print(f"{label} round {r}: {res}", flush=True)
            results[label].append(res)
            stats[label] = res.get("launch_stats")
            if res.get("launch_refusals"):
                stats[label + " refusals"] = res["launch_refusals"]
            _save(args.out, _table(results, stats))  # after each child: a time limit keeps what was measured
    text = _table(results, stats)
    print(text)
    _save(args.out, text)


def _save(out, text):
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "GPU_OVERHEAD.md"), "w") as f:
            f.write("# Host time per call, before and now\n\n" + text + "\n")


def _table(results, stats):
    import statistics

    labels = list(results)
    lines = ["microseconds per `value_and_grad(grad_out=...)` call, PyTorch CUDA inputs; median of the rounds "
             "(each: the median of 5 batches of back-to-back calls); in brackets the rounds' range", "",
             "| case | " + " | ".join(labels) + " | now / before |", "|---|" + "---|" * (len(labels) + 1)]
    for case in CASES:
        cells, med = [], {}
        for lab in labels:
            v = [r[case] for r in results[lab] if case in r]
            if v:
                med[lab] = statistics.median(v)
                cells.append(f"{med[lab]:.1f} [{min(v):.1f}-{max(v):.1f}]")
            else:
                cells.append("-")
        ratio = f"{med['now'] / med['before']:.2f}" if "now" in med and "before" in med else "-"
        lines.append(f"| {case} | " + " | ".join(cells) + f" | {ratio} |")
    lines += ["", "launch counts of the last child of each kind (fast: cuda.core directly; numba: numba-cuda's "
              "path; bound/refused: bindings made / refused): " + json.dumps(stats)]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--child" in sys.argv:
        sys.path.insert(0, os.environ.get("PYTHONPATH", "").split(os.pathsep)[0])
        _child()
    else:
        main()
