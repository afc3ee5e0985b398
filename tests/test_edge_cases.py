"""Edge inputs: exact 0/1 probabilities, huge logits, unnormalized rows, NaN/inf
containment, empty batches, non-contiguous / Fortran inputs, inputs not modified,
focal loss at p_t == 1."""

import numpy as np
import pytest

from fastloss import losses as L

import reference as R
from _cases import CASE_BY_ID, CASES, REDUCTIONS, make_inputs


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_exact_zero_one_probabilities(dtype):
    yt = np.array([[1.0, 0.0, 1.0, 0.0]])
    yp = np.array([[0.0, 1.0, 1.0, 0.0]], dtype)
    loss, grad = L.BinaryCrossentropy(reduction="none").value_and_grad(yt, yp)
    eps = dtype(1e-7)
    want = -(np.log(eps) + np.log1p(-np.float64(1) + eps)) / 4.0 + 0.0  # two clipped terms
    want = np.mean([-np.log(eps), -np.log(dtype(1) - (dtype(1) - eps)), -np.log(dtype(1) - eps), -np.log(dtype(1) - eps)])
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, [want], rtol=1e-5 if dtype == np.float32 else 1e-10)
    # outside [eps, 1-eps] the clip has zero derivative
    np.testing.assert_array_equal(grad, np.zeros_like(grad))


@pytest.mark.parametrize(
    "case_id", ["bce", "cce", "scce", "bfce", "bfce_bal_g3_ls", "cfce", "sfce", "sfce_a5_g05", "kld", "poisson"]
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_at_zero_and_one_are_finite(case_id, dtype):
    case = CASE_BY_ID[case_id]
    yp = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype)
    if case.sparse:
        yt = np.array([0, 0, 2, 2])
    else:
        yt = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    loss, grad = case.make("none").value_and_grad(yt, yp)
    assert np.all(np.isfinite(loss)), loss
    assert np.all(np.isfinite(grad)), grad
    if dtype == np.float64:
        np.testing.assert_allclose(loss, case.ref_fn()(yt, yp), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case_id", ["bce_logits", "cce_logits", "scce_logits", "bfce_logits", "cfce_logits_ls", "sfce_logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits(case_id, dtype):
    case = CASE_BY_ID[case_id]
    yp = np.array([[100.0, -100.0, 0.0], [-100.0, 100.0, 3.0], [1000.0, -1000.0, 0.0]], dtype)
    yt = np.array([1, 0, 2]) if case.sparse else np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    loss, grad = case.make("none").value_and_grad(yt, yp)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (loss, grad)
    if not (dtype == np.float32 and case_id == "bfce_logits"):
        # (float32 focal-from-logits hits the clip, whose upper bound 1 - 1e-7 rounds to 1 - 2**-23 in float32)
        np.testing.assert_allclose(loss, case.ref_fn()(yt, yp), rtol=1e-5 if dtype == np.float32 else 1e-10, atol=1e-6)
    if case_id == "bce_logits":
        sig = R._sigmoid(yp.astype(np.float64))
        np.testing.assert_allclose(grad, (sig - yt) / 3.0, rtol=1e-6, atol=1e-7)
    if case_id in ("cce_logits", "scce_logits"):
        oh = np.eye(3)[yt] if case.sparse else yt
        np.testing.assert_allclose(grad, R._softmax(yp.astype(np.float64)) - oh, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case_id", ["cce", "cfce"])
def test_unnormalized_probability_rows(case_id):
    case = CASE_BY_ID[case_id]
    yt = np.array([[0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    yp = np.array([[2.0, 5.0, 3.0], [0.01, 0.02, 0.03]])
    got = case.make("none")(yt, yp)
    np.testing.assert_allclose(got, case.ref_fn()(yt, yp), rtol=1e-10)
    np.testing.assert_allclose(got, case.ref_fn()(yt, yp / yp.sum(-1, keepdims=True)), rtol=1e-10)


def test_scce_unnormalized_clip_then_normalize():
    yp = np.array([[2.0, 5.0, 3.0], [0.0, 0.5, 0.0]])
    got = L.SparseCategoricalCrossentropy(reduction="none")([1, 1], yp)
    c = np.clip(yp, 1e-7, 1 - 1e-7)
    np.testing.assert_allclose(got, np.log(c.sum(-1)) - np.log(c[:, 1]), rtol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_stays_in_its_row(case, dtype):
    rng = np.random.default_rng(11)
    yt, yp = make_inputs(case, rng, (4, 3), dtype)
    yp = yp.copy()
    yp[1, 2] = np.nan
    none, grad = case.make("none").value_and_grad(yt, yp)
    if case.sparse and case.kw.get("ignore_class") is not None and yt[1] == case.kw["ignore_class"]:
        pytest.skip("row is ignored")
    assert np.isnan(none[1]), none
    keep = [0, 2, 3]
    assert np.all(np.isfinite(none[keep])), none
    assert np.all(np.isfinite(grad[keep])), grad
    assert np.isnan(case.make("sum_over_batch_size")(yt, yp))


@pytest.mark.parametrize("case_id", ["bce_logits", "cce_logits", "scce_logits", "bfce_logits", "cfce_logits_ls", "sfce_logits"])
@pytest.mark.parametrize("val", [np.inf, -np.inf])
def test_inf_logit_does_not_poison_other_rows(case_id, val):
    case = CASE_BY_ID[case_id]
    rng = np.random.default_rng(12)
    yt, yp = make_inputs(case, rng, (4, 3), np.float64)
    yp = yp.copy()
    yp[2, 0] = val
    none, grad = case.make("none").value_and_grad(yt, yp)
    keep = [0, 1, 3]
    np.testing.assert_allclose(none[keep], case.ref_fn()(yt[keep], yp[keep]), rtol=1e-10)
    assert np.all(np.isfinite(grad[keep]))


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_batch(case, reduction):
    yp = np.zeros((0, 3), np.float32)
    yt = np.zeros((0,), np.int64) if case.sparse else np.zeros((0, 3))
    loss, grad = case.make(reduction).value_and_grad(yt, yp)
    assert grad.shape == (0, 3) and grad.dtype == np.float32
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.shape == (0,)
    else:
        assert np.ndim(loss) == 0 and float(loss) == 0.0
    loss2 = case.make(reduction)(yt, yp, sample_weight=np.zeros(0))
    assert np.size(loss2) == 0 if reduction == "none" else float(loss2) == 0.0


@pytest.mark.parametrize("case", CASES, ids=str)
def test_non_contiguous_and_fortran_inputs(case):
    rng = np.random.default_rng(13)
    yt, yp = make_inputs(case, rng, (6, 8), np.float64)
    sw = rng.uniform(0.2, 2, 12)
    obj = case.make("none")
    # strided views: every other column of a wider array, every other sample weight
    big_p = np.repeat(yp, 2, axis=1)
    view_p = big_p[:, ::2]
    assert not view_p.flags.c_contiguous
    np.testing.assert_array_equal(view_p, yp)
    sw_view = sw[::2]
    base_l, base_g = obj.value_and_grad(yt, yp, sample_weight=np.ascontiguousarray(sw_view))
    l, g = obj.value_and_grad(yt, view_p, sample_weight=sw_view)
    np.testing.assert_allclose(l, base_l, rtol=1e-13)
    np.testing.assert_allclose(g, base_g, rtol=1e-13)
    l, g = obj.value_and_grad(np.asfortranarray(yt), np.asfortranarray(yp), sample_weight=sw_view)
    np.testing.assert_allclose(l, base_l, rtol=1e-13)
    np.testing.assert_allclose(g, base_g, rtol=1e-13)
    # reversed rows
    l, g = obj.value_and_grad(yt[::-1], yp[::-1])
    l0, g0 = obj.value_and_grad(np.ascontiguousarray(yt[::-1]), np.ascontiguousarray(yp[::-1]))
    np.testing.assert_allclose(l, l0, rtol=1e-13)
    np.testing.assert_allclose(g, g0, rtol=1e-13)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_inputs_not_modified(case):
    rng = np.random.default_rng(14)
    yt, yp = make_inputs(case, rng, (5, 4), np.float32)
    sw = rng.uniform(0.2, 2, 5)
    yt_c, yp_c, sw_c = yt.copy(), yp.copy(), sw.copy()
    for red in ("sum_over_batch_size", "none"):
        case.make(red, class_weight={0: 2.0}).value_and_grad(yt, yp, sample_weight=sw)
        case.make(red)(yt, yp, sample_weight=sw)
    np.testing.assert_array_equal(yt, yt_c)
    np.testing.assert_array_equal(yp, yp_c)
    np.testing.assert_array_equal(sw, sw_c)
    # float64 inputs of the compute dtype (no conversion copy) too
    yp64 = yp.astype(np.float64)
    c64 = yp64.copy()
    case.make("sum").value_and_grad(yt, yp64)
    np.testing.assert_array_equal(yp64, c64)
    # the shared unit weight of calls without sample_weight (writable, so that
    # kernels see one array type) is still 1
    from fastloss import _core

    assert all(a.tolist() == [1.0] for a in _core._ONE.values())


def test_integer_y_pred_accepted():
    loss = L.Poisson()(np.array([[1, 2, 0]]), np.array([[1, 2, 3]], np.int32))
    assert np.asarray(loss).dtype == np.float32
    np.testing.assert_allclose(loss, R.poisson([[1, 2, 0]], [[1, 2, 3]]).mean(), rtol=1e-6)
    loss = L.SparseCategoricalCrossentropy()(np.array([0, 1]), np.array([[1, 0], [1, 1]], np.int64))
    assert np.asarray(loss).dtype == np.float32 and np.isfinite(loss)


@pytest.mark.parametrize("label_dtype", [np.int8, np.int32, np.int64, np.uint8, np.float32, np.float64])
def test_scce_label_dtypes_and_trailing_one(label_dtype):
    yp = np.array([[0.1, 0.7, 0.2], [0.3, 0.3, 0.4]])
    lab = np.array([1, 2]).astype(label_dtype)
    want = R.sparse_categorical_crossentropy([1, 2], yp)
    np.testing.assert_allclose(L.SparseCategoricalCrossentropy(reduction="none")(lab, yp), want, rtol=1e-12)
    np.testing.assert_allclose(L.SparseCategoricalCrossentropy(reduction="none")(lab[:, None], yp), want, rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("cls", [L.BinaryFocalCrossentropy, L.SigmoidFocalCrossEntropy])
def test_focal_at_pt_equal_one_is_finite(cls, gamma):
    """Documented: at p_t == 1 with gamma < 1 the focal-factor derivative is taken as 0 (TF: NaN/inf)."""
    yt = np.array([[1.0, 0.0, 1.0]])
    yp = np.array([[1.0, 0.0, 0.6]])
    loss, grad = cls(gamma=gamma, reduction="none").value_and_grad(yt, yp)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), (loss, grad)
    ref = R.REFERENCES[cls(gamma=gamma)._loss]
    np.testing.assert_allclose(loss, ref(yt, yp, gamma=gamma), rtol=1e-10)
    # the third element is an ordinary point: finite differences
    f = lambda x: ref(yt[:, 2:], x, gamma=gamma)
    np.testing.assert_allclose(grad[:, 2:], R.fd_grad(f, yp[:, 2:]) / (3.0 if cls is L.BinaryFocalCrossentropy else 1.0), rtol=1e-6)


@pytest.mark.parametrize("cls", [L.BinaryCrossentropy, L.SigmoidFocalCrossEntropy])
def test_float32_logits_tiny_loss_keeps_relative_precision(cls):
    # log1p(exp(-|x|)) for |x| in 9..40: the loss is ~1e-4..1e-17 and must keep its
    # relative precision in float32 (a log1p via (1 + u) - 1 loses it under reassoc).
    x = np.linspace(9.0, 40.0, 64).reshape(64, 1)
    y = np.ones_like(x)
    kw = {"from_logits": True} if cls is L.BinaryCrossentropy else {"from_logits": True, "alpha": None, "gamma": None}
    obj = cls(reduction="none", **kw)
    got = obj(y, x.astype(np.float32))
    want = np.log1p(np.exp(-x[:, 0]))  # float64, independent of fastloss
    np.testing.assert_allclose(got, want, rtol=2e-6)


@pytest.mark.parametrize("dt,tiny", [(np.float64, 2.0**-1030), (np.float32, 2.0**-135), (np.float64, 1e-300)])
@pytest.mark.parametrize(
    "make",
    [
        lambda: L.BinaryCrossentropy(reduction="mean_with_sample_weight"),
        lambda: L.MeanSquaredError(reduction="mean_with_sample_weight"),
        lambda: L.CategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
    ],
)
def test_tiny_sample_weights_mean_with_sample_weight(make, dt, tiny):
    # sum(w) subnormal (or nearly): 1 / sum(w) overflows; mean_with_sample_weight
    # is the same for weights scaled by any positive factor (hypothesis found
    # w = 2.2e-313 giving NaN / inf)
    rng = np.random.default_rng(11)
    yt = (rng.random((7, 3)) < 0.5).astype(dt)
    yp = rng.uniform(0.05, 0.95, (7, 3)).astype(dt)
    w = rng.uniform(0.5, 2.0, 7).astype(dt)
    loss = make()
    v0, g0 = loss.value_and_grad(yt, yp, sample_weight=w)
    w_tiny = (w.astype(np.float64) * tiny).astype(dt)
    assert np.all(w_tiny > 0)
    v1, g1 = loss.value_and_grad(yt, yp, sample_weight=w_tiny)
    rtol = 1e-5 if dt is np.float32 else 1e-9
    if tiny * 2.0 < np.finfo(dt).tiny:  # subnormal weights keep fewer digits: compare loosely
        rtol = 1e-3
    np.testing.assert_allclose(v1, v0, rtol=rtol)
    np.testing.assert_allclose(g1, g0, rtol=rtol, atol=1e-12)


class _ForeignArray:
    """An array of another library: a dtype object NumPy cannot read (named
    like ``torch.float64``), values through ``__array__``."""

    class _DType:
        def __init__(self, name):
            self.name = name

        def __str__(self):
            return f"otherlib.{self.name}"

    def __init__(self, a):
        self._a = np.asarray(a)
        self.dtype = self._DType(self._a.dtype.name)
        self.shape = self._a.shape

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arrays_of_other_libraries_keep_their_float_dtype(dtype):
    """float64 in -> float64 out also for arrays that are not NumPy's (a
    PyTorch CPU tensor's dtype is ``torch.float64``): their values were
    computed in float32 before."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(dtype)
    y = rng.standard_normal((5, 4)).astype(dtype)
    lab = np.array([0, 3, 1, 2, 2])
    for obj, yt in ((L.MeanSquaredError(), y), (L.SparseCategoricalCrossentropy(from_logits=True), lab)):
        ref_l, ref_g = obj.value_and_grad(yt, x)
        loss, grad = obj.value_and_grad(_ForeignArray(yt), _ForeignArray(x))
        assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
        np.testing.assert_array_equal(loss, ref_l)
        np.testing.assert_array_equal(grad, ref_g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tensorflow_tensors_as_inputs(dtype):
    """TF tensors (a drop-in for Keras takes them): their DType compares equal
    to NumPy's but is not one; every call with a TF tensor raised TypeError."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 4)).astype(dtype)
    y = (rng.uniform(size=(5, 4)) > 0.5).astype(dtype)
    lab = np.array([0, 3, 1, 2, 2])
    for obj, yt in ((L.BinaryCrossentropy(from_logits=True), y), (L.SparseCategoricalCrossentropy(from_logits=True), lab),
                    (L.Huber(), y)):
        ref_l, ref_g = obj.value_and_grad(yt, x)
        loss, grad = obj.value_and_grad(tf.constant(yt), tf.constant(x))
        assert np.asarray(loss).dtype == dtype and grad.dtype == dtype
        np.testing.assert_array_equal(loss, ref_l)
        np.testing.assert_array_equal(grad, ref_g)
        g2, h2 = obj.grad_hess(tf.constant(yt), tf.constant(x))
        assert g2.dtype == dtype and h2.dtype == dtype


@pytest.mark.parametrize("make", [L.MeanSquaredError, L.BinaryCrossentropy, L.Hinge, L.KLDivergence,
                                  L.CosineSimilarity, L.CategoricalCrossentropy])
def test_gradient_keeps_y_pred_shape_through_the_rank_fix(make):
    """Keras squeezes or expands y_pred by one trailing axis to y_true's rank;
    the gradient is still y_pred's shape (it came back in the fixed shape,
    so ``yp - lr * g`` broadcast and ``grad_out=np.empty_like(yp)`` raised)."""
    rng = np.random.default_rng(7)
    yt = rng.uniform(0.1, 0.9, (4, 3))
    yp = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    obj = make()
    # y_pred one rank above y_true (a trailing 1): the same as squeezing it first
    ref_v, ref_g = obj.value_and_grad(yt, yp)
    v, g = obj.value_and_grad(yt, yp[..., None])
    assert g.shape == (4, 3, 1)
    np.testing.assert_array_equal(v, ref_v)
    np.testing.assert_array_equal(g[..., 0], ref_g)
    buf = np.empty((4, 3, 1), np.float32)
    assert obj.value_and_grad(yt, yp[..., None], grad_out=buf)[1] is buf
    np.testing.assert_array_equal(buf[..., 0], ref_g)
    # y_pred one rank below y_true, whose last axis is 1
    ref_v, ref_g = obj.value_and_grad(yt[:, :1], yp[:, :1])
    v, g = obj.value_and_grad(yt[:, :1], yp[:, 0])
    assert g.shape == (4,)
    np.testing.assert_array_equal(v, ref_v)
    np.testing.assert_array_equal(g, ref_g[:, 0])


def test_grad_hess_keeps_y_pred_shape_through_the_rank_fix():
    yt = np.array([[0.0], [1.0], [1.0]])
    yp = np.array([0.2, 0.7, 0.4])
    g, h = L.MeanSquaredError().grad_hess(yt, yp)
    assert g.shape == h.shape == (3,)
    np.testing.assert_allclose(g, 2 * (yp - yt[:, 0]), rtol=1e-12)  # d/dp (p - y)^2, one element per row
    np.testing.assert_allclose(h, [2.0, 2.0, 2.0], rtol=1e-12)



# (y_true's shape, y_pred's shape) and which loss kinds broadcast them: all of
# these for losses of elementwise terms; only along the leading axes for
# categorical focal and cosine similarity (Keras works along each input's own
# class axis first).
BROADCAST_CASES = [((1, 5), (4, 5), "all class"), ((), (4, 5), "all"), ((4, 1), (4, 5), "all"),
                   ((4, 5), (1, 5), "all class"), ((4, 5), (5,), "all class"), ((2, 4, 5), (4, 1), "all")]
BROADCAST_MAKERS = [
    (L.MeanSquaredError, "all"), (L.MeanAbsoluteError, "all"), (L.Huber, "all"), (L.LogCosh, "all"),
    (L.MeanAbsolutePercentageError, "all"), (L.MeanSquaredLogarithmicError, "all"), (L.KLDivergence, "all"),
    (L.Poisson, "all"), (L.Hinge, "all"), (L.SquaredHinge, "all"), (L.CategoricalHinge, "all"),
    (L.CategoricalFocalCrossentropy, "class"),
    (lambda **k: L.CategoricalFocalCrossentropy(from_logits=True, label_smoothing=0.1, **k), "class"),
    (L.CosineSimilarity, "class"),
    (L.BinaryCrossentropy, "none"), (lambda **k: L.BinaryCrossentropy(from_logits=True, **k), "none"),
    (L.CategoricalCrossentropy, "none"), (L.BinaryFocalCrossentropy, "none"), (L.SigmoidFocalCrossEntropy, "none"),
]


@pytest.mark.parametrize("maker", BROADCAST_MAKERS, ids=lambda m: f"{getattr(m[0], '__name__', 'lambda')}-{m[1]}")
@pytest.mark.parametrize("case", BROADCAST_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
@pytest.mark.parametrize("reduction", ["none", "sum", "mean_with_sample_weight"])
def test_broadcast_shapes_equal_explicit_tiling(maker, case, reduction):
    """Shapes that broadcast give the loss of the explicitly tiled inputs; a
    broadcast y_pred's gradient is the tiled gradient summed over the axes it
    was broadcast along (the adjoint of broadcasting). Inputs are left as they
    were. A loss that does not broadcast such shapes says so by name."""
    make, kind = maker
    st, sp, kinds = case
    rng = np.random.default_rng(11)
    yt = rng.uniform(0.05, 0.95, st)
    yp = rng.uniform(0.05, 0.95, sp)
    b = np.broadcast_shapes(st, sp)
    w = rng.uniform(0.5, 2.0, b[:-1])
    obj = make(reduction=reduction)
    if kind not in kinds.split():
        with pytest.raises(ValueError, match="same shape for|must not broadcast along the class axis"):
            obj.value_and_grad(yt, yp, sample_weight=w)
        return
    yt0, yp0 = np.copy(yt), yp.copy()
    v, g = obj.value_and_grad(yt, yp, sample_weight=w)
    tv, tg = obj.value_and_grad(np.broadcast_to(yt, b).copy(), np.broadcast_to(yp, b).copy(), sample_weight=w)
    np.testing.assert_allclose(v, tv, rtol=1e-12, atol=1e-15)
    lead = len(b) - len(sp)
    want = tg.sum(axis=tuple(range(lead))) if lead else tg
    want = want.sum(axis=tuple(i for i, d in enumerate(sp) if d == 1 and want.shape[i] != 1), keepdims=True)
    assert g.shape == yp.shape and g.dtype == yp.dtype
    np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-14)
    np.testing.assert_array_equal(yt, yt0)
    np.testing.assert_array_equal(yp, yp0)
    buf = np.empty_like(yp)
    assert obj.value_and_grad(yt, yp, sample_weight=w, grad_out=buf)[1] is buf
    np.testing.assert_array_equal(buf, g)


def test_broadcast_errors():
    mse = L.MeanSquaredError()
    with pytest.raises(ValueError, match=r"same shape, or shapes that broadcast.*\(3, 4\).*\(3, 5\)"):
        mse(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"same shape for binary_crossentropy.*\(1, 4\).*\(3, 4\)"):
        L.BinaryCrossentropy()(np.zeros((1, 4)), np.full((3, 4), 0.5))
    # y_true broadcasting is fine for grad_hess; a broadcast y_pred is refused by name
    g, h = mse.grad_hess(np.zeros((1, 4)), np.ones((3, 4)))
    np.testing.assert_allclose(g, np.full((3, 4), 2.0 / 4))
    np.testing.assert_allclose(h, np.full((3, 4), 2.0 / 4))
    with pytest.raises(ValueError, match=r"grad_hess needs y_pred to have the full shape.*\(1, 4\).*\(3, 4\)"):
        mse.grad_hess(np.zeros((3, 4)), np.ones((1, 4)))
    # the class axis elsewhere than last: broadcasting happens before the axis is moved,
    # and the class-axis rule follows `axis` (here axis 0 is the class axis: 3 classes)
    cfce = L.CategoricalFocalCrossentropy(axis=0, reduction="none")
    yp = np.random.default_rng(1).uniform(0.1, 0.9, (3, 4))
    v, g = cfce.value_and_grad(np.array([[1.0], [0.0], [0.0]]), yp)
    tv, tg = cfce.value_and_grad(np.tile([[1.0], [0.0], [0.0]], (1, 4)), yp)
    np.testing.assert_array_equal(v, tv)
    np.testing.assert_array_equal(g, tg)
    with pytest.raises(ValueError, match=r"`y_true` must not broadcast along the class axis for categorical_focal.*must be 3"):
        cfce(np.ones((1, 4)), yp)


# ---- sample weights that Keras' multiplication broadcasts the losses to --------------
# Keras 3 multiplies the per-sample losses by the weights with broadcasting: weights of a
# larger shape spread each loss over several weighted losses, and "sum_over_batch_size"
# then divides by their number. A 1-D MSE with one weight per element is the everyday case:
# its per-sample loss is one number, and Keras returns mean((y - p)^2) * mean(w).
SPREAD = [
    # (case, y shape (the per-sample loss drops the last axis), weight shape)
    ("mse", (5,), (5,)),
    ("mse", (3, 4), (2, 3)),
    ("bce", (3, 4), (3, 3)),
    ("cce_logits", (2, 3), (4, 1, 2)),
    ("scce_logits_ignore2", (4, 3), (2, 4)),  # ignore_class: Keras' mask rescaling over the spread
    ("cfce", (3,), (2,)),
]


def _spread_inputs(case_id, yshape, wshape, rng):
    if case_id == "mse":
        return rng.normal(size=yshape), rng.normal(size=yshape), rng.uniform(0.2, 2.0, wshape), L.MeanSquaredError, R.mean_squared_error, None
    case = CASE_BY_ID[case_id]
    yt, yp = make_inputs(case, rng, shape=yshape)
    return yt, yp, rng.uniform(0.2, 2.0, wshape), case.make, case.ref_fn(), case


@pytest.mark.parametrize("reduction", REDUCTIONS + [None])
@pytest.mark.parametrize("case_id,yshape,wshape", SPREAD)
def test_sample_weight_spreads_the_loss(case_id, yshape, wshape, reduction):
    rng = np.random.default_rng(7)
    yt, yp, sw, make, ref, case = _spread_inputs(case_id, yshape, wshape, rng)
    mask = case.mask(yt, yp) if case is not None else None
    obj = make(reduction=reduction)
    v, g = obj.value_and_grad(yt, yp, sample_weight=sw)
    want = R.reduce(ref(yt, yp), sw, reduction or "none", mask)
    assert np.shape(v) == np.shape(want)
    np.testing.assert_allclose(v, want, rtol=1e-10, atol=1e-13)
    f = lambda x: R.reduce(ref(yt, x), sw, reduction or "none", mask)
    np.testing.assert_allclose(g, R.fd_grad(f, yp), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(obj(yt, yp, sample_weight=sw), v, rtol=1e-12)


def test_sample_weight_spread_everyday_case_and_class_weight():
    # 1-D MSE: Keras gives mean((y - p)^2) * w for each w ("none"), times mean(w) once reduced
    yt, yp, w = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.5, 1.5, 1.0, 2.0]), np.array([1.0, 2.0, 0.0, 4.0])
    mse = np.mean((yt - yp) ** 2)  # 0.625
    np.testing.assert_allclose(L.MeanSquaredError(reduction="none")(yt, yp, sample_weight=w), mse * w)
    np.testing.assert_allclose(L.MeanSquaredError()(yt, yp, sample_weight=w), mse * w.mean())
    np.testing.assert_allclose(L.MeanSquaredError(reduction="sum")(yt, yp, sample_weight=w), mse * w.sum())
    np.testing.assert_allclose(L.MeanSquaredError(reduction="mean_with_sample_weight")(yt, yp, sample_weight=w), mse)
    # class weights multiply each weighted loss by its sample's class weight
    rng = np.random.default_rng(3)
    yt = np.eye(3)[[0, 2, 1]]
    yp = rng.uniform(0.1, 1.0, (3, 3))
    sw = rng.uniform(0.5, 1.5, (2, 3))
    cw = {0: 2.0, 1: 0.5, 2: 3.0}
    per = R.categorical_crossentropy(yt, yp)
    both = sw * np.array([2.0, 3.0, 0.5])  # class weight of each sample (argmax of its row)
    for reduction in ("none", "sum_over_batch_size", "mean_with_sample_weight"):
        obj = L.CategoricalCrossentropy(reduction=reduction, class_weight=cw)
        v, g = obj.value_and_grad(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(v, R.reduce(per, both, reduction), rtol=1e-12)
        f = lambda x: R.reduce(R.categorical_crossentropy(yt, x), both, reduction)
        np.testing.assert_allclose(g, R.fd_grad(f, yp), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("reduction", ["none", "sum_over_batch_size", "mean_with_sample_weight"])
def test_scalar_weight_squeezes_a_one_sample_loss(reduction):
    # Keras 3's rank fix squeezes a per-sample loss of shape (1,) against a 0-d weight; the
    # 0-d weighted loss is returned as it is by every reduction (mean_with_sample_weight too)
    yt, yp = np.array([[0.0, 1.0, 1.0]]), np.array([[0.2, 0.7, 0.6]])
    per = R.binary_crossentropy(yt, yp)  # shape (1,)
    v = L.BinaryCrossentropy(reduction=reduction)(yt, yp, sample_weight=0.5)
    assert np.shape(v) == ()
    np.testing.assert_allclose(v, per[0] * 0.5, rtol=1e-12)
    # TF Addons' losses run on Keras 2, which leaves a 0-d weight alone: "none" keeps (1,)
    v2 = L.SigmoidFocalCrossEntropy(reduction="none")(yt, yp, sample_weight=0.5)
    assert np.shape(v2) == (1,)
    np.testing.assert_allclose(v2, R.sigmoid_focal_crossentropy(yt, yp) * 0.5, rtol=1e-12)


def test_keras2_weight_rank_fix_for_tfa_losses():
    # Keras 2 (TF Addons): a weight one rank below the loss gets a trailing axis ...
    rng = np.random.default_rng(5)
    yt = rng.integers(0, 2, (2, 3, 4)).astype(float)
    yp = rng.uniform(0.05, 0.95, (2, 3, 4))
    sw = np.array([0.5, 2.0])
    per = R.sigmoid_focal_crossentropy(yt, yp)  # (2, 3)
    for reduction in ("none", "sum", "sum_over_batch_size"):
        v, g = L.SigmoidFocalCrossEntropy(reduction=reduction).value_and_grad(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(v, R.reduce(per, sw[:, None], reduction), rtol=1e-12)
        f = lambda x: R.reduce(R.sigmoid_focal_crossentropy(yt, x), sw[:, None], reduction)
        np.testing.assert_allclose(g, R.fd_grad(f, yp), rtol=1e-5, atol=1e-8)
    # ... two ranks above spreads the losses (as in Keras 3) ...
    sw3 = rng.uniform(0.5, 1.5, (2, 1, 2, 3))
    for reduction in ("none", "sum_over_batch_size"):
        v = L.SigmoidFocalCrossEntropy(reduction=reduction)(yt, yp, sample_weight=sw3)
        assert np.shape(v) == np.shape(R.reduce(per, sw3, reduction))
        np.testing.assert_allclose(v, R.reduce(per, sw3, reduction), rtol=1e-12)
    # ... and one rank above loses its last axis, which must then be 1 (TF Addons fails otherwise)
    with pytest.raises(ValueError, match=r"sample_weight.*\(2, 3, 2\).*last axis must have size 1"):
        L.SigmoidFocalCrossEntropy()(yt, yp, sample_weight=np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match=r"sample_weight.*\(3,\).*last axis must have size 1"):
        L.GIoULoss()(np.array([0.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 2.0, 2.0]), sample_weight=np.ones(3))


@pytest.mark.parametrize("n", [4, 1 << 16])  # the small path and the blocked flat loops (hard labels)
@pytest.mark.parametrize("gamma", [2.0, 1.5, 0.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_focal_infinite_probability(n, gamma, dtype):
    """TF Addons' p_t = y p + (1 - y)(1 - p) has a 0 * inf term for p = +-inf, so
    its loss and gradient are NaN there unless gamma == 0 (no p_t): then the
    clipped cross-entropy is finite. Numba's reassoc once folded p_t to inf."""
    rng = np.random.default_rng(21)
    yt = (rng.random((n, 1)) < 0.5).astype(dtype)
    yt[:4, 0] = (1.0, 0.0, 1.0, 0.0)
    yp = rng.uniform(0.01, 0.99, (n, 1)).astype(dtype)
    yp[:4, 0] = (-np.inf, np.inf, np.inf, -np.inf)
    loss, grad = L.SigmoidFocalCrossEntropy(gamma=gamma, reduction="none").value_and_grad(yt, yp)
    with np.errstate(invalid="ignore"):
        ref = R.sigmoid_focal_crossentropy(yt, yp, gamma=gamma)
    f32 = dtype == np.float32
    np.testing.assert_allclose(loss[4:], ref[4:], rtol=1e-5 if f32 else 1e-12)
    # at the clip edge float32 rounds 1 - eps to 1 - 1.19e-7: log(1 - pc + eps) moves by 0.6 %
    np.testing.assert_allclose(loss[:4], ref[:4], rtol=1e-2 if f32 else 1e-12)
    assert np.isnan(ref[:4]).all() if gamma else np.isfinite(ref[:4]).all()
    assert np.isnan(grad[:4, 0]).all() if gamma else (grad[:4, 0] == 0).all()  # clipped: no slope
    assert np.isfinite(grad[4:]).all()
