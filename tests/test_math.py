"""The Numba kernels' own exp/log/log1p (``backends/numba_cpu/_math.py``, and
the (expm1, exp) pair of LogCosh in ``regression.py``), float32 and float64,
against long double references: the error in ulps of the result, over the
whole range (subnormal results and the edge of overflow included), and the
IEEE special values."""

import numpy as np
import pytest

pytest.importorskip("numba")
from numba import njit  # noqa: E402

from fastloss._config import FASTMATH  # noqa: E402
from fastloss.backends.numba_cpu import _math as M  # noqa: E402
from fastloss.backends.numba_cpu.regression import _expm1_exp  # noqa: E402

LD = np.longdouble
pytestmark = pytest.mark.skipif(
    np.finfo(LD).nmant < 60, reason="needs an extended long double for the references"
)


def _vectorized(fn):
    # compiled as the kernels compile them: inlined, with the project's fast-math flags
    @njit(fastmath=FASTMATH, error_model="numpy")
    def run(a, out):
        for i in range(a.size):
            out[i] = fn(a[i])

    return run


_RUNNERS = {}


def _run(name, x):
    if name not in _RUNNERS:
        _RUNNERS[name] = _vectorized(getattr(M, name))
    out = np.empty_like(x)
    _RUNNERS[name](x, out)
    return out


def _ulps(got, ref, dt):
    """|got - ref| in units of the spacing of float(ref) in ``dt``; ``ref``
    below the smallest normal is measured in the smallest subnormal."""
    ref = np.asarray(ref, LD)
    sp = np.spacing(np.abs(ref.astype(dt))).astype(LD)
    return np.abs(got.astype(LD) - ref) / sp


RNG = np.random.default_rng(20261205)


def _exp_args(dt):
    hi, lo = (88.72, -103.9) if dt == np.float32 else (709.78, -745.1)
    return np.concatenate(
        [
            RNG.uniform(lo, hi, 200_000),
            RNG.uniform(-1.0, 1.0, 50_000),
            RNG.uniform(-1e-6, 1e-6, 10_000),
            np.linspace(hi - 1.0, hi, 5_000),  # the largest k: 2**k splits in two halves
            np.linspace(lo, lo + 20.0, 5_000),  # subnormal results
        ]
    ).astype(dt)


@pytest.mark.parametrize("name, dt", [("exp32", np.float32), ("exp64", np.float64)])
def test_exp(name, dt):
    """exp64 within 1 ulp everywhere; exp32 (whose reduction fast-math merges
    into one step, for speed) within 1.2 ulp for |x| <= 10 and 5 beyond."""
    x = _exp_args(dt)
    err = _ulps(_run(name, x), np.exp(x.astype(LD)), dt)
    if dt == np.float64:
        assert err.max() < 1.0, (x[err.argmax()], err.max())
    else:
        near = np.abs(x) <= 10.0
        assert err[near].max() < 1.2, (x[near][err[near].argmax()], err[near].max())
        assert err.max() < 5.0, (x[err.argmax()], err.max())


def _log_args(dt):
    lo, hi = (-103.0, 88.7) if dt == np.float32 else (-744.0, 709.7)
    tiny = np.finfo(dt).smallest_subnormal
    return np.concatenate(
        [
            np.exp(RNG.uniform(lo, hi, 200_000)),
            RNG.uniform(0.5, 2.0, 50_000),
            RNG.uniform(1.0 - 1e-6, 1.0 + 1e-6, 10_000),
            np.array([tiny, 1e-40 if dt == np.float32 else 1e-310, np.finfo(dt).tiny, np.finfo(dt).max]),
        ]
    ).astype(dt)


@pytest.mark.parametrize("name, dt, ulps", [("log32", np.float32, 2.0), ("log64", np.float64, 2.0)])
def test_log(name, dt, ulps):
    x = _log_args(dt)
    err = _ulps(_run(name, x), np.log(x.astype(LD)), dt)
    assert err.max() <= ulps, (x[err.argmax()], err.max())


@pytest.mark.parametrize("name, dt, ulps", [("log1p32", np.float32, 3.0), ("log1p64", np.float64, 3.0)])
def test_log1p(name, dt, ulps):
    """Tiny arguments keep full relative precision (the series runs on u
    itself, not on a rounded 1 + u)."""
    x = np.concatenate(
        [
            RNG.uniform(-0.999, 3.0, 200_000),
            RNG.uniform(-1e-7, 1e-7, 20_000),
            -np.exp(-RNG.uniform(0.0, 15.0, 20_000)),  # toward -1
            np.exp(RNG.uniform(-80.0, 80.0, 20_000)),
        ]
    ).astype(dt)
    err = _ulps(_run(name, x), np.log1p(x.astype(LD)), dt)
    assert err.max() <= ulps, (x[err.argmax()], err.max())


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_expm1_exp_pair(dt):
    """LogCosh's (expm1(z), exp(z)) for z <= 0 from one reduction."""

    @njit(fastmath=FASTMATH, error_model="numpy")
    def run(a, o1, o2):
        for i in range(a.size):
            o1[i], o2[i] = _expm1_exp(a[i])

    lo = -103.0 if dt == np.float32 else -744.0
    z = np.concatenate([-RNG.uniform(0.0, 1.0, 100_000), -RNG.uniform(0.0, 1e-6, 10_000), RNG.uniform(lo, 0.0, 100_000)]).astype(dt)
    em, u = np.empty_like(z), np.empty_like(z)
    run(z, em, u)
    zl = z.astype(LD)
    e1, e2 = _ulps(em, np.expm1(zl), dt), _ulps(u, np.exp(zl), dt)
    near = z >= -10.0
    assert e1[near].max() < 1.5 and e2[near].max() < 1.5, (e1[near].max(), e2[near].max())
    bound = 1.5 if dt == np.float64 else 5.0  # float32: the reduction of exp32, merged (see test_exp)
    assert e1.max() < bound and e2.max() < bound, (e1.max(), e2.max())


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 1e30, -1e30]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("fn", ["exp", "log", "log1p"])
def test_special_values_as_libm(fn, dt):
    name = f"{fn}{32 if dt == np.float32 else 64}"
    x = np.array(SPECIAL, dt)
    with np.errstate(all="ignore"):
        want = getattr(np, fn)(x)
    got = _run(name, x)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dt).eps, atol=0)  # inf, -inf, nan exactly
