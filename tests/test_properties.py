"""Hypothesis property tests: random small shapes and bounded floats vs the float64 reference."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastloss import losses as L

import reference as R

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.tuples(st.integers(1, 4), st.integers(1, 5))
reductions = st.sampled_from(["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"])


def _arr(shape, lo, hi):
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False, allow_infinity=False))


@st.composite
def dense_inputs(draw, lo=0.0, hi=1.0, soft=True):
    shape = draw(shapes)
    yt = draw(_arr(shape, 0.0, 1.0)) if soft else draw(hnp.arrays(np.int8, shape, elements=st.integers(0, 1))).astype(float)
    yp = draw(_arr(shape, lo, hi))
    sw = draw(st.none() | _arr(shape[:1], 0.0, 3.0))
    return yt, yp, sw


@SETTINGS
@given(dense_inputs(), st.booleans(), st.sampled_from([0.0, 0.3]), reductions)
def test_bce_probs(data, _, ls, reduction):
    yt, yp, sw = data
    got = L.BinaryCrossentropy(label_smoothing=ls, reduction=reduction)(yt, yp, sample_weight=sw)
    want = R.reduce(R.binary_crossentropy(yt, yp, label_smoothing=ls), sw, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@SETTINGS
@given(dense_inputs(-30.0, 30.0), reductions)
def test_bce_logits_value_and_grad(data, reduction):
    yt, yp, sw = data
    loss, grad = L.BinaryCrossentropy(from_logits=True, reduction=reduction).value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(loss, R.reduce(R.binary_crossentropy(yt, yp, from_logits=True), sw, reduction), rtol=1e-9, atol=1e-12)
    # analytic: d/dx = (sigmoid(x) - y) / C * row factor
    w = np.ones(yp.shape[0]) if sw is None else sw
    if reduction == "none" or reduction == "sum":
        row = w
    elif reduction == "mean_with_sample_weight" and sw is not None:
        # w / sum(w), the weights first scaled by a power of two (exact): 1 / sum(w)
        # overflows for subnormal weights (hypothesis: w = 5e-324)
        m = np.abs(sw).max()
        w2 = np.ldexp(sw, -np.frexp(m)[1]) if m > 0 else sw
        row = np.zeros_like(w2) if w2.sum() == 0 else w2 / w2.sum()
    else:
        row = w / yp.shape[0]
    want = (R._sigmoid(yp) - yt) / yp.shape[1] * row[:, None]
    np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-12)


@st.composite
def focal_probs(draw):
    # exact 0/1 allowed, but not 0 < p (or y) < 1e-6 (or the mirror near 1): there Keras' literal
    # 1 - (y p + (1 - y)(1 - p)) rounds to 0 while fastloss keeps the exact p, a harmless
    # difference of up to eps * p**gamma.
    shape = draw(shapes)
    el = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-6, 1 - 1e-6))
    yt = draw(hnp.arrays(np.float64, shape, elements=el))  # soft labels: same rule
    yp = draw(hnp.arrays(np.float64, shape, elements=el))
    sw = draw(st.none() | _arr(shape[:1], 0.0, 3.0))
    return yt, yp, sw


@SETTINGS
@given(focal_probs(), st.booleans(), st.floats(0.0, 4.0), st.floats(0.0, 1.0), reductions)
def test_binary_focal_probs(data, bal, gamma, alpha, reduction):
    yt, yp, sw = data
    got = L.BinaryFocalCrossentropy(apply_class_balancing=bal, alpha=alpha, gamma=gamma, reduction=reduction)(yt, yp, sample_weight=sw)
    want = R.reduce(R.binary_focal_crossentropy(yt, yp, bal, alpha, gamma), sw, reduction)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)


@SETTINGS
@given(dense_inputs(-20.0, 20.0), st.booleans(), st.floats(0.0, 3.0), st.floats(0.0, 1.0))
def test_sigmoid_focal(data, logits, gamma, alpha):
    yt, yp, sw = data
    if not logits:
        yp = 1.0 / (1.0 + np.exp(-yp))
    got = L.SigmoidFocalCrossEntropy(from_logits=logits, alpha=alpha, gamma=gamma)(yt, yp)
    np.testing.assert_allclose(got, R.sigmoid_focal_crossentropy(yt, yp, alpha, gamma, logits), rtol=1e-8, atol=1e-12)


@st.composite
def categorical_inputs(draw, lo, hi):
    n, c = draw(st.integers(1, 4)), draw(st.integers(2, 5))
    yt = draw(_arr((n, c), 0.0, 1.0))
    yp = draw(_arr((n, c), lo, hi))
    return yt, yp


@SETTINGS
@given(categorical_inputs(-30.0, 30.0), st.sampled_from([0.0, 0.2]))
def test_cce_logits_value_and_grad(data, ls):
    yt, yp = data
    loss, grad = L.CategoricalCrossentropy(from_logits=True, label_smoothing=ls, reduction="sum").value_and_grad(yt, yp)
    np.testing.assert_allclose(loss, R.categorical_crossentropy(yt, yp, True, ls).sum(), rtol=1e-9, atol=1e-10)
    C = yp.shape[1]
    ys = yt * (1 - ls) + ls / C
    want = ys.sum(-1, keepdims=True) * R._softmax(yp) - ys  # documented exact derivative
    np.testing.assert_allclose(grad, want, rtol=1e-8, atol=1e-10)


@SETTINGS
@given(categorical_inputs(1e-3, 1.0), st.floats(0.0, 3.0))
def test_cce_and_categorical_focal_probs(data, gamma):
    yt, yp = data
    np.testing.assert_allclose(
        L.CategoricalCrossentropy(reduction="none")(yt, yp), R.categorical_crossentropy(yt, yp), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        L.CategoricalFocalCrossentropy(gamma=gamma, reduction="none")(yt, yp),
        R.categorical_focal_crossentropy(yt, yp, gamma=gamma),
        rtol=1e-8,
        atol=1e-12,
    )


@SETTINGS
@given(categorical_inputs(0.0, 1.0), st.booleans(), st.data())
def test_scce(data, logits, d):
    _, yp = data
    n, c = yp.shape
    lab = np.array(d.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    if logits:
        yp = yp * 40 - 20
    loss, grad = L.SparseCategoricalCrossentropy(from_logits=logits, reduction="sum").value_and_grad(lab, yp)
    np.testing.assert_allclose(loss, R.sparse_categorical_crossentropy(lab, yp, logits).sum(), rtol=1e-9, atol=1e-10)
    if logits:
        np.testing.assert_allclose(grad, R._softmax(yp) - np.eye(c)[lab], rtol=1e-8, atol=1e-10)


@SETTINGS
@given(categorical_inputs(0.0, 1.0))
def test_kld(data):
    yt, yp = data
    np.testing.assert_allclose(L.KLDivergence(reduction="none")(yt, yp), R.kl_divergence(yt, yp), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(categorical_inputs(0.0, 10.0))
def test_poisson(data):
    yt, yp = data
    yt = np.round(yt * 5)
    loss, grad = L.Poisson(reduction="sum").value_and_grad(yt, yp)
    np.testing.assert_allclose(loss, R.poisson(yt, yp).sum(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad, (1.0 - yt / (yp + 1e-7)) / yp.shape[1], rtol=1e-8, atol=1e-10)


@SETTINGS
@given(dense_inputs(0.0, 1.0, soft=False), st.sampled_from([L.BinaryCrossentropy, L.BinaryFocalCrossentropy, L.Poisson]))
def test_float32_close_to_float64(data, cls):
    yt, yp, sw = data
    yp32 = yp.astype(np.float32)
    a = cls(reduction="none")(yt, yp32)
    b = cls(reduction="none")(yt, yp32.astype(np.float64))
    assert a.dtype == np.float32
    # At the upper clip bound float32's 1 - 1e-7 rounds to 1 - 2**-23 (as in Keras), so
    # -log(1 - clip(p)) is 15.94 instead of 16.12: up to 0.18 per element, and the
    # per-sample loss is a mean over elements. Away from the bound: rtol 1e-5.
    at_bound = (yp32 >= np.float32(1 - 1e-7)).any(axis=-1)
    np.testing.assert_allclose(a[~at_bound], b[~at_bound], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[at_bound], b[at_bound], rtol=1e-5, atol=0.19)
