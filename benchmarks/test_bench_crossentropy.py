"""pytest-benchmark suite: cross-entropy family, loss + gradient, float32, fastloss vs peers.

Run from the repository root (about 1-2 minutes; TF, PyTorch and JAX providers skip when
those packages are not installed)::

    python -m pytest benchmarks/test_bench_crossentropy.py --benchmark-columns=min,median,max,rounds,iterations \
        --benchmark-sort=name --benchmark-group-by=group

Parametrized case x provider (x backend for fastloss); cases and providers are
described in ``benchmarks/cases.py``. Before timing, each test times the
first call alone (Numba JIT compile or cache load, TF tracing: reported as
``extra_info["warmup_s"]``, not in the statistics), checks the result against a
float64 NumPy reference, makes one more untimed call, and picks ``iterations``
so that a round lasts >= 20 ms. The Markdown report with speed-ups, copy floor
and peak memory is ``python -m benchmarks.report``.
"""

import math
import time

import pytest

from . import cases as C

TF_PROVIDERS = ("tf_function", "tf_eager")


def _params(family="crossentropy"):
    out = []
    for case in C.select_cases(suite=True, family=family):
        for b in C.fastloss_backends():
            out.append(pytest.param(case, "fastloss", b, id=f"{case.id}-fastloss[{b}]"))
            out.append(pytest.param(case, "fastloss_grad_out", b, id=f"{case.id}-fastloss_grad_out[{b}]"))
        for p in TF_PROVIDERS:
            out.append(pytest.param(case, p, "", id=f"{case.id}-{p}"))
        if C.has_torch_peer(case):
            out.append(pytest.param(case, "torch_eager", "", id=f"{case.id}-torch_eager"))
        if C.has_jax_peer(case):
            out.append(pytest.param(case, "jax_jit", "", id=f"{case.id}-jax_jit"))
        if C.has_numpy_peer(case):
            out.append(pytest.param(case, "numpy", "", id=f"{case.id}-numpy"))
    return out


@pytest.mark.parametrize("case,provider,backend", _params())
def test_crossentropy(benchmark, case_data, case, provider, backend):
    bench_case(benchmark, case_data, case, provider, backend)


def bench_case(benchmark, case_data, case, provider, backend):
    """Time one case x provider (shared by the family suites)."""
    if provider in TF_PROVIDERS:
        C.import_tf()  # quiet import (TF's C++ start-up chatter) when it is there
        pytest.importorskip("tensorflow")
    elif provider == "torch_eager":
        pytest.importorskip("torch")
    elif provider == "jax_jit":
        pytest.importorskip("jax")
    y_true, y_pred, ref = case_data(case)
    fn = C.make_provider(case, provider, backend, y_true, y_pred)

    t0 = time.perf_counter()
    out = fn()
    warmup = time.perf_counter() - t0
    err = C.max_rel_err(ref, out)
    del out
    assert err < 1e-4, f"{provider} differs from the float64 reference: max rel err {err:.2e}"

    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    iterations = int(min(10000, max(1, math.ceil(0.02 / one))))
    rounds = 7 if one < 0.05 else (5 if one < 0.2 else 3)

    benchmark.group = case.id
    benchmark.extra_info.update(
        kernel=case.kernel,
        size=case.size,
        n_elements=case.n_elements,
        provider=provider,
        backend=backend,
        dtype="float32",
        warmup_s=warmup,
        floor_bytes=C.floor_bytes(case, y_true, y_pred),
        max_rel_err=err,
    )
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)
