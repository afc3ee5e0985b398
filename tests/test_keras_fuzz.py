"""Seeded random calls of the Keras 3 loss classes against the real Keras ones:
shapes of rank 1-3 (a 1-D target has ONE per-sample loss), every reduction,
sample weights of the per-sample loss' shape, a leading-axis shape, a scalar, or
none. Values, their shapes and gradients must match; where Keras refuses the
weights, fastloss must refuse them too (a ValueError naming sample_weight).

This is how the weights that spread the per-sample losses (a 1-D loss with one
weight per element) were found to fail; the fixed-shape tests elsewhere did not
cover them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "tensorflow":  # pragma: no cover
    pytest.skip("Keras parity needs the TensorFlow backend", allow_module_level=True)

from fastloss import losses as L

pytestmark = pytest.mark.per_backend

# (class, kwargs, y_true kind, y_pred kind (from_logits: normal))
SPECS = [
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
REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight", None]
TRIALS = 5


def _gen(rng, kind, shape):
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


def _case(i):
    spec_i, trial = divmod(i, TRIALS)
    name, kw, ytk, ypk = SPECS[spec_i]
    rng = np.random.default_rng(1000 + i)
    shape = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 4))))
    # class-axis losses get 2+ classes (cosine of 1-element vectors is constant: its
    # exact gradient 0 is only float32 noise in Keras, up to 2e-6)
    if (ytk in ("onehot", "probrow") or name == "CosineSimilarity") and shape[-1] < 2:
        shape = shape[:-1] + (3,)
    yt = _gen(rng, ytk, shape).astype(np.float32)
    yp = _gen(rng, "normal" if kw.get("from_logits") else ypk, shape).astype(np.float32)
    S = shape[:-1]
    sw = [None, S, (2,) + S, (3,) + shape, ()][trial]  # (3,) + shape: rarely fits (Keras refuses the rest)
    sw = None if sw is None else rng.uniform(0.2, 2.0, sw).astype(np.float32)
    return name, kw, yt, yp, sw, REDUCTIONS[int(rng.integers(len(REDUCTIONS)))]


@pytest.mark.parametrize("i", range(len(SPECS) * TRIALS))
def test_random_calls_match_keras(i):
    name, kw, yt, yp, sw, reduction = _case(i)
    obj = getattr(L, name)(reduction=reduction, **kw)
    x = tf.Variable(yp)
    try:
        with tf.GradientTape() as tape:
            kv = getattr(keras.losses, name)(reduction=reduction, **kw)(tf.constant(yt), x, sample_weight=sw)
            s = tf.reduce_sum(kv)
    except (ValueError, tf.errors.InvalidArgumentError):  # Keras refuses these weights
        with pytest.raises(ValueError, match="sample_weight"):
            obj.value_and_grad(yt, yp, sample_weight=sw)
        return
    kg = tape.gradient(s, x).numpy()
    fv, fg = obj.value_and_grad(yt, yp, sample_weight=sw)
    assert np.shape(fv) == np.shape(kv), (name, yt.shape, None if sw is None else sw.shape, reduction)
    np.testing.assert_allclose(fv, kv.numpy(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(fg, kg, rtol=1e-4, atol=1e-6)
