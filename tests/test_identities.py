"""Identities that must hold exactly or to rounding: focal(gamma=0) == BCE,
logit shift invariance, SCCE == CCE on one-hot labels, masked == sliced,
axis=k == moveaxis, class_weight == sample_weight, grad_out reuse."""

import numpy as np
import pytest

from fastloss import losses as L

import reference as R
from _cases import CASE_BY_ID, CASES, expected, make_inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none"])
def test_binary_focal_gamma0_equals_bce(dtype, from_logits, ls, reduction):
    rng = np.random.default_rng(1)
    yt = rng.integers(0, 2, (6, 5)).astype(np.float64)
    yp = (rng.normal(0, 3, (6, 5)) if from_logits else rng.uniform(0.02, 0.98, (6, 5))).astype(dtype)
    if from_logits:  # far outside the probabilities' clip [eps, 1 - eps] too
        yp[0] = [-40.0, -20.0, 17.0, 20.0, 40.0]
    sw = rng.uniform(0.5, 1.5, 6)
    f = L.BinaryFocalCrossentropy(gamma=0.0, from_logits=from_logits, label_smoothing=ls, reduction=reduction)
    b = L.BinaryCrossentropy(from_logits=from_logits, label_smoothing=ls, reduction=reduction)
    lf, gf = f.value_and_grad(yt, yp, sample_weight=sw)
    lb, gb = b.value_and_grad(yt, yp, sample_weight=sw)
    if dtype == np.float64:
        # from logits both take the cross-entropy from the logits (Keras 3 on TensorFlow), so the
        # identity holds at any logit, also where a clipped sigmoid would have saturated.
        np.testing.assert_allclose(lf, lb, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gf, gb, rtol=1e-10, atol=1e-12)
    else:
        # float32: both within the registry's float32 tolerance (rtol 1e-5) of the float64 truth.
        l64, g64 = b.value_and_grad(yt, yp.astype(np.float64), sample_weight=sw)
        for l, g in ((lf, gf), (lb, gb)):
            np.testing.assert_allclose(l, l64, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(g, g64, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [L.BinaryFocalCrossentropy, L.SigmoidFocalCrossEntropy, L.BinaryCrossentropy])
def test_float32_large_logits_keep_relative_precision(cls):
    """losses.py: 'Sigmoids are evaluated as sigmoid(x) and sigmoid(-x) separately, so 1 - p keeps
    full relative precision for large logits'. Check float32 value and gradient against float64."""
    x = np.array([[4.0, 6.35, 9.0, 12.0, -4.0, -6.35, -9.0, -12.0]])
    y = np.array([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]])  # the hard side: loss ~ |x|
    obj = cls(from_logits=True, reduction="none")
    l32, g32 = obj.value_and_grad(y, x.astype(np.float32))
    l64, g64 = obj.value_and_grad(y, x.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-5)


@pytest.mark.parametrize("case_id", ["cce_logits", "cce_logits_ls", "scce_logits", "scce_logits_ignore2", "cfce_logits_ls"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logit_shift_invariance(case_id, dtype):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(2)
    yt, yp = make_inputs(case, rng, (6, 5), np.float64)
    shift = rng.uniform(-50, 50, (6, 1))
    obj = case.make("none")
    l0, g0 = obj.value_and_grad(yt, yp.astype(dtype))
    l1, g1 = obj.value_and_grad(yt, (yp + shift).astype(dtype))
    t = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(l1, l0, **t)
    np.testing.assert_allclose(g1, g0, **t)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_scce_equals_cce_on_one_hot(from_logits, reduction):
    rng = np.random.default_rng(3)
    C = 5
    lab = rng.integers(0, C, 8)
    if from_logits:
        yp = rng.normal(0, 2, (8, C))
    else:  # normalized rows away from the clip: then clip-then-normalize == normalize-then-clip
        yp = rng.uniform(0.05, 1.0, (8, C))
        yp /= yp.sum(-1, keepdims=True)
    sw = rng.uniform(0.2, 2, 8)
    ls, gs = L.SparseCategoricalCrossentropy(from_logits=from_logits, reduction=reduction).value_and_grad(lab, yp, sw)
    lc, gc = L.CategoricalCrossentropy(from_logits=from_logits, reduction=reduction).value_and_grad(np.eye(C)[lab], yp, sw)
    np.testing.assert_allclose(ls, lc, rtol=1e-10)
    if from_logits:
        np.testing.assert_allclose(gs, gc, rtol=1e-10, atol=1e-13)
    else:
        # Gradients differ off the simplex (CCE normalizes, SCCE's log(sum c) term); their
        # projections on the simplex' tangent space (zero-sum directions) agree.
        P = np.eye(C) - 1.0 / C
        np.testing.assert_allclose(gs @ P, gc @ P, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore_class", [-1, 255, 0])
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_equals_sliced(from_logits, ignore_class, weighted):
    rng = np.random.default_rng(4)
    C, N = 4, 10
    lab = rng.integers(1, C, N)
    ign = np.zeros(N, bool)
    ign[[0, 3, 4, 8]] = True
    lab[ign] = ignore_class
    yp = rng.normal(0, 2, (N, C)) if from_logits else rng.uniform(0.05, 0.95, (N, C))
    sw = rng.uniform(0.2, 2, N) if weighted else None
    keep = ~ign
    for red in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        lm, gm = L.SparseCategoricalCrossentropy(from_logits, ignore_class=ignore_class, reduction=red).value_and_grad(
            lab, yp, sample_weight=sw
        )
        ls, gs = L.SparseCategoricalCrossentropy(from_logits, reduction=red).value_and_grad(
            lab[keep], yp[keep], sample_weight=None if sw is None else sw[keep]
        )
        np.testing.assert_allclose(lm, ls, rtol=1e-10, err_msg=red)
        np.testing.assert_allclose(gm[keep], gs, rtol=1e-10, atol=1e-14, err_msg=red)
        assert np.all(gm[ign] == 0)
    none = L.SparseCategoricalCrossentropy(from_logits, ignore_class=ignore_class, reduction="none")(lab, yp)
    assert np.all(none[ign] == 0)


def test_all_rows_ignored_gives_zero():
    yp = np.full((3, 4), 0.25)
    loss, grad = L.SparseCategoricalCrossentropy(ignore_class=-1).value_and_grad([-1, -1, -1], yp)
    assert float(loss) == 0.0 and np.all(grad == 0)


@pytest.mark.parametrize(
    "case_id", ["bce", "bce_logits_ls", "cce", "cce_logits", "scce", "scce_logits_ignore2", "bfce_bal_g3_ls", "cfce_logits_ls"]
)
@pytest.mark.parametrize("axis", [0, 1, -2])
def test_axis_equals_moveaxis(case_id, axis):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(5)
    yt_last, yp_last = make_inputs(case, rng, (3, 2, 4), np.float64)  # class axis last
    ax = axis % 3
    yp = np.moveaxis(yp_last, -1, ax)
    yt = yt_last if case.sparse else np.moveaxis(yt_last, -1, ax)
    sw = rng.uniform(0.3, 2, (3, 2))
    for red in ("sum_over_batch_size", "none"):
        obj_ax = case.make(red, axis=axis)
        obj = case.make(red)
        la, ga = obj_ax.value_and_grad(yt, yp, sample_weight=sw)
        l0, g0 = obj.value_and_grad(yt_last, yp_last, sample_weight=sw)
        np.testing.assert_allclose(la, l0, rtol=1e-12, atol=1e-15)
        assert ga.shape == yp.shape
        np.testing.assert_allclose(ga, np.moveaxis(g0, -1, ax), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(la, expected(case, yt, yp, sw, red, axis=axis), rtol=1e-10)


@pytest.mark.parametrize(
    "case_id", ["bce", "cce", "cce_logits_ls", "scce", "scce_logits", "bfce", "cfce", "sfce_logits", "kld", "poisson"]
)
@pytest.mark.parametrize("cw", [{0: 2.0, 2: 0.5}, [0.5, 1.5, 3.0, 0.25]], ids=["dict", "list"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight", "none"])
def test_class_weight_equals_sample_weight(case_id, cw, reduction):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(6)
    yt, yp = make_inputs(case, rng, (8, 4), np.float64)
    if case.kind in ("kld", "poisson"):
        yt = np.eye(4)[rng.integers(0, 4, 8)] * 0.9 + 0.025  # argmax is well-defined
    mapped = R.class_weight_to_sample_weight(cw, yt, case.sparse)
    sw = rng.uniform(0.2, 2, 8)
    for extra in (None, sw):
        got, ggot = case.make(reduction, class_weight=cw).value_and_grad(yt, yp, sample_weight=extra)
        w = mapped if extra is None else mapped * extra
        want, gwant = case.make(reduction).value_and_grad(yt, yp, sample_weight=w)
        np.testing.assert_allclose(got, want, rtol=1e-10)
        np.testing.assert_allclose(ggot, gwant, rtol=1e-10, atol=1e-14)


def test_class_weight_binary_column_targets_are_rounded():
    """Dense targets with last dim 1: squeeze then round (Keras fit)."""
    yt = np.array([[0.0], [1.0], [0.9], [0.2]])
    yp = np.array([[0.3], [0.6], [0.7], [0.1]])
    got = L.BinaryCrossentropy(reduction="none", class_weight={0: 2.0, 1: 0.5})(yt, yp)
    want = R.binary_crossentropy(yt, yp) * np.array([2.0, 0.5, 0.5, 2.0])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_grad_out_reuse(case):
    rng = np.random.default_rng(7)
    yt, yp = make_inputs(case, rng, (5, 3), np.float32)
    obj = case.make("sum_over_batch_size")
    l0, g0 = obj.value_and_grad(yt, yp)
    buf = np.full_like(yp, np.nan)
    for _ in range(2):
        l1, g1 = obj.value_and_grad(yt, yp, grad_out=buf)
        assert g1 is buf
        np.testing.assert_array_equal(l1, l0)
        np.testing.assert_array_equal(buf, g0)


def test_grad_out_with_axis():
    rng = np.random.default_rng(8)
    yp = rng.normal(0, 1, (4, 3, 2))
    yt = rng.integers(0, 4, (3, 2))
    obj = L.SparseCategoricalCrossentropy(from_logits=True, axis=0)
    l0, g0 = obj.value_and_grad(yt, yp)
    buf = np.empty_like(yp)
    l1, g1 = obj.value_and_grad(yt, yp, grad_out=buf)
    assert g1 is buf
    np.testing.assert_array_equal(buf, g0)
