"""Values and gradients of every cross-entropy-family loss against the float64
reference (tests/reference.py) and finite differences, plus the published
Keras / TF Addons docstring golden values."""

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

import reference as R
from _cases import CASES, DTYPES, REDUCTIONS, WEIGHTS, expected, make_inputs, make_weight, tol


def _rng(*key):
    return np.random.default_rng(abs(hash(tuple(str(k) for k in key))) % (2**32))


# --------------------------------------------------------------------------- value matrix


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
    assert isinstance(got, np.ndarray) or np.isscalar(got)
    assert np.asarray(got).dtype == np.dtype(dtype)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("weight_shape", [None, (2, 3), (2, 1), ()])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    "case_id", ["bce_logits", "cce", "scce_ignore_neg", "bfce_bal_g3_ls", "cfce_logits_ls", "sfce", "kld", "poisson"]
)
def test_value_3d_inputs_and_weight_broadcast(case_id, reduction, weight_shape):
    from _cases import CASE_BY_ID

    case = CASE_BY_ID[case_id]
    rng = _rng(case_id, reduction, weight_shape)
    yt, yp = make_inputs(case, rng, (2, 3, 4), np.float64)
    sw = None if weight_shape is None else rng.uniform(0.1, 2.0, weight_shape)
    got = case.make(reduction)(yt, yp, sample_weight=sw)
    want = expected(case, yt, yp, sw, reduction)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    loss, grad = case.make(reduction).value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(loss, want, rtol=1e-10, atol=1e-12)
    f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, reduction, case.mask(yt, yp))
    np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- gradient matrix


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_grad_matches_finite_differences(case, reduction, weight):
    rng = _rng("grad", case.id, reduction, weight)
    yt, yp = make_inputs(case, rng, (5, 3), np.float64)
    sw = make_weight(weight, (5,), rng)
    obj = case.make(reduction)
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(loss, expected(case, yt, yp, sw, reduction), rtol=1e-10, atol=1e-12)
    assert grad.shape == yp.shape and grad.dtype == np.float64
    mask = case.mask(yt, yp)
    f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, reduction, mask)
    np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)

    # float32: same point, gradient close to the float64 one, dtype kept.
    loss32, grad32 = obj.value_and_grad(yt, yp.astype(np.float32), sample_weight=sw)
    assert grad32.dtype == np.float32 and np.asarray(loss32).dtype == np.float32
    yp32 = yp.astype(np.float32).astype(np.float64)
    _, grad64 = obj.value_and_grad(yt, yp32, sample_weight=sw)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_value_and_grad_value_equals_call(case):
    rng = _rng("vg", case.id)
    yt, yp = make_inputs(case, rng, (7, 5), np.float32)
    for red in ("sum_over_batch_size", "none"):
        obj = case.make(red)
        a = obj(yt, yp)
        b, _ = obj.value_and_grad(yt, yp)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("binary", "categorical")], ids=str)
def test_soft_labels(case):
    rng = _rng("soft", case.id)
    yt, yp = make_inputs(case, rng, (6, 4), np.float64, soft=True)
    obj = case.make("sum")
    loss, grad = obj.value_and_grad(yt, yp)
    np.testing.assert_allclose(loss, expected(case, yt, yp, None, "sum"), rtol=1e-10)
    f = lambda x: R.reduce(case.ref_fn()(yt, x), None, "sum")
    np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)


def test_large_batch_parallel_path_matches_reference():
    """Big enough to take the parallel (multi-chunk) kernel path."""
    rng = np.random.default_rng(0)
    for case_id in ("bce_logits", "cce_logits", "scce", "scce_logits_ignore2", "cfce", "sfce_logits"):
        from _cases import CASE_BY_ID

        case = CASE_BY_ID[case_id]
        yt, yp = make_inputs(case, rng, (3000, 16), np.float64)
        sw = rng.uniform(0.1, 2.0, 3000)
        for red in ("sum_over_batch_size", "none", "mean_with_sample_weight"):
            obj = case.make(red)
            loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
            np.testing.assert_allclose(loss, expected(case, yt, yp, sw, red), rtol=1e-9, atol=1e-12)
            # gradient rows vs a small serial computation on the same rows
            small_loss, small_grad = case.make("none").value_and_grad(yt[:7], yp[:7], sample_weight=sw[:7])
            if red == "none":
                np.testing.assert_allclose(grad[:7], small_grad, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- functional


@pytest.mark.parametrize(
    "fn_name,kw",
    [
        ("binary_crossentropy", dict(from_logits=True, label_smoothing=0.1)),
        ("categorical_crossentropy", dict(label_smoothing=0.1)),
        ("sparse_categorical_crossentropy", dict(from_logits=True)),
        ("binary_focal_crossentropy", dict(apply_class_balancing=True, gamma=3.0)),
        ("categorical_focal_crossentropy", dict(from_logits=True)),
        ("sigmoid_focal_crossentropy", dict(alpha=0.3, gamma=1.0)),
        ("kl_divergence", {}),
        ("poisson", {}),
    ],
)
def test_functional_forms_are_per_sample_unweighted(fn_name, kw):
    from _cases import Case

    kind = {
        "binary_crossentropy": "binary",
        "binary_focal_crossentropy": "binary",
        "sigmoid_focal_crossentropy": "binary",
        "categorical_crossentropy": "categorical",
        "categorical_focal_crossentropy": "categorical",
        "sparse_categorical_crossentropy": "sparse",
        "kl_divergence": "kld",
        "poisson": "poisson",
    }[fn_name]
    case = Case(fn_name, None, fn_name, kind, kw)
    rng = _rng("fn", fn_name)
    yt, yp = make_inputs(case, rng, (4, 3), np.float64)
    got = getattr(fastloss, fn_name)(yt, yp, **kw)
    want = R.REFERENCES[fn_name](yt, yp, **kw)
    assert got.shape == (4,) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- golden values
# Keras docstrings print truncated/rounded values, so they are held to one unit in the last printed digit.

BCE_YT = np.array([[0, 1], [0, 0]])
BCE_LOGITS = np.array([[-18.6, 0.51], [2.94, -12.8]], dtype=np.float32)
CCE_YT = np.array([[0, 1, 0], [0, 0, 1]])
CCE_YP = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_golden_bce_keras_docstring(dtype):
    yp = BCE_LOGITS.astype(dtype)
    bce = L.BinaryCrossentropy(from_logits=True)
    # Keras 3.15 prints 0.8654 in its docstring; the value it computes is 0.865458.
    assert float(bce(BCE_YT, yp)) == pytest.approx(0.865458, abs=2e-6)
    assert float(bce(BCE_YT, yp, sample_weight=[0.8, 0.2])) == pytest.approx(0.243, abs=1e-3)
    assert float(L.BinaryCrossentropy(from_logits=True, reduction="sum")(BCE_YT, yp)) == pytest.approx(1.730, abs=1e-3)
    none = L.BinaryCrossentropy(from_logits=True, reduction="none")(BCE_YT, yp)
    np.testing.assert_allclose(none, [0.235, 1.496], atol=1e-3)
    assert none.dtype == np.dtype(dtype)
    # probabilities, keras.losses.binary_crossentropy docstring
    np.testing.assert_allclose(
        fastloss.binary_crossentropy([[0, 1], [0, 0]], np.array([[0.6, 0.4], [0.4, 0.6]], dtype)), [0.916, 0.714], atol=1e-3
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_golden_cce_scce_keras_docstring(sparse):
    cls = L.SparseCategoricalCrossentropy if sparse else L.CategoricalCrossentropy
    yt = np.array([1, 2]) if sparse else CCE_YT
    assert float(cls()(yt, CCE_YP)) == pytest.approx(1.177, abs=1e-3)
    assert float(cls()(yt, CCE_YP, sample_weight=np.array([0.3, 0.7]))) == pytest.approx(0.814, abs=1e-3)
    assert float(cls(reduction="sum")(yt, CCE_YP)) == pytest.approx(2.354, abs=1e-3)
    np.testing.assert_allclose(cls(reduction="none")(yt, CCE_YP), [0.0513, 2.303], atol=1e-3)


def test_golden_binary_focal_keras_docstring():
    yt1 = [0, 1, 0, 0]
    yp1 = np.array([-18.6, 0.51, 2.94, -12.8], np.float32)
    assert float(L.BinaryFocalCrossentropy(gamma=2, from_logits=True)(yt1, yp1)) == pytest.approx(0.691, abs=1e-3)
    assert float(
        L.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True)(yt1, yp1)
    ) == pytest.approx(0.51, abs=1e-3)

    def bf(bal, **kw):
        return L.BinaryFocalCrossentropy(apply_class_balancing=bal, from_logits=True, **kw)

    assert float(bf(False, gamma=3)(BCE_YT, BCE_LOGITS)) == pytest.approx(0.647, abs=1e-3)
    assert float(bf(True, gamma=3)(BCE_YT, BCE_LOGITS)) == pytest.approx(0.482, abs=1e-3)
    assert float(bf(False, gamma=3)(BCE_YT, BCE_LOGITS, sample_weight=[0.8, 0.2])) == pytest.approx(0.133, abs=1e-3)
    assert float(bf(True, gamma=3)(BCE_YT, BCE_LOGITS, sample_weight=[0.8, 0.2])) == pytest.approx(0.097, abs=1e-3)
    assert float(bf(False, gamma=4, reduction="sum")(BCE_YT, BCE_LOGITS)) == pytest.approx(1.222, abs=1e-3)
    assert float(bf(True, gamma=4, reduction="sum")(BCE_YT, BCE_LOGITS)) == pytest.approx(0.914, abs=1e-3)
    np.testing.assert_allclose(bf(False, gamma=5, reduction=None)(BCE_YT, BCE_LOGITS), [0.0017, 1.1561], atol=1e-4)
    np.testing.assert_allclose(bf(True, gamma=5, reduction=None)(BCE_YT, BCE_LOGITS), [0.0004, 0.8670], atol=1e-4)
    # keras.losses.binary_focal_crossentropy docstring (probabilities)
    np.testing.assert_allclose(
        fastloss.binary_focal_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], gamma=2), [0.330, 0.206], atol=1e-3
    )


def test_golden_categorical_focal_keras_docstring():
    yt = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert float(L.CategoricalFocalCrossentropy()(yt, CCE_YP)) == pytest.approx(0.23315276, rel=1e-5)
    assert float(L.CategoricalFocalCrossentropy()(yt, CCE_YP, sample_weight=[0.3, 0.7])) == pytest.approx(0.1632, abs=1e-4)
    assert float(L.CategoricalFocalCrossentropy(reduction="sum")(yt, CCE_YP)) == pytest.approx(0.46631, abs=5e-6)
    np.testing.assert_allclose(
        L.CategoricalFocalCrossentropy(reduction=None)(yt, CCE_YP), [3.2058331e-05, 4.6627346e-01], rtol=1e-5
    )


def test_golden_tfa_sigmoid_focal_docstring():
    # TF Addons 0.23 docstring AND the value measured with TFA 0.23 / TF 2.15.1 (float32):
    # [6.8532745e-06, 1.9097870e-04, 2.0559824e-05]
    fl = L.SigmoidFocalCrossEntropy()
    got = fl([[1.0], [1.0], [0.0]], np.array([[0.97], [0.91], [0.03]], dtype=np.float32))
    assert got.dtype == np.float32 and got.shape == (3,)
    np.testing.assert_allclose(got, [6.8532745e-06, 1.9097870e-04, 2.0559824e-05], rtol=1e-5)
    # float64 inputs, measured with TFA 0.23 / TF 2.15.1 in float64
    got64 = fl(np.array([[1.0], [1.0], [0.0]]), np.array([[0.97], [0.91], [0.03]]))
    np.testing.assert_allclose(got64, [6.85329848818436e-06, 1.90978903401803e-04, 2.05598954645530e-05], rtol=1e-11)


def test_tfa_eps_inside_logs():
    """TFA's probability path uses Keras-2 backend.binary_crossentropy: log(p + eps), log(1 - p + eps).
    Measured with TFA 0.23: y=1, p=0.5, alpha=gamma=None -> 0.6931469806 (= -log(0.5 + 1e-7))."""
    got = L.SigmoidFocalCrossEntropy(alpha=None, gamma=None)(np.array([[1.0]]), np.array([[0.5]]))
    np.testing.assert_allclose(got, [-np.log(0.5 + 1e-7)], rtol=1e-12)
    assert abs(float(got[0]) - np.log(2.0)) > 1e-8


def test_kld_poisson_hand_values():
    yt = np.array([[0.2, 0.8], [0.5, 0.5]])
    yp = np.array([[0.4, 0.6], [0.5, 0.5]])
    want = [0.2 * np.log(0.5) + 0.8 * np.log(0.8 / 0.6), 0.0]
    np.testing.assert_allclose(L.KLDivergence(reduction=None)(yt, yp), want, rtol=1e-10, atol=1e-15)
    # Keras 3.15 gives 0.80685276 here (mean over [1 - log(1+eps), 2 - 2 log(2+eps)])
    got = L.Poisson(reduction=None)([[1.0, 2.0]], np.array([[1.0, 2.0]]))
    np.testing.assert_allclose(got, [0.5 * ((1 - np.log(1 + 1e-7)) + (2 - 2 * np.log(2 + 1e-7)))], rtol=1e-12)


# --------------------------------------------------------------------------- dtype rule


@pytest.mark.parametrize(
    "yp_dtype,out",
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.float16, np.float32),
        (np.int64, np.float32),
        (np.int32, np.float32),
        (np.uint8, np.float32),
        (np.bool_, np.float32),
    ],
)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none"])
def test_dtype_rule(yp_dtype, out, reduction):
    yt = np.array([[0, 1, 1], [1, 0, 1]])
    if np.dtype(yp_dtype).kind == "f":
        yp = np.array([[0.25, 0.5, 0.75], [0.125, 0.625, 0.375]]).astype(yp_dtype)  # exact in float16
    else:
        yp = np.array([[0, 1, 1], [1, 1, 0]]).astype(yp_dtype)
    for cls in (L.BinaryCrossentropy, L.Poisson, L.KLDivergence, L.CategoricalCrossentropy, L.BinaryFocalCrossentropy):
        obj = cls(reduction=reduction)
        v = obj(yt, yp)
        assert np.asarray(v).dtype == out, cls
        loss, g = obj.value_and_grad(yt, yp)
        assert g.dtype == out and g.shape == yp.shape
        assert np.all(np.isfinite(v)) and np.all(np.isfinite(g))
        if np.dtype(yp_dtype).kind == "f" or cls is L.Poisson:  # away from the clip bounds
            want = R.reduce(R.REFERENCES[obj._loss](yt, yp.astype(np.float64)), None, reduction)
            np.testing.assert_allclose(v, want, rtol=2e-5 if out == np.float32 else 1e-10, atol=1e-6)


def test_python_lists_give_float32():
    v = L.BinaryCrossentropy()([[0, 1]], [[0.3, 0.6]])
    assert np.asarray(v).dtype == np.float32
    assert np.ndim(v) == 0


def test_scalar_result_is_numpy_scalar_of_dtype():
    v = L.CategoricalCrossentropy()(CCE_YT, CCE_YP.astype(np.float64))
    assert isinstance(v, np.float64)
    v = L.CategoricalCrossentropy()(CCE_YT, CCE_YP)
    assert isinstance(v, np.float32)


@pytest.mark.parametrize("case_id", ["bce", "bce_logits", "bfce", "sfce", "poisson", "kld"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_one_dimensional_input_is_one_sample(case_id, reduction):
    """1-D y_pred: the per-sample loss is a scalar, returned unreduced (times the weight)."""
    from _cases import CASE_BY_ID

    case = CASE_BY_ID[case_id]
    rng = _rng("1d", case_id, reduction)
    yt, yp = make_inputs(case, rng, (5,), np.float64)
    for sw in (None, 2.5):
        loss, grad = case.make(reduction).value_and_grad(yt, yp, sample_weight=sw)
        want = expected(case, yt, yp, sw, reduction)
        assert np.ndim(loss) == 0
        np.testing.assert_allclose(loss, want, rtol=1e-10)
        f = lambda x: R.reduce(case.ref_fn()(yt, x), sw, reduction)
        np.testing.assert_allclose(grad, R.fd_grad(f, yp), rtol=1e-6, atol=1e-8)


def test_bce_rank_mismatch_squeeze_or_expand():
    """LossFunctionWrapper squeezes/expands y_true (N,) vs y_pred (N,1)."""
    yt = np.array([0.0, 1.0, 1.0])
    yp = np.array([[0.2], [0.7], [0.4]])
    got = L.BinaryCrossentropy(reduction="none")(yt, yp)
    want = R.binary_crossentropy(yt[:, None], yp)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got2 = L.BinaryCrossentropy(reduction="none")(yt[:, None], yp[:, 0])
    np.testing.assert_allclose(got2, want, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight", "none"])
def test_weight_column_vector(reduction):
    """Keras squeeze_or_expand of values (N,) vs sample_weight (N,1) expands the values to (N,1)."""
    case = [c for c in CASES if c.id == "cce_logits"][0]
    rng = _rng("wcol", reduction)
    yt, yp = make_inputs(case, rng, (4, 3), np.float64)
    sw = rng.uniform(0.1, 2, (4, 1))
    loss, grad = case.make(reduction).value_and_grad(yt, yp, sample_weight=sw)
    want = expected(case, yt, yp, sw, reduction)
    assert np.shape(loss) == np.shape(want)
    np.testing.assert_allclose(loss, want, rtol=1e-10)


def test_mean_with_sample_weight_zero_weights_gives_zero():
    yt, yp = CCE_YT, CCE_YP.astype(np.float64)
    obj = L.CategoricalCrossentropy(reduction="mean_with_sample_weight")
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=[0.0, 0.0])
    assert float(loss) == 0.0
    assert np.all(grad == 0)


# --------------------------------------------------------------------------- per-class alpha (categorical focal)

ALPHA5 = (0.1, 0.4, 1.0, 2.5, 0.75)  # one per class, K = 5
CFCE_KW = {
    "probs": dict(),
    "probs_g0": dict(gamma=0.0),
    "logits_ls_g1": dict(from_logits=True, label_smoothing=0.1, gamma=1.0),
}


def _cfce_inputs(rng, shape, logits, soft=False):
    """make_inputs' categorical (y_true, y_pred): probabilities in [0.05, 1],
    rows not normalized (away from the clip), or logits."""
    from _cases import CASE_BY_ID

    return make_inputs(CASE_BY_ID["cfce_logits_ls" if logits else "cfce"], rng, shape, np.float64, soft)


@pytest.mark.parametrize("weight", WEIGHTS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kw_id", list(CFCE_KW))
def test_categorical_focal_per_class_alpha(kw_id, reduction, weight):
    """alpha given per class: value against the float64 reference (which
    multiplies the list along the class axis, as Keras does), gradient against
    finite differences; float32 close to float64; soft labels and 3-D input."""
    kw = CFCE_KW[kw_id]
    rng = _rng("cfce_alpha", kw_id, reduction, weight)
    obj = L.CategoricalFocalCrossentropy(alpha=list(ALPHA5), reduction=reduction, **kw)
    for shape, soft in (((6, 5), False), ((6, 5), True), ((2, 3, 5), False)):
        yt, yp = _cfce_inputs(rng, shape, kw.get("from_logits", False), soft)
        sw = make_weight(weight, shape[:-1], rng)
        ref = lambda x: R.reduce(R.categorical_focal_crossentropy(yt, x, alpha=np.array(ALPHA5), **kw), sw, reduction)
        loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(loss, ref(yp), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad, R.fd_grad(ref, yp), rtol=1e-6, atol=1e-8)
        loss32, grad32 = obj.value_and_grad(yt, yp.astype(np.float32), sample_weight=sw)
        assert grad32.dtype == np.float32 and np.asarray(loss32).dtype == np.float32
        np.testing.assert_allclose(loss32, ref(yp.astype(np.float32)), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("kw_id", list(CFCE_KW))
def test_categorical_focal_alpha_identities(kw_id):
    """(1) alpha = [a] * K is alpha = a, bit for bit; so is a one-element list.
    (2) One-hot labels without label smoothing: only the true class' term is
    nonzero, so alpha per class is alpha = 1 with class_weight {j: alpha_j}
    (the per-sample weight of the label's class), value and gradient."""
    kw = CFCE_KW[kw_id]
    rng = _rng("cfce_alpha_id", kw_id)
    yt, yp = _cfce_inputs(rng, (7, 5), kw.get("from_logits", False))
    sw = rng.uniform(0.2, 2.0, 7)
    for red in ("sum", "none", "sum_over_batch_size"):
        same = L.CategoricalFocalCrossentropy(alpha=[0.3] * 5, reduction=red, **kw).value_and_grad(yt, yp, sw)
        one = L.CategoricalFocalCrossentropy(alpha=[0.3], reduction=red, **kw).value_and_grad(yt, yp, sw)
        scalar = L.CategoricalFocalCrossentropy(alpha=0.3, reduction=red, **kw).value_and_grad(yt, yp, sw)
        for got in (same, one):
            np.testing.assert_array_equal(got[0], scalar[0])
            np.testing.assert_array_equal(got[1], scalar[1])
        if kw.get("label_smoothing"):
            continue
        per = L.CategoricalFocalCrossentropy(alpha=ALPHA5, reduction=red, **kw).value_and_grad(yt, yp, sw)
        cw = L.CategoricalFocalCrossentropy(alpha=1.0, reduction=red, class_weight=dict(enumerate(ALPHA5)), **kw)
        cwv = cw.value_and_grad(yt, yp, sw)
        np.testing.assert_allclose(per[0], cwv[0], rtol=1e-13)
        np.testing.assert_allclose(per[1], cwv[1], rtol=1e-12, atol=1e-16)


def test_categorical_focal_per_class_alpha_parallel_path():
    """A batch big enough for the multi-chunk kernel path."""
    rng = np.random.default_rng(11)
    alpha = rng.uniform(0.1, 3.0, 16)
    for logits in (False, True):
        yt, yp = _cfce_inputs(rng, (3000, 16), logits)
        sw = rng.uniform(0.1, 2.0, 3000)
        obj = L.CategoricalFocalCrossentropy(alpha=alpha, from_logits=logits, reduction="none")
        loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
        want = R.categorical_focal_crossentropy(yt, yp, alpha=alpha, from_logits=logits) * sw
        np.testing.assert_allclose(loss, want, rtol=1e-10, atol=1e-14)
        small = obj.value_and_grad(yt[:7], yp[:7], sample_weight=sw[:7])[1]
        np.testing.assert_allclose(grad[:7], small, rtol=1e-12, atol=1e-15)


def test_categorical_focal_alpha_config_and_inputs():
    """A per-class alpha is kept as given (a list in get_config, as Keras keeps
    it), round-trips through from_config, and the caller's list and array are
    left alone; the functional form takes it too."""
    al = [0.5, 1.0, 2.0]
    arr = np.array(al)
    obj = L.CategoricalFocalCrossentropy(alpha=arr, reduction="none")
    cfg = obj.get_config()
    assert cfg["alpha"] == al and type(cfg["alpha"]) is list
    again = L.CategoricalFocalCrossentropy.from_config(cfg)
    yt = np.eye(3)[[0, 2, 1, 1]]
    yp = np.random.default_rng(0).dirichlet(np.ones(3), 4)
    np.testing.assert_array_equal(again(yt, yp), obj(yt, yp))
    np.testing.assert_array_equal(fastloss.categorical_focal_crossentropy(yt, yp, alpha=al), obj(yt, yp))
    arr[0] = 9.0  # the object took a copy
    np.testing.assert_array_equal(obj(yt, yp), again(yt, yp))
    assert al == [0.5, 1.0, 2.0]
    assert "alpha=[0.5, 1.0, 2.0]" in repr(obj)


# --------------------------------------------------------------------------- rows with few nonzero labels
# CCE on probabilities and categorical focal compute the log/pow terms only for
# the classes whose (smoothed) label is nonzero when a row has few of them
# (4 n <= K, one-hot rows) and its probabilities sum to a finite number; the
# other rows take the dense loop. Both must give the reference's numbers.

SPARSE_KW = {
    "cce": ("CategoricalCrossentropy", R.categorical_crossentropy, dict()),
    "cfce": ("CategoricalFocalCrossentropy", R.categorical_focal_crossentropy, dict()),
    "cfce_g1.5_alpha": ("CategoricalFocalCrossentropy", R.categorical_focal_crossentropy,
                        dict(gamma=1.5, alpha=tuple(np.linspace(0.2, 2.0, 12)))),
    "cfce_logits": ("CategoricalFocalCrossentropy", R.categorical_focal_crossentropy, dict(from_logits=True)),
    "cfce_logits_g0.5": ("CategoricalFocalCrossentropy", R.categorical_focal_crossentropy,
                         dict(from_logits=True, gamma=0.5)),
}


def _ref_kw(kw):
    kw = dict(kw)
    if isinstance(kw.get("alpha"), tuple):
        kw["alpha"] = np.array(kw["alpha"])
    return kw


def _mixed_label_rows(rng, K=12):
    """Rows with 0, 1, 2, 3 nonzero labels (4 n <= K: the few-labels path) and
    4, 5, K (the dense loop), one-hot and partial soft labels, shuffled."""
    rows = []
    for n in (0, 1, 1, 2, 3, 3, 4, 5, K, 1):
        y = np.zeros(K)
        j = rng.choice(K, n, replace=False)
        y[j] = 1.0 if n == 1 else rng.uniform(0.1, 1.0, n)
        rows.append(y)
    rows = np.array(rows)[rng.permutation(len(rows))]
    return rows


@pytest.mark.parametrize("kw_id", list(SPARSE_KW))
def test_rows_with_few_nonzero_labels(kw_id):
    """Values against the float64 reference (rows of either path in one batch),
    gradients against finite differences; float32 close to it."""
    cls, ref_fn, kw = SPARSE_KW[kw_id]
    rng = _rng("sparse_rows", kw_id)
    yt = _mixed_label_rows(rng)
    logits = kw.get("from_logits", False)
    yp = rng.normal(size=yt.shape) if logits else rng.uniform(0.05, 1.0, yt.shape)
    sw = rng.uniform(0.2, 2.0, len(yt))
    obj = getattr(L, cls)(reduction="sum", **kw)
    ref = lambda x: R.reduce(ref_fn(yt, x, **_ref_kw(kw)), sw, "sum")
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    per_row = getattr(L, cls)(reduction="none", **kw)(yt, yp)
    loss32, grad32 = obj.value_and_grad(yt, yp.astype(np.float32), sample_weight=sw)
    np.testing.assert_allclose(per_row, ref_fn(yt, yp, **_ref_kw(kw)), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loss, ref(yp), rtol=1e-12)
    np.testing.assert_allclose(grad, R.fd_grad(ref, yp), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(loss32, ref(yp.astype(np.float32)), rtol=2e-5)
    np.testing.assert_allclose(grad32, grad, rtol=2e-3, atol=2e-5 * np.abs(grad).max())


@pytest.mark.parametrize("kw_id", list(SPARSE_KW))
def test_one_hot_rows_with_nonfinite_inputs(kw_id):
    """One-hot rows, where the few-labels path would skip the other classes:
    NaN or inf in y_pred at another class, or NaN in y_true at another class,
    must still make that row's loss NaN as in Keras (whose 0 * log(NaN) is
    NaN); a row of huge finite values whose sum overflows likewise takes the
    dense loop. The other rows keep their reference values; inputs unchanged."""
    cls, ref_fn, kw = SPARSE_KW[kw_id]
    rng = _rng("sparse_nonfinite", kw_id)
    K = 12
    yt = np.eye(K)[rng.integers(0, K, 8)]
    logits = kw.get("from_logits", False)
    yp = rng.normal(size=yt.shape) if logits else rng.uniform(0.05, 1.0, yt.shape)
    other = lambda i: (int(np.argmax(yt[i])) + 1) % K
    yp[0, other(0)] = np.nan
    yp[1, other(1)] = np.inf
    yp[2, other(2)] = -np.inf
    yt[3, other(3)] = np.nan
    if not logits:
        yp[4] = np.finfo(np.float64).max / 4  # finite, sum overflows to inf
        yp[5, other(5)] = -0.5  # a negative probability: clipped, finite
    want = ref_fn(yt, yp, **_ref_kw(kw))
    yt0, yp0 = yt.copy(), yp.copy()
    obj = getattr(L, cls)(reduction="none", **kw)
    with np.errstate(all="ignore"):
        got, grad = obj.value_and_grad(yt, yp)
    np.testing.assert_array_equal(yt, yt0)
    np.testing.assert_array_equal(yp, yp0)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[[0, 1, 3]]).all()  # Keras: NaN (the test would be empty otherwise)
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-12)
    assert np.isfinite(grad[6:]).all()


def test_one_hot_rows_parallel_path():
    """A batch big enough for the multi-chunk kernels: one-hot (few-labels path),
    against the float64 reference and against the same rows computed alone."""
    rng = np.random.default_rng(5)
    K = 40
    yt = np.eye(K)[rng.integers(0, K, 3000)]
    for cls, ref_fn, kw in SPARSE_KW.values():
        if "alpha" in kw:
            continue
        logits = kw.get("from_logits", False)
        yp = rng.normal(size=yt.shape) if logits else rng.uniform(0.05, 1.0, yt.shape)
        obj = getattr(L, cls)(reduction="none", **kw)
        loss, grad = obj.value_and_grad(yt, yp)
        small = obj.value_and_grad(yt[:9], yp[:9])
        np.testing.assert_allclose(loss, ref_fn(yt, yp, **kw), rtol=1e-12)
        np.testing.assert_array_equal(grad[:9], small[1])
        np.testing.assert_array_equal(loss[:9], small[0])


# --------------------------------------------------------------------------- blocks of 0/1 labels
# BCE on probabilities (and binary / TFA sigmoid focal at the default gamma = 2)
# take one log per element (-log clip(p) or -log(1 - clip(p))) in each block of
# elements whose labels are all exactly 0 or 1 and unsmoothed; other blocks take
# both logs. Blocks are ~4096 elements, checked in pieces of 256.

HARD_KW = {
    "bce": ("BinaryCrossentropy", R.binary_crossentropy, dict()),
    "bce_ls": ("BinaryCrossentropy", R.binary_crossentropy, dict(label_smoothing=0.2)),
    "bfce": ("BinaryFocalCrossentropy", R.binary_focal_crossentropy, dict()),
    "bfce_bal_ls": ("BinaryFocalCrossentropy", R.binary_focal_crossentropy,
                    dict(apply_class_balancing=True, alpha=0.3, label_smoothing=0.1)),
    "bfce_bal": ("BinaryFocalCrossentropy", R.binary_focal_crossentropy, dict(apply_class_balancing=True)),
    "bfce_g1.5": ("BinaryFocalCrossentropy", R.binary_focal_crossentropy, dict(gamma=1.5)),
    "sfce": ("SigmoidFocalCrossEntropy", R.sigmoid_focal_crossentropy, dict()),
    "sfce_a0": ("SigmoidFocalCrossEntropy", R.sigmoid_focal_crossentropy, dict(alpha=0.0)),
}


@pytest.mark.parametrize("kw_id", list(HARD_KW))
def test_hard_and_soft_label_blocks(kw_id):
    """A batch whose blocks mix: all-0/1 blocks, a block with one soft label far
    into it (position 3000), a NaN label, clipped predictions (p = 0, 1, and
    beyond), against the float64 reference; gradient against the reference's
    finite differences on a slice; the same rows alone (another blocking)."""
    cls, ref_fn, kw = HARD_KW[kw_id]
    rng = _rng("hard_labels", kw_id)
    R_, K = 64, 256  # 16 rows per 4096-element block
    yt = (rng.random((R_, K)) < 0.5).astype(np.float64)
    yp = rng.uniform(0.01, 0.99, (R_, K))
    yt[16 + 3000 // K, 3000 % K] = 0.3  # block 1: one soft label
    yt[40, 7] = np.nan  # block 2: a NaN label (its row's loss is NaN)
    yp[50, :4] = [0.0, 1.0, -0.5, 1.5]  # block 3: clipped predictions
    obj = getattr(L, cls)(reduction="none", **kw)
    loss, grad = obj.value_and_grad(yt, yp)
    want = ref_fn(yt, yp, **kw)
    np.testing.assert_array_equal(np.isnan(loss), np.isnan(want))
    fin = ~np.isnan(want)
    np.testing.assert_allclose(loss[fin], want[fin], rtol=1e-12)
    rows = [0, 17, 27]  # hard, the soft label's block, its neighbour
    sub = lambda x: ref_fn(yt[rows], x, **kw)
    np.testing.assert_allclose(grad[rows], R.fd_grad(sub, yp[rows]), rtol=1e-6, atol=1e-6 * np.abs(grad[rows]).max())
    rows = [0, 17, 27, 50]  # and the clipped predictions
    alone = obj.value_and_grad(yt[rows], yp[rows])
    np.testing.assert_allclose(alone[0], loss[rows], rtol=1e-14)
    np.testing.assert_allclose(alone[1], grad[rows], rtol=1e-14)
    l32, g32 = obj.value_and_grad(yt.astype(np.float32), yp.astype(np.float32))
    fin[50] = False  # float32's 1 - eps is another number: the clipped terms differ
    np.testing.assert_allclose(l32[fin], want[fin], rtol=2e-5)
    tiny = 2e-6 * np.abs(grad[fin]).max()  # (p - y) cancels near p = y
    np.testing.assert_allclose(g32[fin], grad[fin], rtol=1e-4, atol=tiny)


@pytest.mark.parametrize("kw_id", ["bce", "bfce", "sfce"])
def test_hard_labels_clipped_gradient(kw_id):
    """At and beyond the clip, with 0/1 labels: no gradient from the
    cross-entropy (Keras: clip_by_value passes none); BCE's is then exactly 0."""
    cls, ref_fn, kw = HARD_KW[kw_id]
    yt = np.array([[1.0, 0.0, 1.0, 0.0] * 64])
    yp = np.tile([0.0, 1.0, -0.5, 1.5], (1, 64))
    loss, grad = getattr(L, cls)(reduction="none", **kw).value_and_grad(yt, yp)
    np.testing.assert_allclose(loss, ref_fn(yt, yp, **kw), rtol=1e-12)
    if kw_id == "bce":
        assert np.all(grad == 0)


@pytest.mark.parametrize("kw_id", ["bce", "bfce", "sfce"])
def test_hard_labels_nonfinite_predictions(kw_id):
    """0/1 labels with NaN predictions: the NaN reaches the one log (Keras: NaN);
    +-inf is clipped like any large value."""
    cls, ref_fn, kw = HARD_KW[kw_id]
    obj = getattr(L, cls)(reduction="none", **kw)
    yt = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    yp = np.array([[np.nan, np.nan, np.inf, np.inf, -np.inf, 0.5]])
    for dt in (np.float32, np.float64):
        with np.errstate(all="ignore"):
            got = obj(yt.astype(dt), yp.astype(dt))
            want = ref_fn(yt, yp, **kw)
        assert np.isnan(got[0]) and np.isnan(want[0])
    for row in ([np.nan, 0.4, 0.2, 0.6, 0.5, 0.5], [0.3, np.nan, 0.2, 0.6, 0.5, 0.5]):
        with np.errstate(all="ignore"):
            assert np.isnan(obj(yt, np.array([row]))[0])  # a positive's / a negative's NaN
    yp2 = np.array([[0.3, 0.4, 0.2, 0.6, -np.inf, 0.5]])
    with np.errstate(all="ignore"):
        got, want = obj(yt, yp2), ref_fn(yt, yp2, **kw)
    if kw_id == "sfce":  # TFA: (1 - y)(1 - p) = 0 * inf = NaN in p_t; Numba's kernel gives inf
        assert not np.isfinite(got).any() and np.isnan(want).all()
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12)
