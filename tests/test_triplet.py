"""Triplet losses: TripletSemiHardLoss / TripletHardLoss (TF Addons) and
TripletBatchAllLoss (fastloss).

Expected values come from TF Addons' docstrings, the literal float64 port of
TFA's code in ``reference.py`` (the N^2 x N tiling included), central finite
differences of that reference for gradients, and identities. Parity with the
real TF Addons is in ``test_triplet_tfa.py`` (needs FASTLOSS_TFA_PYTHON).
"""

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

import reference as R

KINDS = {
    "semihard": (L.TripletSemiHardLoss, R.triplet_semihard),
    "hard": (L.TripletHardLoss, R.triplet_hard),
    "batch_all": (L.TripletBatchAllLoss, R.triplet_batch_all),
}
METRICS = ("L2", "squared-L2", "angular")


def make(n, d, n_classes, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    lab = rng.integers(0, n_classes, n)
    return lab, x


def fd_grad(f, x, h=1e-6, coords=None):
    """Central differences of scalar f at x (float64), all or some coordinates."""
    x = np.array(x, dtype=np.float64)
    g = np.full(x.shape, np.nan)
    idx = list(np.ndindex(x.shape)) if coords is None else coords
    for i in idx:
        xp = x.copy()
        xm = x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def obj(kind, **kw):
    return KINDS[kind][0](**kw)


def ref(kind, lab, x, **kw):
    return KINDS[kind][1](lab, x, **kw)


# ---- golden values ------------------------------------------------------------


def test_tfa_docstring_values():
    y_true = np.array([0, 0])
    y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    dot = lambda x: x @ x.T  # noqa: E731
    assert L.TripletSemiHardLoss()(y_true, y_pred) == pytest.approx(2.4142137, rel=1e-7)
    assert L.TripletSemiHardLoss(distance_metric=dot)(y_true, y_pred) == pytest.approx(1.0)
    assert L.TripletHardLoss()(y_true, y_pred) == pytest.approx(1.0)
    assert L.TripletHardLoss(distance_metric=dot)(y_true, y_pred) == pytest.approx(0.0)
    # the same through the reference (checks the reference against TFA's documentation)
    assert R.triplet_semihard(y_true, y_pred) == pytest.approx(1 + np.sqrt(2), rel=1e-12)
    assert R.triplet_hard(y_true, y_pred, distance_metric=dot) == 0.0


def test_hand_computed_batch_all():
    # anchor 0: 1 + 1 - 1.5 = 0.5; anchor 1: 1 + 1 - 0.5 = 1.5; anchor 2 has no positive
    lab = [0, 0, 1]
    x = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 1.5]])
    assert L.TripletBatchAllLoss()(lab, x) == pytest.approx(1.0, rel=1e-15)
    # gradient: d/dx of (0.5 + 1.5) / 2 ; by hand: triplet (0,1,2): +d01 - d02, (1,0,2): +d10 - d12
    _, g = L.TripletBatchAllLoss().value_and_grad(lab, x)
    # d01 = |x0-x1|: d/dx0 = (x0-x1)/1 = (0,-1); d/dx1 = (0,1); d02: d/dx0 = (0,-1), d/dx2 = (0,1)
    # d12: d/dx1 = (0,-1), d/dx2 = (0,1). sum/2: x0: 2*(0,-1) - (0,-1) = (0,-1) -> /2
    np.testing.assert_allclose(g, [[0, -0.5], [0, 1.5], [0, -1.0]], atol=1e-15)


# ---- float64 reference: values and finite-difference gradients ---------------------

CASES = [
    (kind, metric, soft, margin, seed)
    for kind in KINDS
    for metric in METRICS
    for soft in (False, True)
    for margin, seed in ((1.0, 0), (0.3, 1))
    if not (soft and margin != 1.0)
]


@pytest.mark.parametrize("kind,metric,soft,margin,seed", CASES)
def test_matches_reference_float64(kind, metric, soft, margin, seed):
    lab, x = make(14, 4, 3, seed)
    o = obj(kind, margin=margin, distance_metric=metric, soft=soft)
    loss, grad = o.value_and_grad(lab, x)
    want = ref(kind, lab, x, margin=margin, distance_metric=metric, soft=soft)
    assert loss.dtype == np.float64 and grad.dtype == np.float64 and grad.shape == x.shape
    np.testing.assert_allclose(loss, want, rtol=1e-11, atol=1e-13)
    assert o(lab, x) == loss
    fd = fd_grad(lambda z: ref(kind, lab, z, margin=margin, distance_metric=metric, soft=soft), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("soft", [False, True])
def test_precomputed_matrix_and_its_gradient(kind, soft):
    rng = np.random.default_rng(5)
    n = 11
    D = rng.uniform(0.1, 3.0, (n, n))  # not even symmetric: TFA uses the matrix as given
    lab = rng.integers(0, 3, n)
    o = obj(kind, distance_metric="precomputed", soft=soft, margin=0.7)
    loss, g = o.value_and_grad(lab, D)
    f = lambda m: ref(kind, lab, m, margin=0.7, soft=soft, distance_metric="precomputed")  # noqa: E731
    np.testing.assert_allclose(loss, f(D), rtol=1e-12)
    np.testing.assert_allclose(g, fd_grad(f, D), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("metric", METRICS)
def test_float32_matches_reference(kind, metric):
    lab, x = make(24, 6, 4, 7, np.float32)
    loss, grad = obj(kind, distance_metric=metric).value_and_grad(lab, x)
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    want = ref(kind, lab, x.astype(np.float64), distance_metric=metric)
    np.testing.assert_allclose(loss, want, rtol=2e-5, atol=1e-6)
    g64 = obj(kind, distance_metric=metric).value_and_grad(lab, x.astype(np.float64))[1]
    np.testing.assert_allclose(grad, g64, rtol=1e-3, atol=2e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_parallel_and_sorted_mining_paths(kind):
    # N = 200 (> the serial cut-over) and ~66 positives per anchor (> the
    # semi-hard sort threshold): values vs the reference, gradient vs finite
    # differences on a few coordinates.
    lab, x = make(200, 4, 3, 11)
    o = obj(kind, margin=0.5)
    loss, grad = o.value_and_grad(lab, x)
    f = lambda z: ref(kind, lab, z, margin=0.5)  # noqa: E731
    np.testing.assert_allclose(loss, f(x), rtol=1e-11)
    coords = [(0, 0), (17, 3), (101, 1), (199, 2), (55, 0)]
    fd = fd_grad(f, x, coords=coords)
    for c in coords:
        np.testing.assert_allclose(grad[c], fd[c], rtol=1e-5, atol=1e-8)


# ---- identities -----------------------------------------------------------------


def _l2(x):
    return np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))


@pytest.mark.parametrize("kind", list(KINDS))
def test_same_mining_L2_vs_precomputed_and_squared(kind):
    lab, x = make(16, 5, 3, 3)
    D = _l2(x)
    l_x, g_x = obj(kind).value_and_grad(lab, x)
    l_d, g_d = obj(kind, distance_metric="precomputed").value_and_grad(lab, D)
    np.testing.assert_allclose(l_x, l_d, rtol=1e-12)
    # chain rule through D[i, j] = |x_i - x_j|, by hand
    S = g_d + g_d.T
    np.fill_diagonal(S, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        C = np.where(D > 0, S / D, 0.0)
    np.testing.assert_allclose(g_x, C.sum(1)[:, None] * x - C @ x, rtol=1e-10, atol=1e-13)
    # squared-L2 is the precomputed D**2
    np.testing.assert_allclose(
        obj(kind, distance_metric="squared-L2")(lab, x), obj(kind, distance_metric="precomputed")(lab, D**2), rtol=1e-12
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_callable_with_vjp_equals_builtin(kind):
    lab, x = make(15, 3, 3, 4)

    def l2_with_vjp(e):
        D = _l2(e)

        def vjp(c):
            S = c + c.T
            with np.errstate(divide="ignore", invalid="ignore"):
                C = np.where(D > 0, S / D, 0.0)
            np.fill_diagonal(C, 0.0)
            return C.sum(1)[:, None] * e - C @ e

        return D, vjp

    l1, g1 = obj(kind).value_and_grad(lab, x)
    l2, g2 = obj(kind, distance_metric=l2_with_vjp).value_and_grad(lab, x)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_allclose(g1, g2, rtol=1e-10, atol=1e-13)
    # value only from a callable that returns the matrix alone
    assert obj(kind, distance_metric=_l2)(lab, x) == pytest.approx(l1, rel=1e-12)


@pytest.mark.parametrize("kind", list(KINDS))
def test_permutation_and_label_renaming(kind):
    lab, x = make(18, 4, 4, 9)
    o = obj(kind, margin=0.8)
    l0, g0 = o.value_and_grad(lab, x)
    perm = np.random.default_rng(1).permutation(18)
    l1, g1 = o.value_and_grad(lab[perm], x[perm])
    np.testing.assert_allclose(l1, l0, rtol=1e-12)
    np.testing.assert_allclose(g1, g0[perm], rtol=1e-10, atol=1e-14)
    l2, g2 = o.value_and_grad(-7 * lab + 1000, x)  # any injective relabelling
    assert l2 == l0
    np.testing.assert_array_equal(g2, g0)
    l3, _ = o.value_and_grad(lab.astype(np.float32)[:, None], x)  # (N, 1) integral floats
    assert l3 == l0


def test_hard_soft_is_softplus_of_hinge_argument():
    # soft uses log1p(exp(hp - hn)); with margin 0 the hinge is relu of the same argument
    lab, x = make(12, 3, 3, 2)
    soft = L.TripletHardLoss(soft=True)(lab, x)
    want = R.triplet_hard(lab, x, soft=True)
    np.testing.assert_allclose(soft, want, rtol=1e-12)
    assert soft > L.TripletHardLoss(margin=0.0)(lab, x)  # softplus(z) > relu(z)


@pytest.mark.parametrize("kind", list(KINDS))
def test_sample_weight_and_reductions(kind):
    lab, x = make(10, 3, 2, 6)
    o = obj(kind)
    l0, g0 = o.value_and_grad(lab, x)
    l, g = o.value_and_grad(lab, x, sample_weight=2.5)
    assert l == pytest.approx(2.5 * l0, rel=1e-14)
    np.testing.assert_allclose(g, 2.5 * g0, rtol=1e-12)
    lv = o(lab, x, sample_weight=np.array([3.0]))  # TFA keeps the weight's shape
    assert lv.shape == (1,) and lv[0] == pytest.approx(3 * l0)
    for red in ("sum", "sum_over_batch_size", "mean"):
        assert obj(kind, reduction=red)(lab, x, sample_weight=2.0) == pytest.approx(2 * l0)
    mws = obj(kind, reduction="mean_with_sample_weight")
    assert mws(lab, x, sample_weight=4.0) == pytest.approx(l0)
    np.testing.assert_allclose(mws.value_and_grad(lab, x, sample_weight=4.0)[1], g0, rtol=1e-12)
    assert obj(kind)(lab, x, sample_weight=0.0) == 0.0


# ---- degenerate batches -------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("metric", METRICS)
def test_single_class(kind, metric):
    lab = np.zeros(9, int)
    _, x = make(9, 3, 1, 12)
    loss, grad = obj(kind, distance_metric=metric).value_and_grad(lab, x)
    want = ref(kind, lab, x, distance_metric=metric)
    np.testing.assert_allclose(loss, want, rtol=1e-12)
    assert np.all(np.isfinite(grad))
    if kind == "hard":  # hp = hn = the row maximum: loss = margin, gradient 0
        assert loss == pytest.approx(1.0) and not grad.any()
    elif kind == "batch_all":  # no negative, no triplet
        assert loss == 0.0 and not grad.any()
    else:
        f = lambda z: ref(kind, lab, z, distance_metric=metric)  # noqa: E731
        np.testing.assert_allclose(grad, fd_grad(f, x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", list(KINDS))
def test_all_labels_distinct(kind):
    lab = np.arange(8)
    _, x = make(8, 3, 1, 13)
    loss, grad = obj(kind).value_and_grad(lab, x)
    want = ref(kind, lab, x)
    if kind == "semihard":
        assert np.isnan(want)  # TF Addons: 0 / 0
        assert loss == 0.0 and not grad.any()  # fastloss: the finite limit
    else:
        np.testing.assert_allclose(loss, want, rtol=1e-12)
        f = lambda z: ref(kind, lab, z)  # noqa: E731
        np.testing.assert_allclose(grad, fd_grad(f, x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_duplicate_embeddings(kind, dtype):
    rng = np.random.default_rng(21)
    base = rng.normal(size=(5, 8)) * 3.0
    # exact duplicates within classes: the values are well defined
    x = base[[0, 0, 1, 1, 2, 3, 3, 4, 4]].astype(dtype)
    lab = np.array([0, 0, 1, 1, 2, 0, 0, 2, 2])
    for metric in ("L2", "squared-L2"):
        loss, grad = obj(kind, distance_metric=metric).value_and_grad(lab, x)
        want = ref(kind, lab, x.astype(np.float64), distance_metric=metric)
        np.testing.assert_allclose(loss, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
        assert np.all(np.isfinite(grad)), metric
    # duplicates across classes make exact ties d(a, p) == d(a, n), where the
    # strict "d_an > d_ap" of semi-hard mining is decided by the last bit of
    # the Gram matrix (as in TFA): float64 against the reference, finite always
    x = base[[0, 0, 1, 1, 2, 3, 3, 4, 0]].astype(dtype)
    lab = np.array([0, 0, 1, 1, 2, 0, 1, 2, 2])
    for metric in ("L2", "squared-L2", "angular"):
        loss, grad = obj(kind, distance_metric=metric).value_and_grad(lab, x)
        assert np.isfinite(loss) and np.all(np.isfinite(grad)), metric
        if dtype == np.float64 and metric != "angular":
            np.testing.assert_allclose(loss, ref(kind, lab, x, distance_metric=metric), rtol=1e-12)
    # all N copies of one point: every distance is exactly 0
    same = np.repeat(base[:1], 6, 0).astype(dtype)
    loss, grad = obj(kind).value_and_grad([0, 0, 0, 1, 1, 1], same)
    want = {"semihard": 1.0, "hard": 1.0, "batch_all": 1.0}[kind]
    assert loss == pytest.approx(want) and not grad.any()


@pytest.mark.parametrize("kind", list(KINDS))
def test_tiny_batches(kind):
    o = obj(kind)
    x1 = np.array([[0.5, -1.0]])
    loss, grad = o.value_and_grad([3], x1)
    # N = 1: no pair at all. semi-hard/batch-all: 0 (TFA semi-hard: NaN); hard: hp = hn = 0 -> margin (as TFA)
    assert loss == (1.0 if kind == "hard" else 0.0) and grad.shape == (1, 2) and not grad.any()
    x2 = np.array([[0.0, 0.0], [3.0, 4.0]])
    for lab in ([0, 0], [0, 1]):
        loss, grad = o.value_and_grad(lab, x2)
        want = ref(kind, lab, x2)
        if np.isnan(want):
            assert kind == "semihard" and loss == 0.0
        else:
            np.testing.assert_allclose(loss, want, rtol=1e-14)
            f = lambda z, lab=lab: ref(kind, lab, z)  # noqa: E731
            np.testing.assert_allclose(grad, fd_grad(f, x2), rtol=1e-6, atol=1e-8)
    loss, grad = o.value_and_grad(np.zeros(0, int), np.zeros((0, 4)))
    assert loss == 0.0 and grad.shape == (0, 4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_zero_vector_angular(kind):
    lab = np.array([0, 0, 1, 1, 2])
    x = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [1.0, 1.0, 1.0], [-2.0, 0.1, 0.0]])
    loss, grad = obj(kind, distance_metric="angular").value_and_grad(lab, x)
    np.testing.assert_allclose(loss, ref(kind, lab, x, distance_metric="angular"), rtol=1e-12)
    assert np.all(np.isfinite(grad))


def test_soft_large_arguments_do_not_overflow():
    # hp - hn ~ 200: TFA's log1p(exp(.)) is inf in float32; fastloss gives the finite value
    lab = np.array([0, 0, 1])
    x = np.array([[0.0], [200.0], [0.5]], dtype=np.float32)
    loss, grad = L.TripletHardLoss(soft=True).value_and_grad(lab, x)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, R.triplet_hard(lab, x, soft=True), rtol=1e-6)


# ---- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_nan_embeddings_visible(kind):
    lab, x = make(10, 3, 3, 1)
    x[4, 1] = np.nan
    loss, grad = obj(kind).value_and_grad(lab, x)
    assert np.isnan(loss) and np.isnan(grad).all()
    assert np.isnan(obj(kind, distance_metric="angular")(lab, x))


def test_errors():
    lab, x = make(6, 3, 2, 0)
    o = L.TripletSemiHardLoss()
    with pytest.raises(ValueError, match="one integer label per embedding"):
        o(lab[:5], x)
    with pytest.raises(ValueError, match="one integer label per embedding"):
        o(np.zeros((6, 2)), x)
    with pytest.raises(ValueError, match="labels must be integers.*0.5"):
        o(np.array([0, 0.5, 1, 1, 0, 0]), x)
    with pytest.raises(ValueError, match="labels must be integers"):
        o(np.array([0, np.nan, 1, 1, 0, 0]), x)
    with pytest.raises(TypeError, match="y_true"):
        o(np.array(["a"] * 6), x)
    with pytest.raises(ValueError, match="2-D embeddings"):
        o(lab, x[:, 0])
    with pytest.raises(ValueError, match="2-D embeddings"):
        o(lab, x[None])
    with pytest.raises(ValueError, match="distance_metric"):
        L.TripletHardLoss(distance_metric="cosine")
    with pytest.raises(ValueError, match="distance_metric"):
        L.TripletHardLoss(distance_metric="l2")
    for bad in ("1.0", None, True, [1.0]):
        with pytest.raises(TypeError, match="margin"):
            L.TripletSemiHardLoss(margin=bad)
    with pytest.raises(ValueError, match="margin"):
        L.TripletSemiHardLoss(margin=float("nan"))
    with pytest.raises(TypeError, match="soft"):
        L.TripletHardLoss(soft="yes")
    with pytest.raises(ValueError, match="sample_weight"):
        o(lab, x, sample_weight=np.ones(6))
    with pytest.raises(ValueError, match="square"):
        L.TripletHardLoss(distance_metric="precomputed")(lab, x)
    with pytest.raises(ValueError, match=r"\(distances, vjp\)"):
        L.TripletHardLoss(distance_metric=_l2).value_and_grad(lab, x)
    with pytest.raises(ValueError, match="matrix"):
        L.TripletHardLoss(distance_metric=lambda e: e)(lab, x)
    with pytest.raises(ValueError, match="grad_out"):
        o.value_and_grad(lab, x, grad_out=np.empty((6, 2)))
    with pytest.raises(ValueError, match="grad_hess"):
        o.grad_hess(lab, x)
    with pytest.raises(ValueError, match="reduction"):
        L.TripletHardLoss(reduction="avg")


# ---- dtypes, layouts, buffers, inputs ------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_dtypes_layouts_and_inputs_untouched(kind):
    lab, x = make(20, 5, 3, 8, np.float32)
    lab_c, x_c = lab.copy(), x.copy()
    o = obj(kind)
    l32, g32 = o.value_and_grad(lab, x)
    np.testing.assert_array_equal(lab, lab_c)
    np.testing.assert_array_equal(x, x_c)
    assert l32.dtype == np.float32 and g32.dtype == np.float32
    # Fortran order and a strided view give the same answer
    lf, gf = o.value_and_grad(lab, np.asfortranarray(x))
    assert lf == l32
    np.testing.assert_array_equal(gf, g32)
    big = np.zeros((20, 10), np.float32)
    big[:, ::2] = x
    ls, gs = o.value_and_grad(lab, big[:, ::2])
    assert ls == l32
    np.testing.assert_array_equal(gs, g32)
    # ints -> float32; dtype= forces float64
    assert o(lab, np.round(x * 10).astype(np.int32)).dtype == np.float32
    assert obj(kind, dtype="float64")(lab, x).dtype == np.float64
    # grad_out is written and returned
    buf = np.full_like(x, 7.0)
    l2, g2 = o.value_and_grad(lab, x, grad_out=buf)
    assert g2 is buf and l2 == l32
    np.testing.assert_array_equal(buf, g32)


def test_functional_forms():
    lab, x = make(12, 3, 3, 10)
    assert fastloss.triplet_semihard_loss(lab, x) == L.TripletSemiHardLoss()(lab, x)
    assert fastloss.triplet_hard_loss(lab, x, soft=True) == L.TripletHardLoss(soft=True)(lab, x)
    assert fastloss.triplet_batch_all_loss(lab, x, margin=0.5) == L.TripletBatchAllLoss(margin=0.5)(lab, x)
    assert fastloss.triplet_semihard_loss(lab, x, distance_metric="angular") == pytest.approx(
        R.triplet_semihard(lab, x, distance_metric="angular"), rel=1e-12
    )


def test_config_round_trip():
    o = L.TripletHardLoss(margin=0.2, soft=True, distance_metric="angular")
    o2 = L.TripletHardLoss.from_config(o.get_config())
    assert (o2.margin, o2.soft, o2.distance_metric, o2.reduction) == (0.2, True, "angular", "none")


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("metric", METRICS)
def test_blas_and_parallel_paths_agree(kind, metric, monkeypatch):
    # large batches take the parallel Gram/mining kernels and (dense W) BLAS
    # products for the gradient; semi-hard takes the sparse assembly while its
    # entries are few: force each path on a small batch
    from fastloss import _parallel, _triplet

    monkeypatch.setattr(_parallel, "ENABLED", False)  # the size alone decides (no serial calibration)
    lab, x = make(60, 5, 4, 14)
    o = obj(kind, distance_metric=metric, margin=0.6)
    l0, g0 = o.value_and_grad(lab, x)
    r = ref(kind, lab, x, distance_metric=metric, margin=0.6)
    for small, frac, par in ((1 << 40, 1.0, 1 << 40), (0, 0.0, 1)):
        monkeypatch.setattr(_triplet, "SMALL_MADDS", small)
        monkeypatch.setattr(_triplet, "SPARSE_MAX_FRACTION", frac)
        monkeypatch.setattr(_triplet, "PARALLEL_MIN_ENTRIES", par)
        l1, g1 = o.value_and_grad(lab, x)
        np.testing.assert_allclose(l1, l0, rtol=1e-12)
        np.testing.assert_allclose(g1, g0, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(l1, r, rtol=1e-11)
    l2, g2 = o.value_and_grad(lab, x.astype(np.float32))
    np.testing.assert_allclose(l2, l0, rtol=1e-5)
    np.testing.assert_allclose(g2, g0, rtol=1e-3, atol=1e-5)
