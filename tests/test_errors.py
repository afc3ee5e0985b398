"""Bad arguments raise ValueError/TypeError whose message names the argument."""

import numpy as np
import pytest

from fastloss import losses as L

YP = np.array([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
YT = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])

DENSE = [
    L.BinaryCrossentropy,
    L.CategoricalCrossentropy,
    L.BinaryFocalCrossentropy,
    L.CategoricalFocalCrossentropy,
    L.SigmoidFocalCrossEntropy,
    L.KLDivergence,
    L.Poisson,
]
ALL = DENSE + [L.SparseCategoricalCrossentropy]


def _yt(cls):
    return np.array([1, 2]) if cls is L.SparseCategoricalCrossentropy else YT


@pytest.mark.parametrize("cls", DENSE)
@pytest.mark.parametrize("bad_shape", [(2, 4), (3, 3), (2, 3, 2), (6,)])
def test_dense_shape_mismatch(cls, bad_shape):
    with pytest.raises(ValueError, match="y_true"):
        cls()(np.zeros(bad_shape), YP)


@pytest.mark.parametrize("bad", [np.array([1, 2, 0]), np.array([[1, 2]]), np.zeros((2, 3), int)])
def test_scce_label_shape_mismatch(bad):
    with pytest.raises(ValueError, match="y_true"):
        L.SparseCategoricalCrossentropy()(bad, YP)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize(
    "labels,shown",
    [([1, 3], "3"), ([-1, 0], "-1"), ([0, 7.0], "7"), ([0, 1.5], "1.5"), ([np.nan, 0], "nan")],
)
def test_scce_bad_labels(from_logits, labels, shown):
    lab = np.array(labels)
    with pytest.raises(ValueError) as ei:
        L.SparseCategoricalCrossentropy(from_logits=from_logits)(lab, YP)
    msg = str(ei.value)
    assert "y_true" in msg
    assert shown in msg.lower(), msg
    row = int(np.flatnonzero([not (float(v) == int(v) and 0 <= v < 3) if v == v else True for v in labels])[0])
    assert str(row) in msg


def test_scce_bad_label_names_row_in_big_batch():
    rng = np.random.default_rng(0)
    yp = rng.uniform(0.1, 1, (5000, 10))
    lab = rng.integers(0, 10, 5000)
    lab[4321] = 10
    with pytest.raises(ValueError, match="4321"):
        L.SparseCategoricalCrossentropy()(lab, yp)
    with pytest.raises(ValueError, match="4321"):
        L.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(lab, yp)


def test_scce_ignore_class_out_of_range_is_fine_but_others_not():
    L.SparseCategoricalCrossentropy(ignore_class=255)(np.array([255, 1]), YP)
    with pytest.raises(ValueError, match="254"):
        L.SparseCategoricalCrossentropy(ignore_class=255)(np.array([254, 1]), YP)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("reduction", ["avg", "SUM_OVER_EVERYTHING", 3, ""])
def test_unknown_reduction(cls, reduction):
    with pytest.raises(ValueError, match="reduction"):
        cls(reduction=reduction)


@pytest.mark.parametrize("cls", ALL)
# The per-sample loss has shape (2,): Keras multiplies it by the weights, so these
# do not broadcast with it ((2, 2) would: see test_edge_cases' spreading weights).
@pytest.mark.parametrize("sw", [np.ones(3), np.ones((2, 3)), np.ones((1, 3)), np.ones(1 + 4)])
def test_sample_weight_wrong_shape(cls, sw):
    with pytest.raises(ValueError, match="sample_weight"):
        cls()(_yt(cls), YP, sample_weight=sw)


@pytest.mark.parametrize("cls", ALL)
def test_string_inputs(cls):
    with pytest.raises(TypeError, match="y_pred"):
        cls()(_yt(cls), np.array([["a", "b", "c"], ["d", "e", "f"]]))
    with pytest.raises(TypeError, match="y_true"):
        cls()(np.array(["a", "b"]) if cls is L.SparseCategoricalCrossentropy else YT.astype(str), YP)
    with pytest.raises(TypeError, match="sample_weight"):
        cls()(_yt(cls), YP, sample_weight=np.array(["x", "y"]))


@pytest.mark.parametrize(
    "cls", [L.BinaryCrossentropy, L.CategoricalCrossentropy, L.BinaryFocalCrossentropy, L.CategoricalFocalCrossentropy]
)
@pytest.mark.parametrize("ls", [-0.1, 1.5, float("nan")])
def test_bad_label_smoothing_value(cls, ls):
    with pytest.raises(ValueError, match="label_smoothing"):
        cls(label_smoothing=ls)


@pytest.mark.parametrize("ls", ["0.1", None, [0.1]])
def test_bad_label_smoothing_type(ls):
    with pytest.raises(TypeError, match="label_smoothing"):
        L.BinaryCrossentropy(label_smoothing=ls)


@pytest.mark.parametrize("cls", [L.BinaryFocalCrossentropy, L.CategoricalFocalCrossentropy, L.SigmoidFocalCrossEntropy])
@pytest.mark.parametrize("gamma", [-0.5, -2])
def test_negative_gamma(cls, gamma):
    with pytest.raises(ValueError, match="gamma"):
        cls(gamma=gamma)


@pytest.mark.parametrize("cls", [L.BinaryFocalCrossentropy, L.CategoricalFocalCrossentropy, L.SigmoidFocalCrossEntropy])
def test_bad_gamma_alpha_type(cls):
    with pytest.raises(TypeError, match="gamma"):
        cls(gamma="2")
    with pytest.raises(TypeError, match="gamma"):
        cls(gamma=float("inf"))
    with pytest.raises(TypeError, match="alpha"):
        cls(alpha="x")


@pytest.mark.parametrize("cls", [L.BinaryFocalCrossentropy, L.SigmoidFocalCrossEntropy])
def test_binary_focal_alpha_is_one_number(cls):
    """Keras' binary focal and TFA's sigmoid focal take one alpha (the
    positive class' share); a list is refused, not broadcast."""
    with pytest.raises(TypeError, match="alpha"):
        cls(alpha=[0.25, 0.75])


@pytest.mark.parametrize(
    "alpha, exc, match",
    [
        ("0.5", TypeError, "alpha"),
        ([[0.1, 0.2, 0.3]], TypeError, "1-D"),
        (["a", "b", "c"], TypeError, "alpha"),
        ([True, False, True], TypeError, "alpha"),
        ({0: 0.5}, TypeError, "alpha"),
        ([], ValueError, "empty"),
        ([0.1, float("nan"), 0.3], ValueError, "finite"),
        ([0.1, float("inf"), 0.3], ValueError, "finite"),
    ],
)
def test_categorical_focal_bad_alpha_at_construction(alpha, exc, match):
    with pytest.raises(exc, match=match):
        L.CategoricalFocalCrossentropy(alpha=alpha)


def test_categorical_focal_alpha_per_class_mismatch_at_call():
    """A per-class alpha must have one value per class, and the class axis
    last: Keras multiplies a list along the last axis whatever `axis` is, so
    fastloss refuses rather than weight another axis."""
    yt = np.eye(3)[[0, 1, 2, 1]]
    yp = np.full((4, 3), 1.0 / 3)
    with pytest.raises(ValueError, match=r"`alpha` has 2 values; y_pred has 3 classes"):
        L.CategoricalFocalCrossentropy(alpha=[0.5, 0.5])(yt, yp)
    with pytest.raises(ValueError, match=r"`alpha` has 4 values; y_pred has 3 classes"):
        L.CategoricalFocalCrossentropy(alpha=[0.5] * 4).value_and_grad(yt, yp)
    yt3 = np.moveaxis(np.eye(3)[np.zeros((2, 3), int)], -1, 1)  # (2, 3 classes, 3)
    yp3 = np.full((2, 3, 3), 1.0 / 3)
    with pytest.raises(ValueError, match="class axis last"):
        L.CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5], axis=1)(yt3, yp3)
    # one number (or a one-element list) is fine on any axis
    v1 = L.CategoricalFocalCrossentropy(alpha=[0.4], axis=1)(yt3, yp3)
    assert v1 == L.CategoricalFocalCrossentropy(alpha=0.4, axis=1)(yt3, yp3)
    # 2-D inputs with axis=1 have the class axis last
    assert np.isfinite(L.CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5], axis=1)(yt, yp))


@pytest.mark.parametrize(
    "cls",
    [
        L.BinaryCrossentropy,
        L.CategoricalCrossentropy,
        L.SparseCategoricalCrossentropy,
        L.BinaryFocalCrossentropy,
        L.CategoricalFocalCrossentropy,
    ],
)
def test_bad_axis(cls):
    with pytest.raises(ValueError, match="axis"):
        cls(axis=2)(_yt(cls), YP)
    with pytest.raises(ValueError, match="axis"):
        cls(axis=-3)(_yt(cls), YP)
    with pytest.raises(TypeError, match="axis"):
        cls(axis=1.0)
    with pytest.raises(TypeError, match="axis"):
        cls(axis=None)


@pytest.mark.parametrize("cls", ALL)
def test_bad_grad_out(cls):
    obj, yt = cls(), _yt(cls)
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=np.empty((2, 4)))
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=np.empty((3, 2)).T)
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=np.empty((2, 6))[:, ::2])
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=ro)
    yp = YP.copy()
    before = yp.copy()
    with pytest.raises(ValueError, match="grad_out"):
        obj.value_and_grad(yt, yp, grad_out=yp)
    np.testing.assert_array_equal(yp, before)
    with pytest.raises(TypeError, match="grad_out"):
        obj.value_and_grad(yt, YP, grad_out=[[0.0] * 3] * 2)


def test_grad_out_aliasing_y_true():
    yt = YT.copy()
    with pytest.raises(ValueError, match="grad_out"):
        L.CategoricalCrossentropy().value_and_grad(yt, YP, grad_out=yt)


@pytest.mark.parametrize("cls", ALL)
def test_class_weight_array_too_short(cls):
    with pytest.raises(ValueError, match="class_weight"):
        cls(class_weight=[1.0, 2.0])(_yt(cls), YP)  # label/argmax 2 needs 3 entries


def test_class_weight_bad_keys():
    with pytest.raises(TypeError, match="class_weight"):
        L.CategoricalCrossentropy(class_weight={"a": 1.0})(YT, YP)


def test_scalar_y_pred():
    with pytest.raises(ValueError, match="y_pred"):
        L.BinaryCrossentropy()(1.0, 0.5)


def test_empty_class_axis():
    with pytest.raises(ValueError, match="y_pred"):
        L.CategoricalCrossentropy()(np.zeros((2, 0)), np.zeros((2, 0)))


def test_bad_dtype_argument():
    with pytest.raises(ValueError, match="dtype"):
        L.BinaryCrossentropy(dtype="int32")
    # Keras' policy names are not NumPy dtypes: the same clear message, not NumPy's
    with pytest.raises(TypeError, match="`dtype` must be 'float32' or 'float64'"):
        L.BinaryCrossentropy(dtype="mixed_float16")


def test_ignore_class_type():
    with pytest.raises(TypeError, match="ignore_class"):
        L.SparseCategoricalCrossentropy(ignore_class=1.5)
