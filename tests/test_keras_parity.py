"""fastloss vs the real keras.losses classes (Keras 3, TensorFlow backend), float32:
values AND gradients (tf.GradientTape w.r.t. y_pred)."""

import zlib

import _keras

tf, keras = _keras.load()

import numpy as np
import pytest

from fastloss import losses as L

from _cases import make_inputs, CASE_BY_ID

KL = keras.losses

# (case id in _cases, keras class, keras kwargs)
PAIRS = [
    ("bce", KL.BinaryCrossentropy, {}),
    ("bce_ls", KL.BinaryCrossentropy, dict(label_smoothing=0.2)),
    ("bce_logits", KL.BinaryCrossentropy, dict(from_logits=True)),
    ("bce_logits_ls", KL.BinaryCrossentropy, dict(from_logits=True, label_smoothing=0.1)),
    ("cce", KL.CategoricalCrossentropy, {}),
    ("cce_ls", KL.CategoricalCrossentropy, dict(label_smoothing=0.2)),
    ("cce_logits", KL.CategoricalCrossentropy, dict(from_logits=True)),
    ("cce_logits_ls", KL.CategoricalCrossentropy, dict(from_logits=True, label_smoothing=0.1)),
    ("scce", KL.SparseCategoricalCrossentropy, {}),
    ("scce_logits", KL.SparseCategoricalCrossentropy, dict(from_logits=True)),
    ("scce_ignore_neg", KL.SparseCategoricalCrossentropy, dict(ignore_class=-1)),
    ("scce_logits_ignore2", KL.SparseCategoricalCrossentropy, dict(from_logits=True, ignore_class=2)),
    ("bfce", KL.BinaryFocalCrossentropy, {}),
    (
        "bfce_bal_g3_ls",
        KL.BinaryFocalCrossentropy,
        dict(apply_class_balancing=True, gamma=3.0, alpha=0.4, label_smoothing=0.1),
    ),
    ("bfce_logits", KL.BinaryFocalCrossentropy, dict(from_logits=True)),
    ("bfce_logits_bal_g15", KL.BinaryFocalCrossentropy, dict(from_logits=True, apply_class_balancing=True, gamma=1.5)),
    ("cfce", KL.CategoricalFocalCrossentropy, {}),
    (
        "cfce_logits_ls",
        KL.CategoricalFocalCrossentropy,
        dict(from_logits=True, label_smoothing=0.1, alpha=0.5, gamma=1.0),
    ),
    ("kld", KL.KLDivergence, {}),
    ("poisson", KL.Poisson, {}),
]

REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"]


_keras_value_and_grad = _keras.value_and_grad  # the sample weights are float32 here, as y_pred


@pytest.fixture(scope="module")
def keras_objects():
    return {}


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: p[0])
def test_matches_keras(pair, reduction, weighted, keras_objects):
    cid, kcls, kkw = pair
    case = CASE_BY_ID[cid]
    rng = np.random.default_rng(abs(hash((cid, reduction, weighted))) % 2**32)
    shape = (6, 5)
    yt, yp = make_inputs(case, rng, shape, np.float32)
    if case.logits:
        yp = np.clip(yp, -4, 4).astype(np.float32)  # TF float32 sigmoid loses digits beyond
    yt = yt.astype(np.float32)
    sw = rng.uniform(0.2, 2.0, shape[:-1]).astype(np.float32) if weighted else None
    key = (cid, reduction)
    if key not in keras_objects:
        keras_objects[key] = kcls(reduction=reduction, **kkw)
    kv, kg = _keras_value_and_grad(keras_objects[key], yt, yp, sw)
    fv, fg = case.make(reduction).value_and_grad(yt, yp, sample_weight=sw)
    assert np.asarray(fv).dtype == np.float32 and fg.dtype == np.float32
    assert np.shape(fv) == np.shape(kv)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "cid,kcls,kkw",
    [
        ("bce_logits", KL.BinaryCrossentropy, dict(from_logits=True)),
        ("cce", KL.CategoricalCrossentropy, {}),
        ("cfce", KL.CategoricalFocalCrossentropy, {}),
    ],
)
@pytest.mark.parametrize("axis", [1, -2])
def test_matches_keras_axis_3d(cid, kcls, kkw, axis):
    # Keras' TF backend refuses SCCE with axis != -1, and Keras' label smoothing with axis != -1
    # divides by shape[-1] instead of the class-axis size (a Keras quirk; fastloss uses the class
    # axis), so this test uses no label smoothing.
    case = CASE_BY_ID[cid]
    rng = np.random.default_rng(3)
    yt_last, yp_last = make_inputs(case, rng, (2, 3, 4), np.float32)
    yp = np.ascontiguousarray(np.moveaxis(yp_last, -1, axis % 3))
    yt = yt_last if case.sparse else np.ascontiguousarray(np.moveaxis(yt_last, -1, axis % 3))
    yt = yt.astype(np.float32)
    kv, kg = _keras_value_and_grad(kcls(axis=axis, **kkw), yt, yp, None)
    fv, fg = case.make("sum_over_batch_size", axis=axis).value_and_grad(yt, yp)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cid,kw", [
    ("cfce", dict(alpha=[0.1, 0.4, 1.0, 2.5, 0.75])),
    ("cfce", dict(alpha=[0.6])),
    ("cfce_logits_ls", dict(alpha=[2.0, 0.5, 0.25, 1.0, 0.1], gamma=1.5)),
], ids=["probs", "one_element", "logits_ls"])
def test_matches_keras_categorical_focal_per_class_alpha(cid, kw, reduction, weighted):
    """Keras 3 takes CategoricalFocalCrossentropy's alpha as a list, one per
    class (multiplied along the last axis)."""
    case = CASE_BY_ID[cid]
    rng = np.random.default_rng(abs(hash((cid, str(kw), reduction, weighted))) % 2**32)
    yt, yp = make_inputs(case, rng, (6, 5), np.float32)
    yt = yt.astype(np.float32)
    sw = rng.uniform(0.2, 2.0, 6).astype(np.float32) if weighted else None
    kkw = {**case.kw, **kw}
    kv, kg = _keras_value_and_grad(KL.CategoricalFocalCrossentropy(reduction=reduction, **kkw), yt, yp, sw)
    fv, fg = L.CategoricalFocalCrossentropy(reduction=reduction, **kkw).value_and_grad(yt, yp, sample_weight=sw)
    assert np.shape(fv) == np.shape(kv)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


def test_matches_keras_edge_probabilities():
    """Exact 0/1 probabilities: values and clip-gated gradients match TF."""
    yt = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]], np.float32)
    yp = np.array([[0.0, 1.0, 1.0, 0.0], [0.3, 0.0, 0.5, 1.0]], np.float32)
    for kcls, fcls in [(KL.BinaryCrossentropy, L.BinaryCrossentropy), (KL.BinaryFocalCrossentropy, L.BinaryFocalCrossentropy)]:
        kv, kg = _keras_value_and_grad(kcls(reduction="none"), yt, yp, None)
        fv, fg = fcls(reduction="none").value_and_grad(yt, yp)
        np.testing.assert_allclose(fv, kv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kw", [dict(), dict(gamma=0.0), dict(gamma=1.5, apply_class_balancing=True, alpha=0.4),
                                dict(label_smoothing=0.1)])
def test_binary_focal_from_logits_large_logits(kw):
    """Keras 3 on TensorFlow takes the focal loss' cross-entropy from the
    logits (its sigmoid keeps them): no clip, so a confidently wrong logit
    keeps its full loss and gradient (a clipped sigmoid stops at 16.1 and a
    gradient of ~0). Values and gradients at |logit| up to 40, float64."""
    yt = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0, 0.0, 1.0]])
    yp = np.array([[-20.0, 20.0, -40.0, 40.0, 17.0, -17.0], [3.0, -2.0, 0.5, -0.5, 25.0, 30.0]])
    x = tf.constant(yp)
    kobj = KL.BinaryFocalCrossentropy(from_logits=True, reduction="none", dtype="float64", **kw)
    with tf.GradientTape() as tape:
        tape.watch(x)
        kv = kobj(tf.constant(yt), x)
        s = tf.reduce_sum(kv)
    kg = tape.gradient(s, x).numpy()
    fv, fg = L.BinaryFocalCrossentropy(from_logits=True, reduction="none", **kw).value_and_grad(yt, yp)
    np.testing.assert_allclose(fv, kv.numpy(), rtol=1e-12)
    np.testing.assert_allclose(fg, kg, rtol=1e-10, atol=1e-15)



# Keras classes (with kwargs) and whether Keras 3 on TensorFlow broadcasts
# their inputs: its cross-entropy ops refuse different shapes.
BROADCAST_CLASSES = [
    ("MeanSquaredError", {}), ("MeanAbsoluteError", {}), ("MeanAbsolutePercentageError", {}),
    ("MeanSquaredLogarithmicError", {}), ("Huber", dict(delta=0.5)), ("LogCosh", {}), ("Hinge", {}),
    ("SquaredHinge", {}), ("CategoricalHinge", {}), ("KLDivergence", {}), ("Poisson", {}),
    ("CosineSimilarity", {}), ("CategoricalFocalCrossentropy", {}),
    ("CategoricalFocalCrossentropy", dict(from_logits=True, label_smoothing=0.1)),
    ("BinaryCrossentropy", {}), ("BinaryCrossentropy", dict(from_logits=True)), ("CategoricalCrossentropy", {}),
    ("BinaryFocalCrossentropy", dict(from_logits=True)), ("CategoricalCrossentropy", dict(from_logits=True)),
]
# (y_true's shape, y_pred's shape): a target row for the batch, a scalar
# target, a per-row target against many columns, a prediction row broadcast
# against the batch (its gradient is the sum over the rows), Keras' rank fix
# (a trailing 1) before the broadcast, a one-column prediction.
BROADCAST_SHAPES = [((1, 5), (4, 5)), ((), (4, 5)), ((4, 1), (4, 5)), ((4, 5), (1, 5)), ((3, 4, 5), (4, 5)),
                    ((3, 4, 1), (1, 4)), ((4, 5), (5,)), ((2, 4, 5), (4, 1))]
# Keras works along these inputs' own class axis BEFORE broadcasting (cosine
# normalizes both, so a one-column input becomes all ones; categorical focal
# normalizes y_pred and takes label smoothing's class count from y_true):
# fastloss refuses a broadcast along the class axis there.
REFUSED_CLASS_AXIS = {(n, i) for n in ("CosineSimilarity", "CategoricalFocalCrossentropy") for i in (1, 2, 7)}


@pytest.mark.parametrize("shape_i", range(len(BROADCAST_SHAPES)), ids=lambda i: str(BROADCAST_SHAPES[i]))
@pytest.mark.parametrize("pair", BROADCAST_CLASSES, ids=lambda p: p[0] + ("_logits" if p[1].get("from_logits") else ""))
def test_matches_keras_broadcast_shapes(pair, shape_i):
    """y_true and y_pred of shapes that broadcast, as Keras 3 on TensorFlow
    broadcasts them: values and gradients (summed over a broadcast y_pred)
    match; where Keras refuses (its cross-entropy ops), fastloss does too."""
    name, kw = pair
    st, sp = BROADCAST_SHAPES[shape_i]
    rng = np.random.default_rng(7)
    yt = rng.uniform(0.05, 0.95, st).astype(np.float32)
    if name.endswith("Hinge"):
        yt = np.round(yt)
    yp = (rng.normal(size=sp) if kw.get("from_logits") or name == "CosineSimilarity"
          else rng.uniform(0.05, 0.95, sp)).astype(np.float32)
    fobj = getattr(L, name)(reduction="none", **kw)
    try:
        kv, kg = _keras_value_and_grad(getattr(KL, name)(reduction="none", **kw), yt, yp, None)
    except (ValueError, IndexError):  # Keras refuses these shapes (or fails on them)
        with pytest.raises(ValueError, match="same shape|must not broadcast along the class axis"):
            fobj.value_and_grad(yt, yp)
        return
    if (name, shape_i) in REFUSED_CLASS_AXIS:
        with pytest.raises(ValueError, match="must not broadcast along the class axis"):
            fobj.value_and_grad(yt, yp)
        return
    fv, fg = fobj.value_and_grad(yt, yp)
    assert np.shape(fv) == np.shape(kv) and fg.shape == yp.shape
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)
    fs, fgs = getattr(L, name)(reduction="sum_over_batch_size", **kw).value_and_grad(yt, yp)
    np.testing.assert_allclose(fs, np.mean(kv), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fgs * np.size(kv), kg, rtol=1e-4, atol=1e-5)


# (y shape, weight shape): weights that Keras' multiplication broadcasts the per-sample
# losses to (a 1-D target with one weight per element: its loss is one number), Keras'
# rank fix of a 0-d weight against a loss of shape (1,), and plain per-sample weights.
WEIGHT_SHAPES = [((5,), (5,)), ((3, 4), (2, 3)), ((3, 4), (3, 3)), ((2, 3), (4, 1, 2)), ((1, 4), ()), ((3, 4), (3, 1))]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shapes", WEIGHT_SHAPES, ids=str)
@pytest.mark.parametrize("name,kw", [("MeanSquaredError", {}), ("BinaryCrossentropy", {}),
                                     ("CategoricalFocalCrossentropy", dict(from_logits=True)), ("Huber", {})],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_matches_keras_weight_shapes(name, kw, shapes, reduction):
    ys, wsh = shapes
    rng = np.random.default_rng(11)
    yt = rng.integers(0, 2, ys).astype(np.float32)
    yp = (rng.normal(size=ys) if kw.get("from_logits") else rng.uniform(0.05, 0.95, ys)).astype(np.float32)
    sw = rng.uniform(0.2, 2.0, wsh).astype(np.float32)
    kv, kg = _keras_value_and_grad(getattr(KL, name)(reduction=reduction, **kw), yt, yp, sw)
    fv, fg = getattr(L, name)(reduction=reduction, **kw).value_and_grad(yt, yp, sample_weight=sw)
    assert np.shape(fv) == np.shape(kv)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


# ---- seeded random calls ----------------------------------------------------------------
# Shapes of rank 1-3 (a 1-D target has ONE per-sample loss), every reduction, sample
# weights of the per-sample loss' shape, a leading-axis shape, a scalar, or none. Values,
# their shapes and gradients must match; where Keras refuses the weights, fastloss must
# refuse them too (a ValueError naming sample_weight). This is how the weights that spread
# the per-sample losses (a 1-D loss with one weight per element) were found to fail; the
# fixed-shape tests above did not cover them.

# (class, kwargs, y_true kind, y_pred kind (from_logits: normal))
FUZZ_SPECS = [
    ("BinaryCrossentropy", dict(label_smoothing=0.1), "bin", "prob"),
    ("BinaryCrossentropy", dict(from_logits=True), "bin", "prob"),
    ("CategoricalCrossentropy", {}, "onehot", "probrow"),
    ("CategoricalCrossentropy", dict(from_logits=True, label_smoothing=0.2), "onehot", "probrow"),
    ("BinaryFocalCrossentropy", dict(apply_class_balancing=True, alpha=0.3), "bin", "prob"),
    ("CategoricalFocalCrossentropy", dict(alpha=0.4, gamma=1.5), "onehot", "probrow"),
    ("KLDivergence", {}, "probrow", "probrow"),
    ("Poisson", {}, "pos", "pos"),
    ("MeanSquaredError", {}, "normal", "normal"),
    ("MeanAbsoluteError", {}, "normal", "normal"),
    ("MeanSquaredLogarithmicError", {}, "pos", "pos"),
    ("Huber", dict(delta=0.3), "normal", "normal"),
    ("LogCosh", {}, "normal", "normal"),
    ("CosineSimilarity", {}, "normal", "normal"),
    ("Hinge", {}, "pm1", "normal"),
    ("CategoricalHinge", {}, "onehot", "normal"),
]
FUZZ_REDUCTIONS = REDUCTIONS + [None]
FUZZ_TRIALS = 5


def _fuzz_gen(rng, kind, shape):
    if kind == "prob":
        return rng.uniform(0.01, 0.99, shape)
    if kind == "probrow":
        p = rng.uniform(0.05, 1.0, shape)
        return p / p.sum(-1, keepdims=True)
    if kind == "bin":
        return (rng.random(shape) > 0.5).astype(float)
    if kind == "onehot":
        return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]
    if kind == "normal":
        return rng.normal(size=shape)
    if kind == "pos":
        return rng.uniform(0.1, 3.0, shape)
    return np.where(rng.random(shape) > 0.5, 1.0, -1.0)  # pm1


def _fuzz_case(i):
    spec_i, trial = divmod(i, FUZZ_TRIALS)
    name, kw, ytk, ypk = FUZZ_SPECS[spec_i]
    rng = np.random.default_rng(1000 + i)
    shape = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 4))))
    # class-axis losses get 2+ classes (cosine of 1-element vectors is constant: its
    # exact gradient 0 is only float32 noise in Keras, up to 2e-6)
    if (ytk in ("onehot", "probrow") or name == "CosineSimilarity") and shape[-1] < 2:
        shape = shape[:-1] + (3,)
    yt = _fuzz_gen(rng, ytk, shape).astype(np.float32)
    yp = _fuzz_gen(rng, "normal" if kw.get("from_logits") else ypk, shape).astype(np.float32)
    S = shape[:-1]
    sw = [None, S, (2,) + S, (3,) + shape, ()][trial]  # (3,) + shape: rarely fits (Keras refuses the rest)
    sw = None if sw is None else rng.uniform(0.2, 2.0, sw).astype(np.float32)
    return name, kw, yt, yp, sw, FUZZ_REDUCTIONS[int(rng.integers(len(FUZZ_REDUCTIONS)))]


@pytest.mark.parametrize("i", range(len(FUZZ_SPECS) * FUZZ_TRIALS))
def test_random_calls_match_keras(i):
    name, kw, yt, yp, sw, reduction = _fuzz_case(i)
    obj = getattr(L, name)(reduction=reduction, **kw)
    try:
        kv, kg = _keras_value_and_grad(getattr(KL, name)(reduction=reduction, **kw), yt, yp, sw)
    except (ValueError, tf.errors.InvalidArgumentError):  # Keras refuses these weights
        with pytest.raises(ValueError, match="sample_weight"):
            obj.value_and_grad(yt, yp, sample_weight=sw)
        return
    fv, fg = obj.value_and_grad(yt, yp, sample_weight=sw)
    assert np.shape(fv) == np.shape(kv), (name, yt.shape, None if sw is None else sw.shape, reduction)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["MeanSquaredError", "BinaryCrossentropy", "CategoricalCrossentropy", "Huber"])
def test_float64_inputs_dtype_rule(name):
    """The one documented dtype difference (README "calling conventions"): a Keras
    object without ``dtype`` computes float64 inputs in float32; fastloss keeps
    float64, and ``dtype="float32"`` gives Keras' result."""
    rng = np.random.default_rng(7)
    yt = rng.uniform(0.05, 0.95, (5, 3))
    yp = rng.uniform(0.05, 0.95, (5, 3))
    if name == "CategoricalCrossentropy":
        yt /= yt.sum(-1, keepdims=True)
    kv = getattr(KL, name)()(yt, yp).numpy()
    assert kv.dtype == np.float32
    own = getattr(L, name)()(yt, yp)
    assert own.dtype == np.float64
    np.testing.assert_allclose(own, getattr(KL, name)(dtype="float64")(yt, yp).numpy(), rtol=1e-12)
    as32 = getattr(L, name)(dtype="float32")(yt, yp)
    assert as32.dtype == np.float32
    np.testing.assert_allclose(as32, kv, rtol=1e-6)


# ---- identifiers: Keras' names and serialized configs ---------------------------------

try:  # Keras 3's table of names behind keras.losses.get (a private module: may move)
    from keras.src.losses import ALL_OBJECTS_DICT as _KERAS_OBJECTS  # noqa: E402
except ImportError:  # pragma: no cover
    _KERAS_OBJECTS = {}


@pytest.mark.skipif(not _KERAS_OBJECTS, reason="keras.src.losses.ALL_OBJECTS_DICT not found in this Keras")
@pytest.mark.parametrize("name", sorted(_KERAS_OBJECTS) or ["-"])
def test_every_keras_identifier_resolves_or_says_why(name):
    """Each name keras.losses.get knows is a fastloss class/function of that name,
    or a clear ValueError for the Keras losses outside fastloss."""
    if name in ("Loss", "LossFunctionWrapper"):
        pytest.skip("Keras' base classes")
    if name in ("Dice", "Tversky", "Circle", "CTC", "dice", "tversky", "circle", "ctc"):
        with pytest.raises(ValueError, match="no fastloss equivalent"):
            L.get(name)
        return
    ko = KL.get(name)
    fo = L.get(name)
    if isinstance(ko, KL.Loss):
        assert type(fo).__name__ == type(ko).__name__
        return
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # str hash() changes per process
    y = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, (4, 3)).astype(np.float32)
    if "sparse" in ko.__name__:
        y = rng.integers(0, 3, 4)
    if "categorical" in ko.__name__ and "sparse" not in ko.__name__:
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]
    np.testing.assert_allclose(fo(y, p), np.asarray(ko(y, p)), rtol=2e-5, atol=1e-6)


KERAS_CONFIG_OBJECTS = [
    lambda: KL.BinaryCrossentropy(from_logits=True, label_smoothing=0.1, reduction="sum"),
    lambda: KL.CategoricalCrossentropy(label_smoothing=0.2, reduction="mean_with_sample_weight"),
    lambda: KL.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction=None),
    lambda: KL.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.4, gamma=3.0, from_logits=True),
    lambda: KL.CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5], gamma=1.0),
    lambda: KL.KLDivergence(reduction="sum"),
    lambda: KL.Poisson(),
    lambda: KL.MeanAbsolutePercentageError(reduction="none"),
    lambda: KL.Huber(delta=2.0),  # Keras 3.15's config omits delta: both sides fall back to 1.0
    lambda: KL.LogCosh(),
    lambda: KL.CosineSimilarity(axis=0),  # ... and axis
    lambda: KL.CategoricalHinge(reduction="sum"),
]


@pytest.mark.parametrize("i", range(len(KERAS_CONFIG_OBJECTS)))
def test_keras_serialized_configs_deserialize_to_the_same_loss(i):
    """keras.losses.serialize(obj) -> JSON -> fastloss.losses.deserialize computes
    what Keras' own deserialize of the same dict computes (values and gradients)."""
    import json

    kobj = KERAS_CONFIG_OBJECTS[i]()
    d = json.loads(json.dumps(KL.serialize(kobj)))
    kagain = KL.deserialize(d)
    fobj = L.deserialize(d)
    assert type(fobj).__name__ == type(kobj).__name__
    assert fobj.reduction == (kagain.reduction or "none")
    rng = np.random.default_rng(100 + i)
    name = type(kobj).__name__
    p = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    if name.startswith("Sparse"):
        y = rng.integers(0, 3, 5)
        p = rng.normal(size=(5, 3)).astype(np.float32)
    elif name.startswith("Categorical"):
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    elif name == "Huber":
        y = rng.normal(0.0, 3.0, (5, 3)).astype(np.float32)  # beyond delta = 1 and 2
    else:
        y = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    sw = rng.uniform(0.5, 2.0, 5).astype(np.float32)
    kv, kg = _keras_value_and_grad(kagain, y, p, sw)
    fv, fg = fobj.value_and_grad(y, p, sample_weight=sw)
    np.testing.assert_allclose(fv, kv, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("i", range(len(KERAS_CONFIG_OBJECTS)))
def test_call_gives_keras_per_sample_losses(i):
    """Loss.call: unreduced and unweighted whatever the reduction (and, in
    fastloss, whatever the class_weight), as Keras' call."""
    kobj = KERAS_CONFIG_OBJECTS[i]()
    name = type(kobj).__name__
    # the arguments Keras' config omits, given directly
    extra = {"Huber": dict(delta=2.0), "CosineSimilarity": dict(axis=0)}.get(name, {})
    fobj = getattr(L, name).from_config(dict(KL.serialize(kobj)["config"], **extra))
    fobj.class_weight = {0: 3.0, 1: 5.0}
    rng = np.random.default_rng(200 + i)
    p = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    if name.startswith("Sparse"):
        y = rng.integers(0, 3, 5)
    elif name.startswith("Categorical"):
        y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 5)]
    elif name == "Huber":
        y = rng.normal(0.0, 3.0, (5, 3)).astype(np.float32)
    else:
        y = rng.uniform(0.05, 0.95, (5, 3)).astype(np.float32)
    np.testing.assert_allclose(fobj.call(y, p), np.asarray(kobj.call(y, p)), rtol=2e-5, atol=1e-6)
