"""The C triplet kernels (csrc/triplet.c) against their Numba twins, kernel by
kernel, on the SAME inputs (one Gram/distance matrix fed to both, so that the
mining decisions see identical distances).

Mining (semi-hard, hard, batch-all) x metric (L2, squared-L2, angular,
precomputed) x soft x float32/float64, serial (nch = 1) and parallel
(nch = 2, and N = 2048, 1024 for batch-all); inputs with exact ties (integer
embeddings: ties must go to the same, lowest, column), near-duplicate and
exact duplicate rows (the L2 recomputation), a single class, one label per
row, many positives per anchor (the sorted semi-hard path), NaN. Then the
assembly kernels (symmetrize, hard_grad, dense_grad, gram) and the path in
``fastloss._triplet``: ``use_backend("c")`` runs the C kernels, the automatic
choice stays Numba.

The independent references (TF Addons' formulas in float64, finite
differences) are checked on both backends by test_triplet.py (per backend,
tests/conftest.py); this file pins the two backends to each other.
"""

import numpy as np
import pytest

import fastloss
from fastloss import _backend, _registry, _triplet

pytestmark = pytest.mark.skipif(
    not {"numba", "c"} <= set(fastloss.available_backends()),
    reason="needs both the numba and the c backend",
)

MODES = ("semihard", "hard", "batch_all")
METRICS = {"L2": 0, "squared-L2": 1, "angular": 2, "precomputed": 3}
# float32 sums over ~1000 soft terms (batch-all's per-negative weights) differ
# by accumulation order / FMA contraction between gcc and LLVM: a few 1e-6
# relative; the selections themselves (columns, counts) are compared exactly.
TOL = {np.float32: dict(rtol=3e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def _mods():
    from fastloss.backends.cffi_c import triplet as C
    from fastloss.backends.numba_cpu import triplet as NB

    return NB, C


def _case(kind, N, D, dt, rng):
    """(labels, embeddings) of a named input kind."""
    if kind == "random":
        x = rng.normal(size=(N, D))
        lab = rng.integers(0, 4, N)
    elif kind == "ties":  # small integers: many exactly equal distances
        x = rng.integers(-2, 3, (N, D)).astype(np.float64)
        lab = rng.integers(0, 3, N)
    elif kind == "duplicates":
        x = rng.normal(size=(N, D))
        x[3] = x[7]  # exact duplicate (labels may or may not agree)
        x[5] = x[1] + 1e-4  # near duplicate: the Gram formula loses it in float32
        x[9] = x[2]
        lab = rng.integers(0, 3, N)
        lab[9] = lab[2]
        lab[3] = (lab[7] + 1) % 3
    elif kind == "single_class":
        x = rng.normal(size=(N, D))
        lab = np.zeros(N, np.int64)
    elif kind == "distinct":
        x = rng.normal(size=(N, D))
        lab = np.arange(N)
    elif kind == "sorted":  # > 128 log2(kn) positives per anchor: the sorted semi-hard path
        x = rng.normal(size=(N, D))
        lab = np.zeros(N, np.int64)
        lab[rng.choice(N, 8, replace=False)] = 1
    elif kind == "zero_rows":  # angular's norm floor; L2 distance 0 between zero rows
        x = rng.normal(size=(N, D))
        x[[0, 4, 6]] = 0.0
        lab = rng.integers(0, 3, N)
    else:
        raise AssertionError(kind)
    return lab.astype(np.int64), x.astype(dt)


def _inputs(lab, x, metric, dt):
    """The arguments ``_triplet.compute_triplet`` builds: M, aux, X, prm (margin 0.7)."""
    code = METRICS[metric]
    if code == 3:
        d = np.sqrt(np.maximum(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1), 0))
        M = np.ascontiguousarray(np.round(d, 2).astype(dt))  # rounded: ties in the matrix too
        return M, np.empty(0, dt), np.empty((0, 0), dt)
    X = np.ascontiguousarray(x)
    M = X @ X.T
    M = np.ascontiguousarray(np.triu(M) + np.triu(M, 1).T)  # exactly symmetric
    sq = M.diagonal().copy()
    aux = (1.0 / np.sqrt(np.maximum(sq, dt(1e-12)))).astype(dt) if code == 2 else sq
    return M, aux, X


def _prm(metric, soft, dt):
    code = METRICS[metric]
    cut = 0.0 if code >= 2 else _triplet._CUT[np.dtype(dt)]
    return np.array((0.7, code, 1.0 if soft else 0.0, cut), dt)


def _mine(mod, mode, M, aux, X, lab, prm, want_grad, nch):
    N = M.shape[0]
    dt = M.dtype
    rowloss = np.full(N, -7.0)
    rowcnt = np.full(N, -7.0)
    dense = mode != "hard"
    W = np.full((N, N) if (want_grad and dense) else (N, 0), -7.0, dt)
    sel = np.full((N, 2) if mode == "hard" else (0, 2), -7, np.int64)
    selc = np.full((N, 2) if mode == "hard" else (0, 2), -7.0, dt)
    ins = [a.copy() for a in (M, aux, X, lab, prm)]
    getattr(mod, mode)(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch)
    for a, b in zip(ins, (M, aux, X, lab, prm)):
        np.testing.assert_array_equal(a, b, err_msg="a kernel modified its input")
    return rowloss, rowcnt, W, sel, selc


def _same(a, b, dt, what):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what}: NaN positions")
    np.testing.assert_allclose(a, b, err_msg=what, equal_nan=True, **TOL[dt])


def _check_mining(mode, metric, soft, dt, lab, x, nch, want_grad=True):
    NB, C = _mods()
    M, aux, X = _inputs(lab, x, metric, dt)
    prm = _prm(metric, soft, dt)
    rn = _mine(NB, mode, M, aux, X, lab, prm, want_grad, nch)
    rc = _mine(C, mode, M, aux, X, lab, prm, want_grad, nch)
    tag = f"{mode}/{metric}/soft={soft}/{np.dtype(dt).name}/nch={nch}"
    _same(rn[0], rc[0], dt, f"{tag}: rowloss")
    np.testing.assert_array_equal(rn[1], rc[1], err_msg=f"{tag}: rowcnt")
    if mode == "hard":
        np.testing.assert_array_equal(rn[3], rc[3], err_msg=f"{tag}: selected columns")
        _same(rn[4], rc[4], dt, f"{tag}: selection weights")
    elif want_grad:
        _same(rn[2], rc[2], dt, f"{tag}: W")
    return rn, rc, (M, aux, X, prm)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("mode", MODES)
def test_mining_small_serial_and_parallel(mode, metric, soft, dt):
    rng = np.random.default_rng(hash((mode, metric, soft)) % 2**32)
    for kind in ("random", "ties", "duplicates", "single_class", "distinct", "zero_rows"):
        lab, x = _case(kind, 37, 5, dt, rng)
        for nch in (1, 3):
            _check_mining(mode, metric, soft, dt, lab, x, nch)
        _check_mining(mode, metric, soft, dt, lab, x, 1, want_grad=False)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_mining_large_parallel(mode, dt):
    """A large batch (2048; 1024 for batch-all, whose work grows as N^3: its
    float64 case took ~42 s here at 2048), on the chunk count the path uses there (2 on this
    machine: at least 2), the sorted semi-hard path included."""
    rng = np.random.default_rng(5)
    N = 1024 if mode == "batch_all" else 2048
    nch = max(2, _triplet._threads())
    lab, x = _case("random", N, 8, dt, rng)
    x[11] = x[1500 * N // 2048]  # a duplicate in the other chunk
    for metric in ("L2", "angular"):
        _check_mining(mode, metric, False, dt, lab, x, nch)
    _check_mining(mode, "squared-L2", True, dt, lab, x, nch)
    lab, x = _case("sorted", 700, 4, dt, rng)
    _check_mining(mode, "L2", False, dt, lab, x, nch)
    _check_mining(mode, "L2", True, dt, lab, x, 1)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_nan_rows_stay_visible(mode, dt):
    rng = np.random.default_rng(2)
    lab, x = _case("random", 30, 4, dt, rng)
    x[4, 1] = np.nan  # every row sees column 4: all rows NaN
    rn, rc, _ = _check_mining(mode, "L2", False, dt, lab, x, 2)
    assert np.isnan(rc[0]).all()
    # one NaN in a precomputed matrix: that row alone
    lab, x = _case("random", 30, 4, dt, rng)
    NB, C = _mods()
    M, aux, X = _inputs(lab, x, "precomputed", dt)
    M[6, 2] = np.nan
    prm = _prm("precomputed", False, dt)
    outs = [_mine(m, mode, M, aux, X, lab, prm, True, 1) for m in (NB, C)]
    assert np.isnan(outs[1][0]).tolist() == [i == 6 for i in range(30)]
    for i in (0, 1, 2, 4):
        if outs[0][i].size:
            _same(outs[0][i], outs[1][i], dt, f"{mode}: output {i}")


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("metric", ["L2", "squared-L2", "angular", "precomputed"])
def test_assembly_kernels(metric, dt):
    NB, C = _mods()
    rng = np.random.default_rng(8)
    lab, x = _case("duplicates", 150, 6, dt, rng)
    code = METRICS[metric]
    # dense modes: symmetrize (+ dense_grad for L2/squared-L2)
    for mode in ("semihard", "batch_all"):
        rn, rc, (M, aux, X, prm) = _check_mining(mode, metric, False, dt, lab, x, 1)
        for nch in (1, 2):
            out = []
            for mod in (NB, C):
                W = rn[2].copy()
                r = np.full(150, -7.0)
                q = np.zeros(150)
                mod.symmetrize(W, M, aux, code, r, q, nch)
                out.append((W, r, q))
            for i, what in enumerate(("S", "r", "q")):
                _same(out[0][i], out[1][i], dt, f"symmetrize {mode}/{metric} nch={nch}: {what}")
        if code < 2:
            S = out[0][0]
            gs = []
            for mod in (NB, C):
                G = np.full(X.shape, -7.0, dt)
                mod.dense_grad(S, X, dt(0.01), G)
                gs.append(G)
            np.testing.assert_allclose(gs[0], gs[1], rtol=1e-4 if dt is np.float32 else 1e-11, atol=1e-6)
    # hard: sparse assembly
    rn, rc, (M, aux, X, prm) = _check_mining("hard", metric, False, dt, lab, x, 1)
    gs = []
    for mod in (NB, C):
        G = np.full((150, 150) if code == 3 else X.shape, -7.0, dt)
        mod.hard_grad(X, M, aux, rn[3], rn[4], code, dt(0.02), G)
        gs.append(G)
    np.testing.assert_allclose(gs[0], gs[1], rtol=1e-5 if dt is np.float32 else 1e-12, atol=1e-7)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_gram(dt):
    NB, C = _mods()
    rng = np.random.default_rng(3)
    # every N % 4 (the 4 x 4 tiles' tails), D below and above a vector, serial and parallel
    for N, D in ((1, 1), (2, 5), (3, 1), (5, 3), (8, 16), (67, 129), (130, 7)):
        X = rng.normal(size=(N, D)).astype(dt)
        Ms = []
        for mod in (NB, C):
            for nch in (1, 2, 3):
                M = np.full((N, N), -7.0, dt)
                mod.gram(X, M, nch)
                Ms.append(M)
        for M in Ms:
            np.testing.assert_array_equal(M, M.T)
        for M in Ms[1:3]:  # a backend's serial and parallel runs: identical
            np.testing.assert_array_equal(M, Ms[0])
        for M in Ms[4:6]:
            np.testing.assert_array_equal(M, Ms[3])
        exact = X.astype(np.float64) @ X.T.astype(np.float64)
        scale = np.abs(X).astype(np.float64) @ np.abs(X).T.astype(np.float64)
        eps = np.finfo(dt).eps
        for M in Ms:  # both within D * eps of the exact products, relative to sum |x_i||x_j|
            assert np.all(np.abs(M - exact) <= 2 * D * eps * scale + 1e-30)


def test_kernel_wrappers_reject_mismatched_buffers():
    _, C = _mods()
    N = 4
    M = np.zeros((N, N), np.float32)
    args = dict(
        aux=np.zeros(N, np.float32), X=np.zeros((N, 2), np.float32), lab=np.zeros(N, np.int64),
        prm=np.array((1.0, 0, 0, 0.01), np.float32), rowloss=np.zeros(N), rowcnt=np.zeros(N),
        W=np.zeros((N, N), np.float32), sel=np.zeros((N, 2), np.int64), selc=np.zeros((N, 2), np.float32),
    )

    def call(**kw):
        a = dict(args, **kw)
        C.semihard(kw.get("M", M), a["aux"], a["X"], a["lab"], a["prm"], a["rowloss"], a["rowcnt"], a["W"],
                   a["sel"], a["selc"], True, 1)

    call()  # fits
    with pytest.raises(ValueError, match=r"W must be \(4, 4\) float32"):  # formatted only on failure
        call(W=np.zeros((N, N - 1), np.float32))
    with pytest.raises(ValueError, match="lab must be 4 int64 labels"):
        call(lab=np.zeros(N, np.int32))
    with pytest.raises(ValueError, match="aux must"):
        call(aux=np.zeros(N - 1, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        call(M=np.zeros((N, N), np.int64))
    with pytest.raises(ValueError, match="rowloss must hold 4 float64 values"):
        call(rowloss=np.zeros(N, np.float32))
    with pytest.raises(ValueError, match=r"X must be \(4, D\) float32, got \(3, 2\) float32"):
        call(X=np.zeros((N - 1, 2), np.float32))


# ---- the path: which backend runs -------------------------------------------------


def _record(monkeypatch):
    seen = []
    real = _backend.kernel

    def spy(spec, variant, backend):
        if spec.family == "triplet":
            seen.append((variant, backend))
        return real(spec, variant, backend)

    monkeypatch.setattr(_backend, "kernel", spy)
    return seen


@pytest.mark.parametrize("name", ["triplet_semihard", "triplet_hard", "triplet_batch_all"])
@pytest.mark.parametrize("metric", ["L2", "angular"])
def test_use_backend_c_runs_the_c_kernels(name, metric, monkeypatch):
    seen = _record(monkeypatch)
    rng = np.random.default_rng(4)
    lab, x = _case("random", 40, 5, np.float32, rng)
    out = {}
    for b in ("c", "numba"):
        seen.clear()
        with fastloss.use_backend(b):
            out[b] = _triplet.compute_triplet(name, lab, x, distance_metric=metric, want_grad=True)
        variants = {v for v, _ in seen}
        assert {"mine", "gram"} <= variants, seen
        assert {bk for _, bk in seen} == {b}, seen
    seen.clear()
    _triplet.compute_triplet(name, lab, x, distance_metric=metric, want_grad=True)
    assert {bk for _, bk in seen} == {"numba"}, f"automatic choice: {seen}"
    np.testing.assert_allclose(out["c"][0], out["numba"][0], rtol=1e-5)
    np.testing.assert_allclose(out["c"][1], out["numba"][1], rtol=1e-3, atol=1e-6)


def test_registry_has_c_twins_for_every_triplet_variant():
    for name in ("triplet_semihard", "triplet_hard", "triplet_batch_all"):
        spec = _registry.get(name)
        assert set(spec.kernels["c"]) == set(spec.kernels["numba"])
        for v in spec.kernels["c"]:
            assert callable(_backend.kernel(spec, v, "c"))
