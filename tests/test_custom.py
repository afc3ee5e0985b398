"""fastloss.custom_loss: user scalar functions compiled into the elementwise kernels.

Expected values come from float64 NumPy formulas written here or in reference.py
(and, where a built-in loss has the same formula, the built-in is checked too).
"""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

import reference as R

REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}


# ---- the losses under test ----------------------------------------------------------


@fastloss.custom_loss
def huber_derived(y_true, y_pred):
    e = y_pred - y_true
    return 0.5 * e * e if abs(e) <= 1.0 else abs(e) - 0.5


def _huber_grad(y_true, y_pred):
    e = y_pred - y_true
    if e > 1.0:
        return 1.0
    if e < -1.0:
        return -1.0
    return e


@fastloss.custom_loss(derivative=_huber_grad)
def huber_given(y_true, y_pred):
    e = y_pred - y_true
    return 0.5 * e * e if abs(e) <= 1.0 else abs(e) - 0.5


@fastloss.custom_loss
def bce_logits(y, x):
    return max(x, 0.0) - x * y + math.log1p(math.exp(-abs(x)))


@fastloss.custom_loss(row_reduction="sum")
def summed_sq(y, p):
    return (p - y) ** 2


def huber_ref(y, p):
    e = np.asarray(p, np.float64) - np.asarray(y, np.float64)
    a = np.abs(e)
    return np.where(a <= 1.0, 0.5 * e * e, a - 0.5).mean(-1)


def huber_ref_grad(y, p):
    e = np.asarray(p, np.float64) - np.asarray(y, np.float64)
    return np.clip(e, -1.0, 1.0)


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(shape)
    p = y + 1.5 * rng.standard_normal(shape)
    return y.astype(dtype), p.astype(dtype)


def _weights(kind, n, seed=1):
    if kind == "unweighted":
        return None
    if kind == "scalar":
        return 0.7
    return np.random.default_rng(seed).uniform(0.0, 2.0, n)


def _expected(values, grad_elem, sw, reduction, K):
    """Reference reduction of per-sample values and d(returned loss)/dp."""
    val = R.reduce(values, sw, reduction)
    n = values.shape[0]
    w = np.ones(n) if sw is None else np.broadcast_to(np.asarray(sw, np.float64), (n,))
    if reduction in ("sum", "none"):
        f = 1.0
    elif reduction == "mean_with_sample_weight" and sw is not None:
        f = 1.0 / np.sum(sw)  # Keras divides by the weights as given (a scalar stays one)
    else:
        f = 1.0 / n
    return val, grad_elem * (w * f)[:, None] / K


# ---- custom == reference (== built-in) ------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["unweighted", "per_sample", "scalar"])
@pytest.mark.parametrize("cls", [huber_derived, huber_given], ids=["derived", "given"])
def test_huber_matches_reference(cls, weights, reduction, dtype):
    y, p = _data((37, 5), dtype)
    sw = _weights(weights, 37)
    val, grad = cls(reduction=reduction).value_and_grad(y, p, sample_weight=sw)
    ev, eg = _expected(huber_ref(y, p), huber_ref_grad(y, p), sw, reduction, 5)
    assert grad.dtype == dtype and grad.shape == p.shape
    assert np.asarray(val).dtype == dtype
    np.testing.assert_allclose(val, ev, **TOL[dtype])
    np.testing.assert_allclose(grad, eg, **TOL[dtype])
    np.testing.assert_allclose(cls(reduction=reduction)(y, p, sample_weight=sw), val, **TOL[dtype])
    if hasattr(L, "Huber"):  # the built-in of the same formula
        bv, bg = L.Huber(reduction=reduction).value_and_grad(y, p, sample_weight=sw)
        np.testing.assert_allclose(val, bv, **TOL[dtype])
        np.testing.assert_allclose(grad, bg, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_class_weight_and_mean_with_sample_weight(dtype):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, (50, 1)).astype(dtype)
    x = rng.standard_normal((50, 1)).astype(dtype) * 3
    cw = {0: 0.5, 1: 2.0}
    sw = rng.uniform(0.5, 1.5, 50)
    loss = bce_logits(reduction="mean_with_sample_weight", class_weight=cw)
    val, grad = loss.value_and_grad(y, x, sample_weight=sw)
    w = sw * R.class_weight_to_sample_weight(cw, y, sparse=False)
    ref = R.binary_crossentropy(y, x, from_logits=True)
    np.testing.assert_allclose(val, R.reduce(ref, w, "mean_with_sample_weight"), **TOL[dtype])
    eg = (R._sigmoid(x) - y) * (w / w.sum())[:, None]
    np.testing.assert_allclose(grad, eg, **TOL[dtype])
    bv, bg = L.BinaryCrossentropy(from_logits=True, reduction="mean_with_sample_weight", class_weight=cw).value_and_grad(
        y, x, sample_weight=sw
    )
    np.testing.assert_allclose(val, bv, **TOL[dtype])
    np.testing.assert_allclose(grad, bg, **TOL[dtype])


def test_row_reduction_sum_axis_grad_out_and_layouts():
    y, p = _data((6, 4, 3), np.float64)
    val, grad = summed_sq(reduction="none").value_and_grad(y, p)
    np.testing.assert_allclose(val, ((p - y) ** 2).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(grad, 2 * (p - y), rtol=1e-12)
    # axis=1 == moveaxis to the end
    v1 = summed_sq(reduction="none", axis=1)(y, p)
    np.testing.assert_allclose(v1, ((p - y) ** 2).sum(1), rtol=1e-12)
    # Fortran order / non-contiguous inputs, inputs not modified, grad_out reused
    yf, pf = np.asfortranarray(y), p[:, ::-1, :][:, ::-1, :]
    keep = pf.copy()
    buf = np.empty_like(p)
    v2, g2 = summed_sq().value_and_grad(yf, pf, grad_out=buf)
    assert g2 is buf
    np.testing.assert_array_equal(pf, keep)
    np.testing.assert_allclose(v2, ((p - y) ** 2).sum(-1).mean(), rtol=1e-12)
    np.testing.assert_allclose(g2, 2 * (p - y) / 24, rtol=1e-12)


def test_large_input_takes_the_parallel_path():
    y, p = _data((70000, 3), np.float32, seed=5)
    val, grad = huber_derived().value_and_grad(y, p)
    ev, eg = _expected(huber_ref(y, p), huber_ref_grad(y, p), None, "sum_over_batch_size", 3)
    np.testing.assert_allclose(val, ev, rtol=1e-5)
    np.testing.assert_allclose(grad, eg, rtol=1e-5, atol=1e-12)


def test_other_numbers_give_float32_and_config_round_trip():
    out = huber_given(reduction="none")([[0, 1]], [[2, 3]])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [1.5])
    obj = huber_given(reduction="sum", name="h")
    cfg = obj.get_config()
    again = huber_given.from_config(cfg)
    assert again.reduction == "sum" and again.name == "h"
    assert isinstance(obj, L.Loss) and isinstance(obj, fastloss.CustomLoss)
    assert huber_given.function.__name__ == "huber_given"
    assert obj.function is huber_given.function  # not bound as a method


# ---- the derived derivative vs finite differences --------------------------------------


def f_smooth(y, p):
    return math.tanh(p) * y + np.sqrt(p * p + 1.0) - p**3 / 7 + 2.0**p


def f_quotient(y, p):
    return (p - y) / (1.0 + p * p) + math.atan(p) * math.erf(p - y)


def f_logs(y, p):
    return np.log(1.0 + np.exp(p)) - y * np.log1p(p * p) + math.expm1(-p * p)


def f_trig(y, p):
    return math.sin(2.0 * p) * math.cos(y) + math.sinh(p / 3) - math.cosh(p / 4)


def f_branchy(y, p):
    if p > 2.5:
        return 0.0  # a plain number on one branch
    r = np.maximum(p - y, 0.0) ** 2.5 + min(p, 1.0) * 3
    r += abs(p) ** 0.5
    return r


def f_dual_power(y, p):
    return p**p + (1.5 + y * y) ** p


FUNCS = [f_smooth, f_quotient, f_logs, f_trig, f_branchy, f_dual_power]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fn", FUNCS, ids=[f.__name__ for f in FUNCS])
def test_derived_derivative_vs_finite_differences(fn, dtype):
    cls = fastloss.custom_loss(fn)
    rng = np.random.default_rng(7)
    y = rng.uniform(-1.0, 1.0, (20, 3))
    p = rng.uniform(0.2, 3.0, (20, 3))
    # keep clear of the kinks of f_branchy (p = 1, 2.5, p = y)
    p = np.where(np.abs(p - 1.0) < 0.02, p + 0.05, p)
    p = np.where(np.abs(p - 2.5) < 0.02, p + 0.05, p)
    p = np.where(np.abs(p - y) < 0.02, p + 0.05, p)
    pyf = np.vectorize(fn, otypes=[float])
    val, grad = cls(reduction="sum").value_and_grad(y.astype(dtype), p.astype(dtype))
    y64 = y.astype(dtype).astype(np.float64)
    p64 = p.astype(dtype).astype(np.float64)
    ref_val = pyf(y64, p64).mean(-1).sum()
    fd = R.fd_grad(lambda q: pyf(y64, q).mean(-1), p64)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(val, ref_val, **tol)
    np.testing.assert_allclose(grad, fd, **tol)


def test_derived_equals_built_in_poisson():
    @fastloss.custom_loss
    def poisson(y, p):
        return p - y * math.log(p + 1e-7)

    rng = np.random.default_rng(11)
    y = rng.poisson(3.0, (40, 6)).astype(np.float64)
    p = rng.uniform(0.1, 6.0, (40, 6))
    sw = rng.uniform(0, 1, 40)
    v, g = poisson(reduction="sum").value_and_grad(y, p, sample_weight=sw)
    np.testing.assert_allclose(v, R.reduce(R.poisson(y, p), sw, "sum"), rtol=1e-12)
    np.testing.assert_allclose(g, (1 - y / (p + 1e-7)) * sw[:, None] / 6, rtol=1e-12)
    bv, bg = L.Poisson(reduction="sum").value_and_grad(y, p, sample_weight=sw)
    np.testing.assert_allclose(v, bv, rtol=1e-12)
    np.testing.assert_allclose(g, bg, rtol=1e-12)


# ---- non-finite inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [huber_derived, huber_given], ids=["derived", "given"])
def test_nan_stays_in_its_row(cls):
    y, p = _data((4, 3), np.float32)
    p[2, 1] = np.nan
    y[3, 0] = np.inf
    val, grad = cls(reduction="none").value_and_grad(y, p)
    assert np.isnan(val[2]) and np.isnan(grad[2, 1])
    assert np.isfinite(val[:2]).all() and np.isfinite(grad[:2]).all()
    assert not np.isfinite(val[3])  # |inf - p| - 0.5 = inf
    assert np.isnan(cls()(y, p))


# ---- errors -----------------------------------------------------------------------------------


def test_not_compilable_gives_a_clear_type_error():
    @fastloss.custom_loss
    def uses_a_dict(y, p):
        d = {"a": object()}
        return p - y + len(d)

    with pytest.raises(TypeError, match=r"uses_a_dict.*Numba cannot compile"):
        uses_a_dict()([[0.0]], [[1.0]])


def test_unsupported_on_dual_suggests_derivative():
    def f(y, p):
        return math.log10(p) - y

    with pytest.raises(TypeError, match=r"derivative="):
        fastloss.custom_loss(f)()([[0.0]], [[2.0]])
    # with the derivative given it compiles
    g = fastloss.custom_loss(f, derivative=lambda y, p: 1.0 / (p * math.log(10.0)))
    v, grad = g(reduction="sum").value_and_grad([[0.0]], np.array([[2.0]]))
    np.testing.assert_allclose(v, math.log10(2.0))
    np.testing.assert_allclose(grad, [[1.0 / (2.0 * math.log(10.0))]])


def test_non_scalar_return_is_a_type_error():
    @fastloss.custom_loss
    def pair(y, p):
        return p, y

    with pytest.raises(TypeError, match="pair"):
        pair()([[0.0]], [[1.0]])


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: fastloss.custom_loss(lambda y: y), TypeError, "two positional arguments"),
        (lambda: fastloss.custom_loss(3), TypeError, "must be a function"),
        (lambda: fastloss.custom_loss(lambda y, p: p, derivative="x"), TypeError, "derivative"),
        (lambda: fastloss.custom_loss(row_reduction="max"), ValueError, "row_reduction"),
        (lambda: huber_given(reduction="avg"), ValueError, "reduction"),
        (lambda: huber_given(axis=1.5), TypeError, "axis"),
        (lambda: fastloss.CustomLoss(), TypeError, "base class"),
        (lambda: huber_given()([[1.0, 2.0]], [[1.0, 2.0, 3.0]]), ValueError, "same shape"),
    ],
)
def test_argument_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_no_kernel_on_other_backend_is_reported():
    from fastloss import _backend

    spec = huber_given._loss
    with pytest.raises(ValueError, match="no kernel on backend 'c'"):
        _backend.kernel(spec, "elementwise", "c")


# ---- the disk cache is keyed by the function's code -------------------------------------------


def test_cache_follows_edits(tmp_path):
    """Two processes, same function name and place, different constant: each
    gets its own kernel (a stale cache entry would give the first answer)."""
    script = textwrap.dedent(
        """
        import numpy as np, fastloss
        SCALE = {scale}
        @fastloss.custom_loss
        def scaled(y, p):
            return SCALE * (p - y) ** 2
        v, g = scaled(reduction="sum").value_and_grad(np.zeros((2, 1)), np.ones((2, 1)))
        print(float(v), float(g[0, 0]))
        """
    )
    root = str(Path(fastloss.__file__).resolve().parent.parent)  # the fastloss under test
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = []
    for scale in (1.0, 3.0, 1.0):
        f = tmp_path / "user_loss.py"
        f.write_text(script.format(scale=scale))
        r = subprocess.run([sys.executable, str(f)], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        out.append(r.stdout.split())
    assert out == [["2.0", "2.0"], ["6.0", "6.0"], ["2.0", "2.0"]]


def test_numba_dispatcher_and_lambda_accepted():
    from numba import njit

    @njit
    def sq(y, p):
        return (p - y) * (p - y)

    v, g = fastloss.custom_loss(sq)(reduction="sum").value_and_grad([[1.0]], np.array([[3.0]]))
    assert (float(v), g.tolist()) == (4.0, [[4.0]])
    lam = fastloss.custom_loss(lambda y, p: 3.0 * p)
    assert lam.__name__ == "custom_loss"
    v, g = lam(reduction="sum").value_and_grad([[0.0, 0.0]], np.array([[1.0, 2.0]]))
    assert (float(v), g.tolist()) == (4.5, [[1.5, 1.5]])
