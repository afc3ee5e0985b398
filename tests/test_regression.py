"""Regression, similarity and hinge losses (numba_cpu/regression.py): values
against the float64 reference, gradients against finite differences and
against TensorFlow's GradientTape (kinks included), Keras golden values,
identities, errors, layouts, NaN rows, the parallel path."""

import inspect
from dataclasses import dataclass, field

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

import reference as R
from _cases import make_weight

REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"]
DTYPES = [np.float32, np.float64]
WEIGHTS = ["unweighted", "per_sample", "scalar"]


@dataclass(frozen=True)
class Case:
    id: str
    cls: type
    ref: str
    kind: str
    kw: dict = field(default_factory=dict)

    def make(self, reduction="sum_over_batch_size", **extra):
        return self.cls(reduction=reduction, **self.kw, **extra)

    def ref_fn(self):
        fn = R.REFERENCES[self.ref]
        return lambda yt, yp: fn(yt, yp, **self.kw)

    def __str__(self):
        return self.id


CASES = [
    Case("mse", L.MeanSquaredError, "mean_squared_error", "real"),
    Case("mae", L.MeanAbsoluteError, "mean_absolute_error", "real"),
    Case("mape", L.MeanAbsolutePercentageError, "mean_absolute_percentage_error", "real"),
    Case("msle", L.MeanSquaredLogarithmicError, "mean_squared_logarithmic_error", "positive"),
    Case("huber", L.Huber, "huber", "real"),
    Case("huber_d05", L.Huber, "huber", "real", {"delta": 0.5}),
    Case("log_cosh", L.LogCosh, "log_cosh", "real"),
    Case("cosine", L.CosineSimilarity, "cosine_similarity", "normal"),
    Case("hinge_pm1", L.Hinge, "hinge", "pm1"),
    Case("hinge_01", L.Hinge, "hinge", "01"),
    Case("sqhinge_pm1", L.SquaredHinge, "squared_hinge", "pm1"),
    Case("sqhinge_01", L.SquaredHinge, "squared_hinge", "01"),
    Case("chinge", L.CategoricalHinge, "categorical_hinge", "onehot"),
]
CASE_BY_ID = {c.id: c for c in CASES}
ELEMENTWISE = [c for c in CASES if c.kind not in ("normal", "onehot")]

# Registry name of each class (for the grad_hess kernels).
GH_NAME = {
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "huber": "huber",
    "huber_d05": "huber",
    "log_cosh": "log_cosh",
    "hinge_pm1": "hinge",
    "hinge_01": "hinge",
    "sqhinge_pm1": "squared_hinge",
    "sqhinge_01": "squared_hinge",
}


def _rng(*key):
    return np.random.default_rng(abs(hash(tuple(str(k) for k in key))) % (2**32))


def _bands(rng, shape):
    """Magnitudes away from every kink (0, 0.5, 1): [0.1,0.4] U [0.6,0.9] U [1.1,2.5], random sign."""
    lo = np.array([0.1, 0.6, 1.1])
    hi = np.array([0.4, 0.9, 2.5])
    k = rng.integers(0, 3, shape)
    m = rng.uniform(lo[k], hi[k])
    return m * rng.choice([-1.0, 1.0], shape)


def make_inputs(case, rng, shape=(6, 4), dtype=np.float64):
    """(y_true, y_pred) with every element away from the loss' kinks."""
    if case.kind == "real":
        yt = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 3.0, shape)
        yp = yt + _bands(rng, shape)
    elif case.kind == "positive":
        yt = rng.uniform(0.1, 3.0, shape)
        yp = rng.uniform(0.1, 3.0, shape)
    elif case.kind == "normal":
        yt = rng.normal(0, 1, shape)
        yp = rng.normal(0, 1, shape)
    elif case.kind in ("pm1", "01"):
        s = rng.choice([-1.0, 1.0], shape)
        yp = s * (1.0 - _bands(rng, shape))  # margin 1 - y p away from 0
        yt = s if case.kind == "pm1" else (s + 1.0) / 2.0
    elif case.kind == "onehot":
        yt = np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
        yp = rng.normal(0, 1, shape)
    else:  # pragma: no cover
        raise AssertionError(case.kind)
    return yt, np.asarray(yp, dtype=dtype)


def expected(case, yt, yp, sw, reduction):
    return R.reduce(case.ref_fn()(yt, np.asarray(yp, np.float64)), sw, reduction)


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_value_matches_reference(case, dtype, reduction, weight):
    rng = _rng(case.id, reduction, weight)
    yt, yp = make_inputs(case, rng, (6, 4), dtype)
    sw = make_weight(weight, (6,), rng)
    obj = case.make(reduction)
    got = obj(yt, yp, sample_weight=sw)
    want = expected(case, yt, yp, sw, reduction)
    assert np.asarray(got).dtype == np.dtype(dtype)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, **tol(dtype))
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_array_equal(loss, got)
    assert grad.dtype == np.dtype(dtype) and grad.shape == yp.shape


@pytest.mark.parametrize("weight_shape", [None, (2, 3), (2, 1), ()])
@pytest.mark.parametrize("case_id", ["mse", "huber", "log_cosh", "cosine", "hinge_01", "chinge"])
def test_3d_inputs_and_weight_broadcast(case_id, weight_shape):
    case = CASE_BY_ID[case_id]
    rng = _rng("3d", case_id, weight_shape)
    yt, yp = make_inputs(case, rng, (2, 3, 4))
    sw = None if weight_shape is None else rng.uniform(0.1, 2.0, weight_shape)
    for reduction in ("sum_over_batch_size", "none", "mean_with_sample_weight"):
        loss, grad = case.make(reduction).value_and_grad(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(loss, expected(case, yt, yp, sw, reduction), rtol=1e-10, atol=1e-12)
        f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, reduction)
        np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_grad_matches_finite_differences(case, reduction, weight):
    rng = _rng("grad", case.id, reduction, weight)
    yt, yp = make_inputs(case, rng, (5, 3))
    sw = make_weight(weight, (5,), rng)
    obj = case.make(reduction)
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, reduction)
    np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)
    # float32: the same point, close to the float64 gradient
    _, g32 = obj.value_and_grad(yt, yp.astype(np.float32), sample_weight=sw)
    _, g64 = obj.value_and_grad(yt, yp.astype(np.float32).astype(np.float64), sample_weight=sw)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


def test_log_cosh_precision_small_and_large_errors():
    """Full relative precision for tiny errors (where Keras' formula cancels),
    no overflow for huge ones; value and tanh gradient."""
    x = np.concatenate([np.geomspace(1e-7, 40, 400), -np.geomspace(1e-7, 40, 400), [0.0, 1e4, -1e30]])
    for dt, ulps in ((np.float32, 8), (np.float64, 8)):
        xx = x.astype(dt)
        ref = R._log_cosh_elem(xx.astype(np.float64))
        loss, grad = L.LogCosh(reduction="sum").value_and_grad(np.zeros((xx.size, 1)), xx[:, None])
        per = L.LogCosh(reduction=None)(np.zeros((xx.size, 1)), xx[:, None])
        np.testing.assert_allclose(per, ref, rtol=ulps * np.finfo(dt).eps, atol=0)
        np.testing.assert_allclose(grad[:, 0], np.tanh(xx.astype(np.float64)), rtol=4 * np.finfo(dt).eps, atol=0)


# --------------------------------------------------------------------------- TensorFlow parity


@pytest.fixture(scope="module")
def tfk():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    return tf, keras


def tf_value_and_grad(tfk, cls_name, yt, yp, reduction="sum", sample_weight=None, **kw):
    tf, keras = tfk
    obj = getattr(keras.losses, cls_name)(reduction=reduction, **kw)
    x = tf.constant(np.asarray(yp, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = obj(tf.constant(np.asarray(yt, np.float32)), x, sample_weight=sample_weight)
    return loss.numpy(), tape.gradient(loss, x).numpy()


def assert_tf_parity(tfk, cls, yt, yp, reduction="sum", sample_weight=None, rtol=1e-6, atol=1e-7, **kw):
    yp = np.asarray(yp, np.float32)
    want_l, want_g = tf_value_and_grad(tfk, cls.__name__, yt, yp, reduction, sample_weight, **kw)
    got_l, got_g = cls(reduction=reduction, **kw).value_and_grad(yt, yp, sample_weight=sample_weight)
    np.testing.assert_allclose(got_l, want_l, rtol=rtol, atol=atol)
    np.testing.assert_allclose(got_g, want_g, rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean_with_sample_weight"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_tf_parity_random(tfk, case, reduction):
    rng = _rng("tf", case.id, reduction)
    yt, yp = make_inputs(case, rng, (8, 5), np.float32)
    sw = rng.uniform(0.1, 2.0, 8).astype(np.float32)
    assert_tf_parity(tfk, case.cls, yt, yp, reduction, sw, rtol=2e-5, atol=1e-7, **case.kw)


def test_tf_parity_at_kinks(tfk):
    """TF's choice of (sub)gradient where the loss is not differentiable."""
    z = np.zeros((1, 6))
    # Huber: |e| == delta (both sides agree), e == 0, NaN-free
    assert_tf_parity(tfk, L.Huber, z, [[1.0, -1.0, 0.0, 2.0, -0.5, 0.5]])
    assert_tf_parity(tfk, L.Huber, z, [[0.5, -0.5, 0.0, 2.0, -0.25, 0.75]], delta=0.5)
    # MAE: e == 0 -> sign(0) = 0
    assert_tf_parity(tfk, L.MeanAbsoluteError, [[1.0, 0.0, 0.0, -2.0, 3.0, 0.5]], [[1.0, 0.0, 2.0, -2.0, 1.0, 0.5]])
    # MAPE: e == 0, |y| < eps (divided by eps), y == 0
    assert_tf_parity(
        tfk, L.MeanAbsolutePercentageError, [[1.0, 0.0, 1e-8, -2.0, 0.0, 5.0]], [[1.0, 0.0, 1.0, -1.0, -1.0, 5.0]],
        rtol=1e-6, atol=1e-3,
    )
    # MSLE: p == eps (tie: gradient flows), p < eps, p < 0 (clipped: 0)
    eps = np.float32(1e-7)
    assert_tf_parity(tfk, L.MeanSquaredLogarithmicError, [[1.0, 0.0, 0.0, 1.0, 2.0, 0.0]], [[eps, 0.0, -1.0, eps, 1e-9, 3.0]])
    # Hinge / SquaredHinge: margin exactly 0 (TF: gradient on the active side),
    # binary labels mapped, non-binary labels left alone
    assert_tf_parity(tfk, L.Hinge, [[1.0, 0.0, 1.0, 0.0, 1.0, 1.0]], [[1.0, -1.0, 0.5, 2.0, -3.0, 1.0]])
    assert_tf_parity(tfk, L.Hinge, [[2.0, 0.0, 1.0, -1.0, 0.5, 1.0]], [[0.5, -1.0, 0.5, -1.0, 2.0, 1.0]])
    assert_tf_parity(tfk, L.SquaredHinge, [[1.0, 0.0, 1.0, 0.0, 1.0, 1.0]], [[1.0, -1.0, 0.5, 2.0, -3.0, 1.0]])
    assert_tf_parity(tfk, L.SquaredHinge, [[2.0, 0.0, 1.0, -1.0, 0.5, 1.0]], [[0.5, -1.0, 0.5, -1.0, 2.0, 1.0]])
    # CategoricalHinge: ties in the max split the gradient; margin exactly 0 (tie -> active)
    yt = [[0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    yp = [[0.5, 0.5, 0.5], [0.2, 0.9, 0.1], [1.0, 2.0, 2.0], [0.0, 1.0, 0.0], [3.0, 1.0, 0.5]]
    assert_tf_parity(tfk, L.CategoricalHinge, yt, yp)
    # CosineSimilarity: zero vector y_pred (gradient -1e7 y/|y|), tiny y_pred,
    # zero y_true, a regular row
    yt = [[0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 2, 3], [0, 0, 0]]
    yp = [[0, 0, 0], [1e-9, 0, 0], [1, 2, 3], [3, 4, 5], [0, 0, 0]]
    assert_tf_parity(tfk, L.CosineSimilarity, yt, yp, rtol=2e-6)


def test_tf_parity_1d_and_values_keras_docstrings(tfk):
    for cls, yt, yp in (
        (L.MeanSquaredError, [1.0, 0.0, 1.0], [0.9, 0.1, 0.8]),
        (L.Huber, [0.0, 1.0, 3.0], [0.5, 0.2, 0.0]),
        (L.LogCosh, [0.0, 1.0], [1.0, 1.0]),
        (L.CosineSimilarity, [1.0, 2.0], [2.0, 1.0]),
    ):
        assert_tf_parity(tfk, cls, yt, yp, reduction="sum_over_batch_size")


# --------------------------------------------------------------------------- Keras golden values


def test_keras_docstring_values():
    f32 = lambda v: np.array(v, np.float32)
    assert np.shape(L.MeanSquaredError()([1.0, 0.0, 1.0], f32([0.9, 0.1, 0.8]))) == ()
    np.testing.assert_allclose(L.MeanSquaredError()([1.0, 0.0, 1.0], f32([0.9, 0.1, 0.8])), 0.02, rtol=1e-6)
    np.testing.assert_allclose(L.MeanAbsoluteError()([1.0, 0.3, 1.0], f32([1.9, 0.3, 1.8])), 0.5666667, rtol=1e-6)
    np.testing.assert_allclose(
        L.MeanAbsolutePercentageError()([100.0, 200.0, 300.0], f32([90.0, 210.0, 310.0])), 6.111111, rtol=1e-6
    )
    np.testing.assert_allclose(np.mean(fastloss.huber([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])), 0.155, rtol=1e-6)
    np.testing.assert_allclose(np.mean(fastloss.log_cosh([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]])), 0.108, atol=5e-4)
    got = fastloss.cosine_similarity([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]], f32([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]]))
    np.testing.assert_allclose(got, [-0.0, -0.99999994, 0.99999994], rtol=1e-7, atol=1e-7)


def test_signatures_match_keras():
    keras = pytest.importorskip("keras")
    for c in {c.cls for c in CASES}:
        ours = inspect.signature(c.__init__).parameters
        theirs = inspect.signature(getattr(keras.losses, c.__name__).__init__).parameters
        for name, p in theirs.items():
            assert name in ours, (c.__name__, name)
            assert ours[name].default == p.default, (c.__name__, name, ours[name].default, p.default)


def test_functional_forms():
    rng = _rng("functional")
    for case in CASES:
        yt, yp = make_inputs(case, rng, (4, 3))
        fn = getattr(fastloss, case.ref)
        np.testing.assert_allclose(fn(yt, yp, **case.kw), case.ref_fn()(yt, yp), rtol=1e-10, atol=1e-12)
    assert fastloss.mean_squared_error([1.0, 2.0], [0.0, 0.0]).dtype == np.float32


# --------------------------------------------------------------------------- identities


def test_huber_identities():
    rng = _rng("huber_id")
    yt, yp = make_inputs(CASE_BY_ID["huber"], rng, (7, 5))
    # delta -> inf: 0.5 * MSE
    l1, g1 = L.Huber(delta=1e6).value_and_grad(yt, yp)
    l2, g2 = L.MeanSquaredError().value_and_grad(yt, yp)
    np.testing.assert_allclose(l1, 0.5 * l2, rtol=1e-14)
    np.testing.assert_allclose(g1, 0.5 * g2, rtol=1e-14)
    # every |e| > delta: delta * MAE - delta**2 / 2
    d = 0.05
    l1, g1 = L.Huber(delta=d).value_and_grad(yt, yp)
    l2, g2 = L.MeanAbsoluteError().value_and_grad(yt, yp)
    np.testing.assert_allclose(l1, d * l2 - 0.5 * d * d, rtol=1e-13)
    np.testing.assert_allclose(g1, d * g2, rtol=1e-13)


def test_log_cosh_small_errors_is_half_mse():
    rng = _rng("lc_id")
    yt = rng.normal(0, 1, (6, 4))
    yp = yt + rng.uniform(-1e-4, 1e-4, (6, 4))
    l1, g1 = L.LogCosh(reduction=None).value_and_grad(yt, yp)
    l2, g2 = L.MeanSquaredError(reduction=None).value_and_grad(yt, yp)
    np.testing.assert_allclose(l1, 0.5 * l2, rtol=1e-7)
    np.testing.assert_allclose(g1, 0.5 * g2, rtol=1e-7)


def test_hinge_identities():
    rng = _rng("hinge_id")
    s = rng.choice([-1.0, 1.0], (8, 3))
    yp = rng.normal(0, 2, (8, 3))
    for cls in (L.Hinge, L.SquaredHinge):
        a = cls(reduction=None).value_and_grad((s + 1) / 2, yp)
        b = cls(reduction=None).value_and_grad(s, yp)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # one non-binary label switches the mapping off for the whole batch
    y01 = (s + 1) / 2
    y01[0, 0] = 0.5
    np.testing.assert_allclose(L.Hinge(reduction=None)(y01, yp), R.hinge(y01, yp), rtol=1e-14)
    assert not np.allclose(L.Hinge(reduction=None)(y01, yp)[1:], L.Hinge(reduction=None)(s, yp)[1:])
    # K == 1: squared hinge is the hinge squared
    h = L.Hinge(reduction=None)(s[:, :1], yp[:, :1])
    np.testing.assert_allclose(L.SquaredHinge(reduction=None)(s[:, :1], yp[:, :1]), h * h, rtol=1e-14)


def test_cosine_identities():
    rng = _rng("cos_id")
    yt, yp = rng.normal(0, 1, (2, 5, 4)), rng.normal(0, 1, (2, 5, 4))
    a = L.CosineSimilarity(axis=1, reduction=None).value_and_grad(yt, yp)
    b = L.CosineSimilarity(reduction=None).value_and_grad(np.moveaxis(yt, 1, -1), np.moveaxis(yp, 1, -1))
    np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
    np.testing.assert_allclose(a[1], np.moveaxis(b[1], -1, 1), rtol=1e-13)
    l, g = L.CosineSimilarity(reduction=None).value_and_grad(yt, yp)
    np.testing.assert_allclose(L.CosineSimilarity(reduction=None)(yt * 3.0, yp * 0.25), l, rtol=1e-13)
    np.testing.assert_allclose(np.sum(g * yp, axis=-1), 0.0, atol=1e-14)  # scale invariant: grad _|_ p
    np.testing.assert_allclose(L.CosineSimilarity(reduction=None)(yp, yp), -1.0, rtol=1e-14)


def test_categorical_hinge_and_mape_identities():
    y = np.eye(4)[[0, 1, 2, 3]]
    # pos - neg >= 1 everywhere: loss 0, gradient 0
    l, g = L.CategoricalHinge().value_and_grad(y, 3.0 * y)
    assert l == 0.0 and not g.any()
    rng = _rng("mape_id")
    yp = rng.normal(0, 1, (5, 3))
    np.testing.assert_allclose(
        L.MeanAbsolutePercentageError(reduction=None)(np.full((5, 3), -4.0), yp),
        100.0 / 4.0 * L.MeanAbsoluteError(reduction=None)(np.full((5, 3), -4.0), yp),
        rtol=1e-14,
    )


# Infinite scores: each row with one infinite score, the finite stand-in that
# must give the same loss and gradient (None: the loss is +inf, the limit),
# and the gradient of neg - pos + 1 there (one maximizing wrong class).
HINGE_INF_ROWS = [
    # the true class at -inf: loss -> +inf
    ([0.5, -np.inf, 0.2], None, [1.0, -1.0, 0.0]),
    # a wrong class at -inf: out of the max, as any very low score
    ([-np.inf, 2.0, 0.5], [-1e30, 2.0, 0.5], None),
    ([-np.inf, 0.7, 0.9], [-1e30, 0.7, 0.9], None),
    # a wrong class at +inf: loss -> +inf
    ([np.inf, 1.0, 0.0], None, [1.0, -1.0, 0.0]),
    # the true class at +inf: loss -> 0, as any very high score
    ([0.3, np.inf, 1.0], [0.3, 1e30, 1.0], None),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_categorical_hinge_limits_at_infinite_scores(dt):
    """DESIGN.md: the limit where Keras' formula gives NaN (0 * inf in
    sum(y p) and max((1 - y) p)); a NaN in the input stays visible."""
    y = np.array([[0.0, 1.0, 0.0]] * len(HINGE_INF_ROWS), dt)
    p = np.array([r[0] for r in HINGE_INF_ROWS], dt)
    p0 = p.copy()
    obj = L.CategoricalHinge(reduction=None)
    loss, grad = obj.value_and_grad(y, p)
    np.testing.assert_array_equal(p, p0)
    assert loss.dtype == dt
    for i, (_, fin, g_inf) in enumerate(HINGE_INF_ROWS):
        if fin is None:
            assert loss[i] == np.inf, (i, loss[i])
            np.testing.assert_array_equal(grad[i], g_inf)
        else:
            lf, gf = obj.value_and_grad(y[i:i + 1], np.array([fin], dt))
            assert loss[i] == lf[0], (i, loss[i], lf[0])
            np.testing.assert_array_equal(grad[i], gf[0])
    # summed over rows: +inf, never NaN
    assert L.CategoricalHinge(reduction="sum")(y, p) == np.inf
    # NaN inputs (either sign) in a true or a wrong class give NaN
    for j in range(3):
        for nan in (np.nan, -np.nan):
            q = np.array([[0.5, 0.25, 0.125]], dt)
            q[0, j] = nan
            l1 = L.CategoricalHinge(reduction=None)(y[:1], q)
            assert np.isnan(l1[0]), (j, nan, l1)


# --------------------------------------------------------------------------- errors, layouts, NaN


def test_errors():
    for cls in {c.cls for c in CASES}:
        with pytest.raises(ValueError, match="same shape"):
            cls()(np.zeros((3, 4)), np.zeros((3, 5)))
        with pytest.raises(TypeError, match="y_pred"):
            cls()(np.zeros((2, 2)), np.array([["a", "b"], ["c", "d"]]))
        with pytest.raises(TypeError, match="y_true"):
            cls()(np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2)))
        with pytest.raises(ValueError, match="reduction"):
            cls(reduction="avg")
        with pytest.raises(ValueError, match="sample_weight"):
            cls()(np.zeros((3, 2)), np.zeros((3, 2)), sample_weight=np.ones(4))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="delta"):
            L.Huber(delta=bad)
    for bad in ("1", True, None, [1.0]):
        with pytest.raises(TypeError, match="delta"):
            L.Huber(delta=bad)
    with pytest.raises(TypeError, match="axis"):
        L.CosineSimilarity(axis="x")
    with pytest.raises(ValueError, match="axis"):
        L.CosineSimilarity(axis=2)(np.zeros((3, 2)), np.zeros((3, 2)))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_layouts_and_inputs_untouched(case):
    rng = _rng("layout", case.id)
    yt, yp = make_inputs(case, rng, (6, 8))
    want = case.make("sum").value_and_grad(yt[:, ::2], np.ascontiguousarray(yp[:, ::2]))
    yt0, yp0 = yt.copy(), yp.copy()
    got = case.make("sum").value_and_grad(yt[:, ::2], yp[:, ::2])  # strided views
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    got = case.make("sum").value_and_grad(np.asfortranarray(yt[:, ::2]), np.asfortranarray(yp[:, ::2]))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(yt, yt0)
    np.testing.assert_array_equal(yp, yp0)
    buf = np.empty((6, 4))
    l, g = case.make("sum").value_and_grad(yt[:, ::2], yp[:, ::2], grad_out=buf)
    assert g is buf
    np.testing.assert_array_equal(g, want[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_nan_stays_in_its_row(case, dtype):
    rng = _rng("nan", case.id)
    yt, yp = make_inputs(case, rng, (4, 3), dtype)
    clean = case.make(None)(yt, yp)
    yp[1, 2] = np.nan
    got = case.make(None)(yt, yp)
    assert np.isnan(got[1])
    np.testing.assert_array_equal(np.delete(got, 1), np.delete(clean, 1))
    assert np.isnan(case.make()(yt, yp))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_empty_batch_and_1d(case):
    rng = _rng("empty", case.id)
    assert case.make()(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    assert case.make(None)(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)
    yt, yp = make_inputs(case, rng, (1, 5))
    v, g = case.make().value_and_grad(yt[0], yp[0])
    assert np.shape(v) == () and g.shape == (5,)
    np.testing.assert_allclose(v, case.ref_fn()(yt[0], yp[0]), rtol=1e-12)


def test_parallel_path_equals_serial_rows():
    """A batch big enough for the parallel kernels gives the rows of the serial path."""
    rng = np.random.default_rng(7)
    for case in CASES:
        yt, yp = make_inputs(case, rng, (4096, 16), np.float32)
        sw = rng.uniform(0.1, 2.0, 4096).astype(np.float32)
        big = case.make(None).value_and_grad(yt, yp, sample_weight=sw)
        parts = [case.make(None).value_and_grad(yt[i : i + 512], yp[i : i + 512], sample_weight=sw[i : i + 512])
                 for i in range(0, 4096, 512)]
        # (row sums may be vectorized differently inside the prange driver)
        np.testing.assert_allclose(big[0], np.concatenate([p[0] for p in parts]), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(big[1], np.concatenate([p[1] for p in parts]), rtol=1e-6, atol=1e-6 * np.abs(big[1]).max())
        tot = case.make("sum_over_batch_size")(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(tot, expected(case, yt, yp, sw, "sum_over_batch_size"), rtol=2e-5, atol=1e-6)


def test_hinge_label_scan_is_batch_wide_in_parallel():
    """The {0,1} -> {-1,1} decision covers every chunk: one non-binary label
    in the last chunk switches it off for the first chunk too."""
    rng = np.random.default_rng(3)
    yt = rng.integers(0, 2, (8192, 8)).astype(np.float64)
    yp = rng.normal(0, 1, (8192, 8))
    for cls, ref in ((L.Hinge, R.hinge), (L.SquaredHinge, R.squared_hinge)):
        np.testing.assert_allclose(cls(reduction=None)(yt, yp), ref(yt, yp), rtol=1e-12)
        y2 = yt.copy()
        y2[-1, -1] = 2.0
        np.testing.assert_allclose(cls(reduction=None)(y2, yp), ref(y2, yp), rtol=1e-12)


# --------------------------------------------------------------------------- grad_hess kernels


def _gh(case, yt, yp, w=None, nch=1):
    """Call the registered "gh" kernel directly, prm laid out as _core builds it
    (F_SCALE = 1, eps, 1 - eps, label map 1/0, alpha = delta)."""
    from fastloss import _backend, _registry
    from fastloss._config import EPSILON

    spec = _registry.get(GH_NAME[case.id])
    fn = _backend.kernel(spec, "gh", _backend.current_backend())
    yp = np.ascontiguousarray(yp)
    dt = yp.dtype
    R_, K = yp.shape
    yt = np.ascontiguousarray(yt, dtype=dt)
    prm = np.array((1.0, EPSILON, 1.0 - EPSILON, 1.0, 0.0, case.kw.get("delta", 0.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), dt)
    if case.cls is L.Huber and "delta" not in case.kw:
        prm[5] = 1.0
    if w is None:
        wr, ws = np.ones(1, dt), 0
    elif np.ndim(w) == 0:
        wr, ws = np.full(1, w, dt), 0
    else:
        wr, ws = np.asarray(w, dt), 1
    g = np.full_like(yp, np.nan)
    h = np.full_like(yp, np.nan)
    fn(yt, yp, prm, wr, ws, g, h, nch)
    return g, h


@pytest.mark.parametrize("shape", [(6, 1), (5, 3)])
@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("case", ELEMENTWISE, ids=str)
def test_grad_hess_kernels(case, weight, shape):
    rng = _rng("gh", case.id, weight, shape)
    yt, yp = make_inputs(case, rng, shape)
    sw = make_weight(weight, shape[:1], rng)
    g, h = _gh(case, yt, yp, sw)
    # gradient: finite differences of sum_i w_i loss_i, and the loss kernel's own gradient
    f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, "sum")
    np.testing.assert_allclose(g, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)
    _, g_loss = case.make("sum").value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(g, g_loss, rtol=1e-14, atol=1e-15)
    # Hessian diagonal: central differences of the gradient (elementwise losses:
    # element (i, j) of the gradient depends on y_pred[i, j] only)
    d = 1e-5
    gp, _ = _gh(case, yt, yp + d, sw)
    gm, _ = _gh(case, yt, yp - d, sw)
    np.testing.assert_allclose(h, (gp - gm) / (2 * d), rtol=1e-6, atol=1e-8)
    # float32 and the parallel path
    g32, h32 = _gh(case, yt, yp.astype(np.float32), sw)
    assert g32.dtype == h32.dtype == np.float32
    np.testing.assert_allclose(g32, g, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h32, h, rtol=1e-4, atol=1e-6)
    g2, h2 = _gh(case, yt, yp, sw, nch=2)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(h2, h)


def test_grad_hess_at_kinks():
    """Hessian at the kinks: MAE 0, Huber 1 inside |e| <= delta (kink included),
    0 outside, hinge 0; gradients as TF's (sign(0) = 0, tie on the active side)."""
    z = np.zeros((1, 5))
    g, h = _gh(CASE_BY_ID["mae"], z, np.array([[0.0, 1.0, -1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(g, [[0.0, 0.2, -0.2, 0.0, 0.2]])
    np.testing.assert_array_equal(h, 0.0)
    g, h = _gh(CASE_BY_ID["huber"], z, np.array([[1.0, -1.0, 0.0, 2.0, -0.5]]))
    np.testing.assert_allclose(g, [[0.2, -0.2, 0.0, 0.2, -0.1]], rtol=1e-15)
    np.testing.assert_array_equal(h, [[0.2, 0.2, 0.2, 0.0, 0.2]])
    g, h = _gh(CASE_BY_ID["hinge_01"], [[1.0, 0.0, 1.0, 0.0, 1.0]], np.array([[1.0, -1.0, 0.5, 2.0, 3.0]]))
    np.testing.assert_allclose(g, [[-0.2, 0.2, -0.2, 0.2, 0.0]], rtol=1e-15)
    np.testing.assert_array_equal(h, 0.0)
    g, h = _gh(CASE_BY_ID["sqhinge_01"], [[1.0, 0.0, 1.0, 0.0, 1.0]], np.array([[1.0, -1.0, 0.5, 2.0, 3.0]]))
    np.testing.assert_allclose(g, [[0.0, 0.0, -0.2, 1.2, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(h, [[0.4, 0.4, 0.4, 0.4, 0.0]], rtol=1e-15)
    # MSLE: p < eps clipped (0, 0); p == eps the tie (the gradient flows)
    g, h = _gh(CASE_BY_ID["msle"], np.ones((1, 5)), np.array([[-1.0, 0.0, 1e-9, 1e-7, 1.0]]))
    assert not g[0, :3].any() and not h[0, :3].any()
    assert g[0, 3] < 0 and h[0, 3] > 0 and g[0, 4] == 0.0


def test_msle_float32_small_values_keep_precision():
    """log1p of small arguments in float32 (Keras' log(x + 1) rounds x + 1)."""
    yt = np.array([[0.0, 1e-6, 2e-4, 3.0]])
    yp = np.array([[1e-5, 3e-6, 1e-4, 2.5]], np.float32)
    got = L.MeanSquaredLogarithmicError(reduction=None)(yt, yp)
    np.testing.assert_allclose(got, R.mean_squared_logarithmic_error(yt, yp.astype(np.float64)), rtol=1e-6)
    _, g = L.MeanSquaredLogarithmicError(reduction="sum").value_and_grad(yt, yp)
    f = lambda x: R.mean_squared_logarithmic_error(yt, x)
    np.testing.assert_allclose(g, R.fd_grad(f, yp.astype(np.float64), h=1e-8), rtol=1e-4)
