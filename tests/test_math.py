"""The kernels' own exp/log/log1p, float32 and float64, against long double
references: the Numba kernels' (``backends/numba_cpu/_math.py``, and the
(expm1, exp) pair of LogCosh in ``regression.py``) and the C kernels' twins
(``csrc/fl_common.h``, run through ``fl_math_f32``/``fl_math_f64``, built
as the kernels are). The error in ulps of the result over the whole range
(subnormal results and the edge of overflow included), and the IEEE special
values."""

import numpy as np
import pytest

from fastloss._backend import available_backends

LD = np.longdouble
pytestmark = pytest.mark.skipif(
    np.finfo(LD).nmant < 60, reason="needs an extended long double for the references"
)
BACKENDS = [
    pytest.param("numba", marks=pytest.mark.skipif("numba" not in available_backends(), reason="no Numba")),
    pytest.param("c", marks=pytest.mark.skipif("c" not in available_backends(), reason="C backend not built")),
]
_FN_INDEX = {"exp": 0, "log": 1, "log1p": 2, "expm1_exp": 3}


def _numba_runner(fn, dt):
    from numba import njit

    from fastloss._config import FASTMATH
    from fastloss.backends.numba_cpu import _math as M
    from fastloss.backends.numba_cpu.regression import _expm1_exp

    if fn == "expm1_exp":

        @njit(fastmath=FASTMATH, error_model="numpy")
        def run2(a, o1, o2):
            for i in range(a.size):
                o1[i], o2[i] = _expm1_exp(a[i])

        return run2
    f = getattr(M, f"{fn}{32 if dt == np.float32 else 64}")

    # compiled as the kernels compile them: inlined, with the project's fast-math flags
    @njit(fastmath=FASTMATH, error_model="numpy")
    def run(a, o1, o2):
        for i in range(a.size):
            o1[i] = f(a[i])

    return run


def _c_runner(fn, dt):
    from fastloss.backends.cffi_c import load

    ffi, lib = load()
    name, ct = ("fl_math_f32", "float[]") if dt == np.float32 else ("fl_math_f64", "double[]")
    cfun, which = getattr(lib, name), _FN_INDEX[fn]

    def run(a, o1, o2):
        st = cfun(which, ffi.from_buffer(ct, a), ffi.from_buffer(ct, o1, require_writable=True),
                  ffi.from_buffer(ct, o2, require_writable=True), a.size)
        assert st == 0

    return run


_RUNNERS = {}


def _run(backend, fn, x, pair=False):
    key = (backend, fn, x.dtype.type)
    if key not in _RUNNERS:
        _RUNNERS[key] = (_numba_runner if backend == "numba" else _c_runner)(fn, x.dtype.type)
    x = np.ascontiguousarray(x)
    o1, o2 = np.empty_like(x), np.empty_like(x)
    _RUNNERS[key](x, o1, o2)
    return (o1, o2) if pair else o1


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_exp(backend, dt):
    """Within 1 ulp everywhere, but Numba's exp32: 1.2 ulp for |x| <= 10 and 5
    beyond (fast-math merges its two-step reduction into one, for speed; the C
    build has no reassociation and keeps the two steps)."""
    x = _exp_args(dt)
    err = _ulps(_run(backend, "exp", x), np.exp(x.astype(LD)), dt)
    if dt == np.float64 or backend == "c":
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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt, ulps", [(np.float32, 2.0), (np.float64, 2.0)])
def test_log(backend, dt, ulps):
    x = _log_args(dt)
    err = _ulps(_run(backend, "log", x), np.log(x.astype(LD)), dt)
    assert err.max() <= ulps, (x[err.argmax()], err.max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt, ulps", [(np.float32, 3.0), (np.float64, 3.0)])
def test_log1p(backend, dt, ulps):
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
    err = _ulps(_run(backend, "log1p", x), np.log1p(x.astype(LD)), dt)
    assert err.max() <= ulps, (x[err.argmax()], err.max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_expm1_exp_pair(backend, dt):
    """LogCosh's (expm1(z), exp(z)) for z <= 0 from one reduction."""
    lo = -103.0 if dt == np.float32 else -744.0
    z = np.concatenate([-RNG.uniform(0.0, 1.0, 100_000), -RNG.uniform(0.0, 1e-6, 10_000), RNG.uniform(lo, 0.0, 100_000)]).astype(dt)
    em, u = _run(backend, "expm1_exp", z, pair=True)
    zl = z.astype(LD)
    e1, e2 = _ulps(em, np.expm1(zl), dt), _ulps(u, np.exp(zl), dt)
    near = z >= -10.0
    assert e1[near].max() < 1.5 and e2[near].max() < 1.5, (e1[near].max(), e2[near].max())
    bound = 1.5 if dt == np.float64 else 5.0  # float32: the reduction of exp32, merged (see test_exp)
    assert e1.max() < bound and e2.max() < bound, (e1.max(), e2.max())


SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1.0, 1e30, -1e30]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("fn", ["exp", "log", "log1p"])
def test_special_values_as_libm(backend, fn, dt):
    x = np.array(SPECIAL, dt)
    with np.errstate(all="ignore"):
        want = getattr(np, fn)(x)
    got = _run(backend, fn, x)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dt).eps, atol=0)  # inf, -inf, nan exactly
