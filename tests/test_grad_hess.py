"""``Loss.grad_hess``: gradient and Hessian diagonal of sum_i w_i loss_i (boosting).

Checked against finite differences of the float64 reference (tests/reference.py),
against ``value_and_grad(reduction="sum")`` (the same gradient), and for weights,
dtypes, layouts, the parallel path and bad input.
"""

import numpy as np
import pytest

import fastloss
from fastloss import _registry
from fastloss import losses as L

import reference as ref

RNG = np.random.default_rng(1234)


def _soft_labels(shape, rng):
    return rng.uniform(0.0, 1.0, shape)


# name -> (constructor kwargs, per-sample reference, y_true maker, y_pred maker)
CASES = {
    "bce_logits": (
        lambda: L.BinaryCrossentropy(from_logits=True),
        lambda y, x: ref.binary_crossentropy(y, x, from_logits=True),
        lambda rng, s: _soft_labels(s, rng),
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "bce_logits_ls": (
        lambda: L.BinaryCrossentropy(from_logits=True, label_smoothing=0.2),
        lambda y, x: ref.binary_crossentropy(y, x, from_logits=True, label_smoothing=0.2),
        lambda rng, s: rng.integers(0, 2, s).astype(float),
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "bce_probs": (
        lambda: L.BinaryCrossentropy(),
        lambda y, x: ref.binary_crossentropy(y, x),
        lambda rng, s: _soft_labels(s, rng),
        lambda rng, s: rng.uniform(0.05, 0.95, s),
    ),
    "cce_logits": (  # soft labels whose rows do not sum to 1: the sum(y) factor
        lambda: L.CategoricalCrossentropy(from_logits=True),
        lambda y, x: ref.categorical_crossentropy(y, x, from_logits=True),
        lambda rng, s: _soft_labels(s, rng),
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "cce_logits_ls": (
        lambda: L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
        lambda y, x: ref.categorical_crossentropy(y, x, from_logits=True, label_smoothing=0.1),
        lambda rng, s: np.eye(s[-1])[rng.integers(0, s[-1], s[:-1])],
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "scce_logits": (
        lambda: L.SparseCategoricalCrossentropy(from_logits=True),
        lambda y, x: ref.sparse_categorical_crossentropy(y, x, from_logits=True),
        lambda rng, s: rng.integers(0, s[-1], s[:-1]),
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "scce_logits_ignore": (
        lambda: L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1),
        lambda y, x: ref.sparse_categorical_crossentropy(y, x, from_logits=True, ignore_class=1),
        lambda rng, s: rng.integers(0, s[-1], s[:-1]),
        lambda rng, s: rng.normal(0, 2, s),
    ),
    "poisson": (
        lambda: L.Poisson(),
        lambda y, x: ref.poisson(y, x),
        lambda rng, s: rng.poisson(2.0, s).astype(float),
        lambda rng, s: rng.uniform(0.5, 4.0, s),
    ),
}
IDS = list(CASES)
SHAPE = (7, 4)


def _data(case, shape=SHAPE, seed=0):
    make, reference, ymake, xmake = CASES[case]
    rng = np.random.default_rng(seed)
    return make(), reference, ymake(rng, shape), xmake(rng, shape)


def _fd_diag(f, x, h):
    """Central differences of the diagonal: d f(x)[i] / d x[i]."""
    x = np.array(x, dtype=np.float64)
    out = np.empty_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = f(x)[i]
        x[i] = old - h
        fm = f(x)[i]
        x[i] = old
        out[i] = (fp - fm) / (2 * h)
    return out


@pytest.mark.parametrize("case", IDS)
def test_grad_matches_finite_differences_of_weighted_sum(case):
    loss, reference, y, x = _data(case)
    w = np.random.default_rng(5).uniform(0.2, 2.0, SHAPE[0])
    g, h = loss.grad_hess(y, x, sample_weight=w)
    assert g.shape == h.shape == x.shape and g.dtype == h.dtype == np.float64
    fd = ref.fd_grad(lambda z: w * reference(y, z), x)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", IDS)
def test_hess_matches_finite_differences_of_grad(case):
    loss, _, y, x = _data(case)
    w = np.random.default_rng(6).uniform(0.2, 2.0, SHAPE[0])
    _, h = loss.grad_hess(y, x, sample_weight=w)
    fd = _fd_diag(lambda z: loss.grad_hess(y, z, sample_weight=w)[0], x, 1e-5)
    np.testing.assert_allclose(h, fd, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize("weights", ["none", "scalar", "rows", "class"])
def test_grad_is_value_and_grad_with_sum_reduction(case, weights):
    loss, _, y, x = _data(case)
    kw = {}
    if weights == "scalar":
        kw["sample_weight"] = 0.7
    elif weights == "rows":
        kw["sample_weight"] = np.linspace(0.1, 2.0, SHAPE[0])
    elif weights == "class":
        loss.class_weight = {0: 2.0, 2: 0.5}
    g, _ = loss.grad_hess(y, x, **kw)
    summed = L.Loss.__new__(type(loss))
    summed.__dict__.update(loss.__dict__, reduction="sum")
    _, g_ref = summed.value_and_grad(y, x, **kw)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", IDS)
def test_reduction_is_ignored(case):
    loss, _, y, x = _data(case)
    g, h = loss.grad_hess(y, x)
    loss.reduction = "sum_over_batch_size"
    g2, h2 = loss.grad_hess(y, x)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(h, h2)


@pytest.mark.parametrize("case", IDS)
def test_sample_weight_scales_rows(case):
    loss, _, y, x = _data(case)
    w = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 1.0, 0.25])
    g1, h1 = loss.grad_hess(y, x)
    gw, hw = loss.grad_hess(y, x, sample_weight=w)
    np.testing.assert_allclose(gw, g1 * w[:, None], rtol=1e-13, atol=0)
    np.testing.assert_allclose(hw, h1 * w[:, None], rtol=1e-13, atol=0)
    gs, hs = loss.grad_hess(y, x, sample_weight=2.5)
    np.testing.assert_allclose(gs, 2.5 * g1, rtol=1e-13)
    np.testing.assert_allclose(hs, 2.5 * h1, rtol=1e-13)


@pytest.mark.parametrize("case", IDS)
def test_float32_and_float64(case):
    loss, _, y, x = _data(case)
    g64, h64 = loss.grad_hess(y, x)
    g32, h32 = loss.grad_hess(y, x.astype(np.float32))
    assert g32.dtype == h32.dtype == np.float32 and g64.dtype == np.float64
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h32, h64, rtol=1e-4, atol=1e-6)
    gi, hi = loss.grad_hess(y, x.astype(np.float32), sample_weight=None)
    assert gi.dtype == np.float32
    # dtype= forces the compute dtype
    loss.dtype = "float64"
    g, _ = loss.grad_hess(y, x.astype(np.float32))
    assert g.dtype == np.float64


@pytest.mark.parametrize("case", IDS)
def test_non_contiguous_and_fortran_inputs(case):
    loss, _, y, x = _data(case)
    g, h = loss.grad_hess(y, x)
    big = np.zeros((SHAPE[0], 2 * SHAPE[1]))
    big[:, ::2] = x
    xs = big[:, ::2]
    assert not xs.flags.c_contiguous
    gs, hs = loss.grad_hess(y, xs)
    np.testing.assert_array_equal(gs, g)
    np.testing.assert_array_equal(hs, h)
    gf, hf = loss.grad_hess(np.asfortranarray(y), np.asfortranarray(x))
    np.testing.assert_array_equal(gf, g)
    np.testing.assert_array_equal(hf, h)
    assert gs.flags.c_contiguous and gf.flags.c_contiguous


@pytest.mark.parametrize("case", IDS)
def test_inputs_not_modified(case):
    loss, _, y, x = _data(case)
    x0, y0 = x.copy(), np.array(y, copy=True)
    loss.grad_hess(y, x, sample_weight=np.ones(SHAPE[0]))
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


def test_axis_is_moveaxis():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 3))
    y = rng.integers(0, 4, (5, 3))
    g, h = L.SparseCategoricalCrossentropy(from_logits=True, axis=0).grad_hess(y, x)
    g2, h2 = L.SparseCategoricalCrossentropy(from_logits=True).grad_hess(y, np.moveaxis(x, 0, -1))
    np.testing.assert_allclose(g, np.moveaxis(g2, -1, 0), rtol=1e-14)
    np.testing.assert_allclose(h, np.moveaxis(h2, -1, 0), rtol=1e-14)
    yc = rng.uniform(size=x.shape)
    g, h = L.CategoricalCrossentropy(from_logits=True, axis=0).grad_hess(yc, x)
    g2, h2 = L.CategoricalCrossentropy(from_logits=True).grad_hess(np.moveaxis(yc, 0, -1), np.moveaxis(x, 0, -1))
    np.testing.assert_allclose(g, np.moveaxis(g2, -1, 0), rtol=1e-14)
    np.testing.assert_allclose(h, np.moveaxis(h2, -1, 0), rtol=1e-14)


def test_golden_values():
    # BCE from logits: sigmoid(x) - y and sigmoid(x) sigmoid(-x); 1-D input is one
    # sample whose loss is the mean over its 2 elements: a factor 1/2.
    g, h = L.BinaryCrossentropy(from_logits=True).grad_hess([1.0, 0.0], np.array([0.0, 0.0]))
    np.testing.assert_allclose(g, [-0.25, 0.25])
    np.testing.assert_allclose(h, [0.125, 0.125])
    # SCCE at equal logits over 4 classes: p = 1/4
    g, h = L.SparseCategoricalCrossentropy(from_logits=True).grad_hess([2], np.zeros((1, 4)))
    np.testing.assert_allclose(g, [[0.25, 0.25, -0.75, 0.25]])
    np.testing.assert_allclose(h, [[0.1875] * 4])
    # Poisson at p = y: g = 1 - y/(y + eps) ~ 0, h = y / (y + eps)^2 ~ 1/y
    g, h = L.Poisson().grad_hess([[2.0]], np.array([[2.0]]))
    np.testing.assert_allclose(g, [[0.0]], atol=1e-7)
    np.testing.assert_allclose(h, [[0.5]], rtol=1e-6)


def test_bce_probs_outside_clip_is_zero():
    y = np.array([[1.0, 0.0, 1.0, 0.0]])
    p = np.array([[0.0, 1.0, 1e-9, 1 - 1e-12]])
    g, h = L.BinaryCrossentropy().grad_hess(y, p)
    np.testing.assert_array_equal(g, 0.0)
    np.testing.assert_array_equal(h, 0.0)


def test_ignore_class_rows_are_zero():
    x = RNG.normal(size=(6, 3))
    y = np.array([0, 1, 2, 1, 1, 0])
    g, h = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1).grad_hess(y, x)
    assert np.all(g[y == 1] == 0) and np.all(h[y == 1] == 0)
    assert np.all(h[y != 1] > 0)
    # ignore_class may lie outside [0, C)
    y2 = np.array([0, -1, 2, -1, 2, 0])
    g, h = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1).grad_hess(y2, x)
    assert np.all(g[y2 == -1] == 0) and np.all(h[y2 == -1] == 0)


def test_labels_out_of_range_raise():
    x = np.zeros((5, 3))
    scce = L.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"not integers in \[0, 3\).*first is 3 at index 2"):
        scce.grad_hess([0, 1, 3, 0, 5], x)
    with pytest.raises(ValueError, match="first is -1 at index 0"):
        scce.grad_hess([-1, 1, 2, 0, 1], x)
    with pytest.raises(ValueError, match="first is 1.5"):
        scce.grad_hess([0, 1.5, 2, 0, 1], x)
    with pytest.raises(ValueError, match=r"index \(1, 0\)"):
        scce.grad_hess([[0, 1], [7, 0]], np.zeros((2, 2, 3)))


def test_bad_input_errors():
    bce = L.BinaryCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match="same shape"):
        bce.grad_hess(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least one dimension"):
        bce.grad_hess(1.0, 0.5)
    with pytest.raises(ValueError, match="sample_weight"):
        bce.grad_hess(np.zeros((3, 1)), np.zeros((3, 1)), sample_weight=np.ones(4))
    with pytest.raises(TypeError, match="y_pred"):
        bce.grad_hess(np.zeros((3, 1)), np.array([["a"], ["b"], ["c"]]))
    with pytest.raises(ValueError, match="one label per row"):
        L.SparseCategoricalCrossentropy(from_logits=True).grad_hess([0, 1], np.zeros((3, 4)))


@pytest.mark.parametrize(
    "loss",
    [L.CategoricalCrossentropy(), L.SparseCategoricalCrossentropy(), L.KLDivergence(), L.BinaryFocalCrossentropy()],
    ids=lambda o: type(o).__name__,
)
def test_losses_without_gh_kernel_raise(loss):
    y = np.array([[0.0, 1.0], [1.0, 0.0]]) if loss._loss != "sparse_categorical_crossentropy" else np.array([1, 0])
    with pytest.raises(ValueError, match=rf"grad_hess is available for .*binary_crossentropy.*; not for {loss._loss}"):
        loss.grad_hess(y, np.full((2, 2), 0.5))


def test_empty_batch():
    g, h = L.SparseCategoricalCrossentropy(from_logits=True).grad_hess(np.zeros(0, int), np.zeros((0, 3), np.float32))
    assert g.shape == h.shape == (0, 3) and g.dtype == np.float32
    g, h = L.BinaryCrossentropy(from_logits=True).grad_hess(np.zeros((0, 1)), np.zeros((0, 1)))
    assert g.shape == (0, 1)


def test_nan_stays_in_its_row():
    x = RNG.normal(size=(4, 3))
    x[1, 2] = np.nan
    g, h = L.SparseCategoricalCrossentropy(from_logits=True).grad_hess([0, 1, 2, 0], x)
    assert np.isnan(g[1]).any() and np.isnan(h[1]).any()
    assert np.isfinite(np.delete(g, 1, 0)).all() and np.isfinite(np.delete(h, 1, 0)).all()
    xb = RNG.normal(size=(4, 1))
    xb[2, 0] = np.nan
    g, h = L.BinaryCrossentropy(from_logits=True).grad_hess(np.ones((4, 1)), xb)
    assert np.isnan(g[2, 0]) and np.isnan(h[2, 0]) and np.isfinite(np.delete(g, 2)).all()


@pytest.mark.parametrize("case", ["bce_logits", "bce_probs", "poisson", "scce_logits", "cce_logits"])
@pytest.mark.parametrize("weighted", [False, True])
def test_parallel_path_equals_serial_rows(case, weighted):
    """Above the serial cut-over the kernel runs row chunks in prange: same numbers."""
    K = 1 if case in ("bce_logits", "bce_probs", "poisson") else 10
    R = 50_000 // K
    loss, _, y, x = _data(case, (R, K), seed=7)
    x = x.astype(np.float32)
    w = np.random.default_rng(8).uniform(0.5, 1.5, R) if weighted else None
    g, h = loss.grad_hess(y, x, sample_weight=w)
    step = 997
    for lo in range(0, R, step):
        wi = None if w is None else w[lo : lo + step]
        gi, hi = loss.grad_hess(y[lo : lo + step], x[lo : lo + step], sample_weight=wi)
        np.testing.assert_array_equal(g[lo : lo + step], gi)
        np.testing.assert_array_equal(h[lo : lo + step], hi)


def test_parallel_bad_label_names_first_row():
    R, C = 8000, 10
    y = np.zeros(R, np.int64)
    y[6500] = 10
    y[7000] = -3
    with pytest.raises(ValueError, match="2 label.*first is 10 at index 6500"):
        L.SparseCategoricalCrossentropy(from_logits=True).grad_hess(y, np.zeros((R, C), np.float32))


def test_large_logits_stay_finite():
    x = np.array([[800.0, -800.0, 0.0]], np.float32)
    g, h = L.SparseCategoricalCrossentropy(from_logits=True).grad_hess([1], x)
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0]], atol=1e-6)
    assert np.isfinite(h).all() and (h >= 0).all()
    g, h = L.BinaryCrossentropy(from_logits=True).grad_hess([[1.0], [0.0]], np.array([[90.0], [-90.0]], np.float32))
    np.testing.assert_allclose(g, 0.0, atol=1e-30)
    assert (h > 0).all()  # sigmoid(x) sigmoid(-x) keeps its tiny value, no 1 - s cancellation


def _gh_classes():
    out = []
    for obj in vars(L).values():
        if isinstance(obj, type) and issubclass(obj, L.Loss) and obj._loss in _registry.REGISTRY:
            if any("gh" in ks for ks in _registry.REGISTRY[obj._loss].kernels.values()):
                out.append(obj)
    return out


@pytest.mark.parametrize("cls", _gh_classes(), ids=lambda c: c.__name__)
def test_every_registered_gh_kernel_agrees_with_value_and_grad(cls):
    """The core serves every "gh" registry entry (other families included)."""
    rng = np.random.default_rng(11)
    y = rng.uniform(0.5, 1.5, (6, 3))
    x = rng.uniform(0.5, 1.5, (6, 3))
    w = rng.uniform(0.5, 2.0, 6)
    for dt in (np.float32, np.float64):
        g, h = cls().grad_hess(y, x.astype(dt), sample_weight=w)
        assert g.dtype == h.dtype == dt and g.shape == h.shape == x.shape
        _, g_ref = cls(reduction="sum").value_and_grad(y, x.astype(dt), sample_weight=w)
        np.testing.assert_allclose(g, g_ref, rtol=1e-5 if dt == np.float32 else 1e-12, atol=1e-6 if dt == np.float32 else 1e-14)


def test_module_level_import():
    assert hasattr(fastloss.losses.Loss, "grad_hess")
