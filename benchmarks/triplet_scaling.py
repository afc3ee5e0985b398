"""How the triplet losses' time and memory grow with the batch size.

    python -m benchmarks.triplet_scaling                      # N = 256 .. 16384, D = 128
    python -m benchmarks.triplet_scaling --sizes 256,8192 --dim 128 --repeats 3

Each (loss, N) runs in a fresh child process (so the peak resident memory is
that of this one problem): float32 embeddings of dimension D (``cases.make_data``:
~unit norm, ~16 per class), one warm-up call (Numba's on-disk cache load), then
``repeats`` timed calls of ``value_and_grad``; the median is printed. Memory:
``ru_maxrss`` (peak RSS) at the end minus the RSS just before the first call of
this size (after one call on 8 rows, which loads the kernels: inputs,
interpreter, libraries and most of Numba's code excluded; the gradient and every
temporary included). Prints one table row per case.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(kernel, n, dim, repeats):
    import resource

    import numpy as np

    sys.path.insert(0, HERE)
    import cases  # noqa: E402

    from fastloss import losses

    case = cases.Case(kernel, n, dim)
    labels, emb = cases.make_data(case)
    obj = losses.TripletSemiHardLoss() if kernel == "triplet_semihard" else losses.TripletHardLoss()
    obj.value_and_grad(labels[:8], emb[:8])  # load the kernels from Numba's cache
    base = _rss_bytes()
    t0 = time.perf_counter()
    obj.value_and_grad(labels, emb)
    warm = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss, grad = obj.value_and_grad(labels, emb)
        ts.append(time.perf_counter() - t0)
        del grad
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "kernel": kernel, "n": n, "dim": dim, "median_s": float(np.median(ts)), "min_s": float(min(ts)),
        "warmup_s": warm, "extra_peak_bytes": peak - base, "loss": float(loss),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,512,1024,2048,4096,8192,16384")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--kernels", default="triplet_semihard,triplet_hard")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("KERNEL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.dim, args.repeats)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    kernels = [k for k in args.kernels.split(",") if k]
    print(f"{'loss':<18} {'N':>6} {'D':>4} {'median':>10} {'min':>10} {'peak extra':>12} {'N^2 x 4 B':>10}")
    for kernel in kernels:
        for n in sizes:
            cmd = [sys.executable, "-m", "benchmarks.triplet_scaling", "--child", kernel, str(n),
                   "--dim", str(args.dim), "--repeats", str(args.repeats)]
            p = subprocess.run(cmd, cwd=os.path.dirname(HERE), capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{kernel:<18} {n:>6} failed: {p.stderr.strip()[-300:]}")
                continue
            r = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"{kernel:<18} {n:>6} {args.dim:>4} {r['median_s'] * 1e3:>8.2f}ms {r['min_s'] * 1e3:>8.2f}ms "
                  f"{r['extra_peak_bytes'] / 2**20:>9.1f}MiB {n * n * 4 / 2**20:>8.1f}MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
