"""pytest-benchmark suite: the per-call cost of sample weights in a hot loop.

Small batches, where the Python side of a call (validation, weights, reduction)
is most of its time: loss + gradient, float32, with and without one weight per
sample, fastloss (each CPU backend) vs the Keras 3 class under ``tf.function``
given the same weights. Run from the repository root::

    python -m pytest benchmarks/test_bench_weighted.py --benchmark-group-by=group \
        --benchmark-columns=min,median,rounds,iterations

Read the ratio of each fastloss row to the TF row of its group, and a weighted
row against its unweighted twin (the weights' own cost). Before timing, each
call is checked against a float64 NumPy reference of the weighted loss.
"""

import math
import time

import numpy as np
import pytest

from . import cases as C

import fastloss
from fastloss import losses as L

# (kernel of benchmarks/cases.py, rows): Huber on (N, 4) targets; SCCE from logits (N, 10);
# GIoU on N boxes (TFA defaults)
CASES = [("huber", 64), ("scce_logits", 256), ("giou", 64)]
COLS = {"huber": 4, "scce_logits": 10, "giou": 4}


def _data(kind, n, weighted):
    rng = np.random.default_rng(7)
    if kind == "huber":
        y, p = rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32)
    elif kind == "scce_logits":
        y, p = rng.integers(0, 10, n), rng.normal(size=(n, 10)).astype(np.float32)
    else:
        y, p = C.make_boxes(rng, n), C.make_boxes(rng, n)
    w = rng.uniform(0.5, 2.0, n).astype(np.float32) if weighted else None
    return y, p, w


def _reference(kind, y, p, w):
    """float64 weighted mean of the per-sample losses (Keras' sum_over_batch_size):
    benchmarks/cases.py's reference, one row at a time (its loss is a mean over rows)."""
    case = C.Case(kind, 1, COLS[kind])
    per = np.array([C.reference(case, y[i:i + 1], p[i:i + 1])[0] for i in range(len(y))])
    return float((per * (1.0 if w is None else w)).mean())


def _fastloss(kind):
    return {"huber": L.Huber, "scce_logits": lambda: L.SparseCategoricalCrossentropy(from_logits=True),
            "giou": L.GIoULoss}[kind]()


def _tf(kind, y, p, w):
    tf, keras = C.import_tf()
    if tf is None:
        pytest.skip("TensorFlow is not installed")

    if kind == "giou":
        def fn(yt, yp):
            return tf.reduce_mean(C.tf_giou(tf, yt, yp, per_box=True) * (1.0 if w is None else tf.constant(w)))
    else:
        obj = keras.losses.Huber() if kind == "huber" else keras.losses.SparseCategoricalCrossentropy(
            from_logits=True)
        tw = None if w is None else tf.constant(w)

        def fn(yt, yp):
            return obj(yt, yp, sample_weight=tw)

    @tf.function
    def vg(yt, yp):
        with tf.GradientTape() as tape:
            tape.watch(yp)
            v = fn(yt, yp)
        return v, tape.gradient(v, yp)

    def run():
        v, g = vg(tf.constant(y), tf.constant(p))
        return float(v.numpy()), g.numpy()

    return run


def _params():
    out = []
    for kind, n in CASES:
        for weighted in (False, True):
            gid = f"{kind}-{n}-{'weighted' if weighted else 'unweighted'}"
            for b in C.fastloss_backends():
                out.append(pytest.param(kind, n, weighted, "fastloss", b, id=f"{gid}-fastloss[{b}]"))
            out.append(pytest.param(kind, n, weighted, "tf_function", "", id=f"{gid}-tf_function"))
    return out


@pytest.mark.parametrize("kind,n,weighted,provider,backend", _params())
def test_weighted_small_calls(benchmark, kind, n, weighted, provider, backend):
    y, p, w = _data(kind, n, weighted)
    if provider == "fastloss":
        obj = _fastloss(kind)

        def fn():
            v, g = obj.value_and_grad(y, p, sample_weight=w)
            return float(v), g
    else:
        fn = _tf(kind, y, p, w)
    fastloss.set_backend(backend or None)
    try:
        _time(benchmark, fn, kind, n, weighted, provider, backend, y, p, w)
    finally:
        fastloss.set_backend(None)


def _time(benchmark, fn, kind, n, weighted, provider, backend, y, p, w):
    v, _ = fn()
    ref = _reference(kind, y, p, w)
    assert abs(v - ref) <= 1e-5 * abs(ref) + 1e-6, f"{provider}: {v} vs float64 reference {ref}"
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    benchmark.group = f"{kind}-{n}"
    benchmark.extra_info.update(kind=kind, n=n, weighted=weighted, provider=provider, backend=backend)
    benchmark.pedantic(fn, rounds=7, iterations=int(min(10000, max(1, math.ceil(0.02 / one)))), warmup_rounds=0)
