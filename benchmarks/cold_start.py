"""Cold start per backend: ``import fastloss`` + the first call, in a fresh process.

    python -m benchmarks.cold_start                 # every CPU backend, 5 fresh processes each
    python -m benchmarks.cold_start --runs 9 --backends c,numba

Each measurement is a new Python process that imports fastloss, selects the
backend and times: the import, the first ``value_and_grad`` call (for Numba:
loading the kernel from its on-disk cache, or compiling it when the cache is
cold) and a second call (warm). Two Numba figures are reported: with the disk
cache warm (the usual case after the first run) and cold (a fresh cache
directory: first use after an install/upgrade, ``NUMBA_CACHE_DIR`` pointing at
an empty temporary directory). The C backend has nothing to compile at run
time. Medians over ``--runs`` processes; the machine's load makes single runs
noisy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import fastloss
from fastloss import losses as L
t2 = time.perf_counter()
backend, case = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
if case == "scce":
    obj = L.SparseCategoricalCrossentropy(from_logits=True)
    yt = rng.integers(0, 10, 256); yp = rng.normal(size=(256, 10)).astype(np.float32)
else:
    obj = L.Huber()
    yt = rng.normal(size=(256, 1)).astype(np.float32); yp = rng.normal(size=(256, 1)).astype(np.float32)
with fastloss.use_backend(backend):
    t3 = time.perf_counter()
    obj.value_and_grad(yt, yp)
    t4 = time.perf_counter()
    obj.value_and_grad(yt, yp)
    t5 = time.perf_counter()
print(json.dumps({"numpy_import": t1 - t0, "import": t2 - t1, "first_call": t4 - t3, "second_call": t5 - t4}))
"""


def _one(backend, case, env):
    r = subprocess.run([sys.executable, "-c", _CHILD, backend, case], env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(backend, case, runs, cold_cache=False):
    out = []
    for _ in range(runs):
        env = dict(os.environ)
        env.pop("FASTLOSS_BACKEND", None)
        if cold_cache:
            with tempfile.TemporaryDirectory() as d:
                env["NUMBA_CACHE_DIR"] = d
                out.append(_one(backend, case, env))
        else:
            out.append(_one(backend, case, env))
    return {k: statistics.median(r[k] for r in out) for k in out[0]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--backends", default=None, help="comma-separated (default: the available CPU backends)")
    ap.add_argument("--cases", default="scce,huber")
    ap.add_argument("--no-cold-cache", action="store_true", help="skip the Numba cold-cache runs (slow)")
    a = ap.parse_args(argv)
    import fastloss

    backends = a.backends.split(",") if a.backends else [b for b in fastloss.available_backends() if b in ("numba", "c")]
    print(f"python {sys.version.split()[0]}, {a.runs} fresh processes per row, medians (seconds)")
    print("| backend | case | numba disk cache | import fastloss | first call | import + first call | second call |")
    print("|---|---|---|---|---|---|---|")
    for case in a.cases.split(","):
        for b in backends:
            modes = [("warm", False)]
            if b == "numba" and not a.no_cold_cache:
                modes.append(("cold", True))
            for label, cold in modes:
                m = measure(b, case, a.runs, cold)
                cache = label if b == "numba" else "-"
                print(
                    f"| {b} | {case} | {cache} | {m['import']:.3f} | {m['first_call']:.3f} | "
                    f"{m['import'] + m['first_call']:.3f} | {m['second_call'] * 1e6:.0f} us |"
                )


if __name__ == "__main__":
    main()
