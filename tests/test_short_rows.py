"""Rows of few classes: the cross-entropy kernels' columns layout
(``COLS_MAX_K`` in numba_cpu/_common.py and the float64 cut-overs in
numba_cpu/crossentropy.py, FL_COLS_MAX_K and the others in csrc/crossentropy.c:
rows of at most that many classes) on both CPU backends, float32 and float64,
against the float64 NumPy reference, gradients against central finite
differences of that reference. The class counts straddle each cut-over, so
both layouts run; the batch sizes cross the block boundary and (the larger
one) take the multi-chunk kernels."""

import numpy as np
import pytest

import fastloss
from fastloss import losses as L
from fastloss.backends.numba_cpu import _common
from fastloss.backends.numba_cpu import crossentropy as ce

import reference as R

CASES = {
    "cce": (L.CategoricalCrossentropy, {}, "cce_probs_cols"),
    "cce_ls": (L.CategoricalCrossentropy, {"label_smoothing": 0.1}, "cce_probs_cols"),
    "cce_logits": (L.CategoricalCrossentropy, {"from_logits": True}, "cce_logits_cols"),
    "cce_logits_ls": (L.CategoricalCrossentropy, {"from_logits": True, "label_smoothing": 0.2}, "cce_logits_cols"),
    "scce": (L.SparseCategoricalCrossentropy, {}, "scce_probs_cols"),
    "scce_ignore": (L.SparseCategoricalCrossentropy, {"ignore_class": 1}, "scce_probs_cols"),
    "scce_logits": (L.SparseCategoricalCrossentropy, {"from_logits": True}, "scce_logits_cols"),
    "scce_logits_ignore": (L.SparseCategoricalCrossentropy, {"from_logits": True, "ignore_class": 1}, "scce_logits_cols"),
    "cfce": (L.CategoricalFocalCrossentropy, {}, "categorical_focal_cols"),
    "cfce_g1.5_alphas": (
        L.CategoricalFocalCrossentropy,
        lambda K: {"gamma": 1.5, "alpha": list(np.linspace(0.1, 0.9, K)), "label_smoothing": 0.1},
        "categorical_focal_cols",
    ),
    "cfce_logits": (L.CategoricalFocalCrossentropy, {"from_logits": True}, "categorical_focal_cols"),
    "cfce_logits_g0.5_alphas": (
        L.CategoricalFocalCrossentropy,
        lambda K: {"from_logits": True, "gamma": 0.5, "alpha": list(np.linspace(0.9, 0.2, K))},
        "categorical_focal_cols",
    ),
}
REFS = {
    L.CategoricalCrossentropy: "categorical_crossentropy",
    L.SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
    L.CategoricalFocalCrossentropy: "categorical_focal_crossentropy",
}
DTYPES = [np.float32, np.float64]
# per-row loss and total: rtol (atol the same), gradient against differences: rtol
TOL = {np.float32: (3e-6, 1e-3), np.float64: (1e-12, 1e-6)}


def _cut(case, dt, gh=False):
    """The most classes for which ``case`` takes the columns layout."""
    f32 = dt == np.float32
    if gh:
        return ce.EXP_BLOCKED_COLS_MAX_K if f32 else ce.GH_COLS_MAX_K_F64
    if "scce_logits" in case:
        return ce.SCCE_LOGITS_COLS_MAX_K if f32 else ce.SCCE_LOGITS_COLS_MAX_K_F64
    if f32:
        return _common.COLS_MAX_K
    return ce.COLS_MAX_K_F64_DENSE if case.startswith("cce") else ce.COLS_MAX_K_F64


def _k_params(cases, ks32, gh=False):
    """(case, K, dtype) params: float32 at the class counts ``ks32`` and at
    both sides of the case's own cut-over; float64 only up to the case's own cut-over (its columns
    kernels: the float64 row kernels run in the rest of the suite, and each
    one compiled here cost CI's cold start seconds), whose choice of layout
    at both sides test_float64_cut_overs checks."""
    out = []
    for case in cases:
        cut32 = _cut(case, np.float32, gh)  # its own float32 cut-over, both sides, wherever it lies
        out += [pytest.param(case, K, np.float32, id=f"{case}-{K}-f32") for K in sorted({*ks32, cut32, cut32 + 1})]
        cut = _cut(case, np.float64, gh)
        out += [pytest.param(case, K, np.float64, id=f"{case}-{K}-f64") for K in sorted({1, 2, cut}) if K <= cut]
    return out
BACKENDS = [
    "numba",
    pytest.param("c", marks=pytest.mark.skipif("c" not in fastloss.available_backends(), reason="no C backend")),
]


def _case(case, K):
    """(class, its keyword arguments for K classes, the columns kernel's name)."""
    cls, kw, cols_name = CASES[case]
    return cls, (kw(K) if callable(kw) else kw), cols_name


def _ref(case, yt, yp):
    cls, kw, _ = _case(case, yp.shape[-1])
    per_row = R.REFERENCES[REFS[cls]](yt, np.asarray(yp, np.float64), **kw)
    if kw.get("ignore_class") is not None:
        per_row = np.where(R.sparse_mask(yt, yp, kw["ignore_class"]), per_row, 0.0)
    return per_row


def _inputs(case, rng, n, K, soft, dt=np.float32):
    cls, kw, _ = _case(case, K)
    logits = kw.get("from_logits", False)
    yp = (rng.normal(0, 2, (n, K)) if logits else rng.uniform(0.05, 0.95, (n, K))).astype(dt)
    if cls is L.SparseCategoricalCrossentropy:
        yt = rng.integers(0, K, n)
    elif soft:  # rows need not sum to 1 (the sum(y') factors of the gradients)
        yt = rng.uniform(0, 1, (n, K))
    else:
        yt = np.eye(K)[rng.integers(0, K, n)]
    return yt, yp


def _check_layout(cols_name, yp, short):
    """The Numba entry point picks the columns kernel ``cols_name`` for these
    rows exactly when ``short`` (so the test above ran the layout it means to)."""
    entry = getattr(ce, cols_name.replace("_cols", ""))
    cols = getattr(ce, cols_name)
    assert (entry.pick(yp).rows is cols) == short


def _fd_rows(f, yp, w, h=1e-6):
    """d sum_i w_i f(x)_i / dx by central differences: f's rows are
    independent, so one class of every row is stepped at once."""
    x = np.asarray(yp, np.float64)
    g = np.empty_like(x)
    for j in range(x.shape[1]):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += h
        xm[:, j] -= h
        g[:, j] = w * (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [700, 24000], ids=["block", "chunks"])
@pytest.mark.parametrize("case, K, dt", _k_params(CASES, [1, 2, 3, 6, 7, 15, 16]))
def test_short_rows_match_reference(case, K, dt, n, backend):
    cls, kw, cols_name = _case(case, K)
    rng = np.random.default_rng([K, n, len(case)])
    yt, yp = _inputs(case, rng, n, K, soft=K % 2 == 1, dt=dt)
    w = rng.uniform(0.2, 2.0, n)
    yt0, yp0 = yt.copy(), yp.copy()
    obj = cls(reduction="sum", **kw)
    with fastloss.use_backend(backend):
        loss, grad = obj.value_and_grad(yt, yp, sample_weight=w)
        per_row = cls(reduction="none", **kw)(yt, yp)
    np.testing.assert_array_equal(yt, yt0)
    np.testing.assert_array_equal(yp, yp0)
    want = _ref(case, yt, yp)
    assert grad.dtype == dt and per_row.dtype == dt
    tol, gtol = TOL[dt]
    np.testing.assert_allclose(per_row, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(loss, np.sum(want * w), rtol=3 * tol, atol=tol * np.sum(w))
    fd = _fd_rows(lambda x: _ref(case, yt, x), yp, w)
    np.testing.assert_allclose(grad, fd, rtol=gtol, atol=gtol * 1e-2 * np.abs(fd).max())
    _check_layout(cols_name, yp, K <= _cut(case, dt))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [3, 7])
@pytest.mark.parametrize("case", ["cce", "scce", "scce_ignore", "cfce", "cfce_g1.5_alphas"])
def test_short_rows_clipped_probabilities(case, K, backend):
    """Probabilities outside [eps, 1 - eps] (clipped: no gradient through the
    clipped value itself) in rows of both blocks."""
    rng = np.random.default_rng(K)
    n = 3000
    yt, yp = _inputs(case, rng, n, K, soft=True)
    rows = rng.choice(n, 200, replace=False)
    cols = rng.integers(0, K, 200)
    yp[rows, cols] = rng.choice(np.array([-0.01, 1.5, 3.0], np.float32), 200)
    if CASES[case][0] is L.SparseCategoricalCrossentropy:
        yt[rows[:50]] = cols[:50]  # the label's own probability clipped
    w = rng.uniform(0.2, 2.0, n)
    cls, kw, _ = _case(case, K)
    with fastloss.use_backend(backend):
        loss, grad = cls(reduction="sum", **kw).value_and_grad(yt, yp, sample_weight=w)
        per_row = cls(reduction="none", **kw)(yt, yp)
    want = _ref(case, yt, yp)
    np.testing.assert_allclose(per_row, want, rtol=3e-6, atol=3e-6)
    fd = _fd_rows(lambda x: _ref(case, yt, x), yp, w, h=1e-7)
    np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-5 * np.abs(fd).max())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "case, K, dt",
    [pytest.param(c, K, np.float32, id=f"{c}-{K}-f32") for c in CASES for K in [2, 5]]
    + [pytest.param(c, 2, np.float64, id=f"{c}-2-f64") for c in CASES],
)
def test_short_rows_nonfinite(case, K, dt, backend):
    """NaN / inf in a row make that row's loss (and gradient) NaN as in the
    reference and leave the other rows alone; an ignored row is 0 whatever it
    holds."""
    cls, kw, _ = _case(case, K)
    rng = np.random.default_rng(K + 100)
    n = 2500  # more than one block at these K
    yt, yp = _inputs(case, rng, n, K, soft=False, dt=dt)
    # +inf logits are left out: x - max(x) is then NaN in the row, as in TF's
    # kernels (the float64 reference's log-softmax gives inf where the label
    # is another class)
    big = -np.inf if kw.get("from_logits") else np.inf
    bad = {10: np.nan, 1500: big, 2400: -np.inf}
    for i, v in bad.items():
        yp[i, i % K] = v
    ignored = kw.get("ignore_class") is not None
    if ignored:
        yt[10] = 0
        yt[1500] = 1  # an ignored row holding inf: loss 0, gradient 0
    with fastloss.use_backend(backend), np.errstate(all="ignore"):
        loss, grad = cls(reduction="none", **kw).value_and_grad(yt, yp)
        want = _ref(case, yt, yp)
    np.testing.assert_array_equal(np.isnan(loss), np.isnan(want))
    assert np.isnan(loss[10])
    fin = np.isfinite(want)
    tol = TOL[dt][0]
    np.testing.assert_allclose(loss[fin], want[fin], rtol=tol, atol=tol)
    others = np.ones(n, bool)
    others[list(bad)] = False
    assert np.isfinite(grad[others]).all()
    assert np.isnan(grad[10]).any()
    if ignored:
        assert loss[1500] == 0 and not grad[1500].any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("logits", [False, True])
def test_short_rows_bad_label_row_reported(logits, backend):
    """A label out of range in the second block: the error names its row."""
    rng = np.random.default_rng(7)
    yt, yp = _inputs("scce", rng, 5000, 3, soft=False)
    yt[4321] = 3
    with fastloss.use_backend(backend), pytest.raises(ValueError, match="at index 4321"):
        L.SparseCategoricalCrossentropy(from_logits=logits)(yt, yp)


GH_CASES = ["cce_logits", "cce_logits_ls", "scce_logits", "scce_logits_ignore"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [700, 24000], ids=["block", "chunks"])
@pytest.mark.parametrize("case, K, dt", _k_params(GH_CASES, [2, 3, 6, 7, 16], gh=True))
def test_short_rows_grad_hess(case, K, dt, n, backend):
    """``grad_hess`` (the multi-class boosting objectives): gradient and
    Hessian diagonal of sum_i w_i loss_i against central first and second
    differences of the float64 reference."""
    cls, kw, _ = _case(case, K)
    rng = np.random.default_rng([K, n, 2 * len(case)])
    yt, yp = _inputs(case, rng, n, K, soft=True, dt=dt)
    if kw.get("ignore_class") is not None:
        yt[::7] = 1  # some ignored rows: gradient and Hessian 0
    w = rng.uniform(0.2, 2.0, n)
    with fastloss.use_backend(backend):
        g, h = cls(**kw).grad_hess(yt, yp, sample_weight=w)
    assert g.dtype == h.dtype == dt
    f = lambda x: _ref(case, yt, x)
    fd = _fd_rows(f, yp, w)
    gtol = TOL[dt][1]
    np.testing.assert_allclose(g, fd, rtol=gtol, atol=gtol * 1e-2 * np.abs(fd).max())
    x = np.asarray(yp, np.float64)
    hd = np.empty_like(x)
    step = 1e-4
    for j in range(K):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += step
        xm[:, j] -= step
        hd[:, j] = w * (f(xp) - 2 * f(x) + f(xm)) / step**2
    # (float64 too: the second differences' own error, ~ eps |f| / step**2, sets the bound)
    np.testing.assert_allclose(h, hd, rtol=1e-3, atol=1e-5 * np.abs(hd).max())
    if kw.get("ignore_class") is not None:
        assert not g[::7].any() and not h[::7].any()
    _check_layout(case.split("_ls")[0].replace("_ignore", "") + "_gh_cols", yp, K <= _cut(case, dt, gh=True))


@pytest.mark.parametrize("case", list(CASES) + [c + "_gh" for c in GH_CASES])
def test_float64_cut_overs(case):
    """The Numba entry points' choice for float64 rows at both sides of each
    cut-over (the choice alone: nothing is compiled)."""
    gh = case.endswith("_gh")
    base = case[: -len("_gh")] if gh else case
    cut = _cut(base, np.float64, gh)
    cols_name = base.split("_ls")[0].replace("_ignore", "") + "_gh_cols" if gh else _case(base, 2)[2]
    for K in (cut, cut + 1):
        _check_layout(cols_name, np.zeros((3, K)), K <= cut)
