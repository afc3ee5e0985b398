"""The Keras 3 side of the parity tests (test_keras_parity.py, test_keras_fuzz.py):
TensorFlow and Keras loaded with the TensorFlow backend, or the calling module
skipped; and Keras' loss with its gradient w.r.t. y_pred by tf.GradientTape."""

import os

import numpy as np
import pytest


def load():
    """``(tf, keras)``; skips the calling test module where either is missing
    or Keras runs on another backend. Call it at module level, before anything
    imports TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":  # pragma: no cover
        pytest.skip("Keras parity needs the TensorFlow backend", allow_module_level=True)
    tf.get_logger().setLevel("ERROR")
    return tf, keras


def value_and_grad(kobj, yt, yp, sw):
    """Keras' loss ``kobj(yt, yp, sample_weight=sw)`` and the gradient of its
    sum w.r.t. ``yp`` (the weights in yp's dtype), as NumPy arrays; a loss
    that does not depend on ``yp`` (every label ignored) has a zero gradient."""
    import tensorflow as tf

    x = tf.constant(yp)
    with tf.GradientTape() as tape:
        tape.watch(x)
        v = kobj(tf.constant(yt), x, sample_weight=None if sw is None else tf.constant(sw, x.dtype))
        s = tf.reduce_sum(v)
    g = tape.gradient(s, x)
    return v.numpy(), (np.zeros_like(yp) if g is None else g.numpy())
