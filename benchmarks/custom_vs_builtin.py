"""Custom losses vs the built-in kernels: Huber written with ``fastloss.custom_loss``
(derivative given, and derived by dual numbers) against ``fastloss.losses.Huber``
and a hand-written ``@njit(parallel=True)`` kernel of the same formula.

Run: python -m benchmarks.custom_vs_builtin [--alloc]   (float32, loss + gradient,
p50 over interleaved repeats)
"""

import sys
import time

import numpy as np
from numba import njit, prange

import fastloss
from fastloss.losses import Huber

SHAPES = [(256, 1), (4194304, 1), (16384, 256)]
# --alloc: allocate the gradient per call (as the peers do); default: reuse a
# buffer (grad_out=), which times the kernels rather than the page faults of a
# fresh 16 MB array (glibc's mmap threshold makes those vary with call order).
GRAD_OUT = "--alloc" not in sys.argv


@fastloss.custom_loss
def huber_derived(y_true, y_pred):
    e = y_pred - y_true
    return 0.5 * e * e if abs(e) <= 1.0 else abs(e) - 0.5


def _huber_grad(y_true, y_pred):
    e = y_pred - y_true
    return min(max(e, -1.0), 1.0)


@fastloss.custom_loss(derivative=_huber_grad)
def huber_given(y_true, y_pred):
    e = y_pred - y_true
    return 0.5 * e * e if abs(e) <= 1.0 else abs(e) - 0.5


_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _hand_py(yt, yp, grad):
    """Hand-written: per-row mean Huber, gradient scaled by 1/(R K), total."""
    R, K = yp.shape
    sc = np.float32(1.0 / (R * K))
    tot = 0.0
    for i in prange(R):
        acc = np.float32(0.0)
        for j in range(K):
            e = yp[i, j] - yt[i, j]
            a = abs(e)
            acc += np.float32(0.5) * e * e if a <= np.float32(1.0) else a - np.float32(0.5)
            grad[i, j] = min(max(e, np.float32(-1.0)), np.float32(1.0)) * sc
        tot += acc / K
    return tot / R


_hand_par = njit(parallel=True, fastmath=_FM, cache=True)(_hand_py)
_hand_ser = njit(fastmath=_FM, cache=True)(_hand_py)


def hand(yt, yp, g=None):
    g = np.empty_like(yp) if g is None else g
    return (_hand_par if yp.size >= 1 << 15 else _hand_ser)(yt, yp, g), g


def p50s(fns, min_time=0.05, repeats=21):
    """p50 seconds per call of each fn, repeats interleaved round-robin (a busy
    machine's drift hits all alike)."""
    numbers = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        numbers.append(max(1, int(min_time / max(time.perf_counter() - t0, 1e-7))))
    ts = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            n = numbers[k]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            ts[k].append((time.perf_counter() - t0) / n)
    return [float(np.median(t)) for t in ts]


def main():
    rng = np.random.default_rng(0)
    providers = {
        "builtin Huber": Huber(),
        "custom, derivative given": huber_given(),
        "custom, derived (dual)": huber_derived(),
    }
    print("gradient:", "grad_out= buffer" if GRAD_OUT else "allocated per call")
    print(f"{'shape':>14} | " + " | ".join(f"{k:>24}" for k in list(providers) + ["hand njit"]))
    for shape in SHAPES:
        yt = rng.standard_normal(shape).astype(np.float32)
        yp = (yt + 1.5 * rng.standard_normal(shape)).astype(np.float32)
        ref = providers["builtin Huber"].value_and_grad(yt, yp)
        fns = []
        for name, obj in providers.items():
            l, g = obj.value_and_grad(yt, yp)
            assert np.allclose(l, ref[0], rtol=1e-5) and np.allclose(g, ref[1], rtol=1e-5, atol=1e-12), name
            buf = np.empty_like(yp) if GRAD_OUT else None
            fns.append(lambda obj=obj, buf=buf: obj.value_and_grad(yt, yp, grad_out=buf))
        hbuf = np.empty_like(yp)
        fns.append((lambda: hand(yt, yp, hbuf)) if GRAD_OUT else (lambda: hand(yt, yp)))
        cells = p50s(fns)
        base = cells[0]
        print(f"{str(shape):>14} | " + " | ".join(f"{t * 1e6:10.1f} us ({t / base:4.2f}x)" for t in cells))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
