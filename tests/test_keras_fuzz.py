"""fastloss against the real Keras 3 loss classes on random configurations:
loss and its options, rank 1-3 inputs, ``axis``, float32/float64, the four
reductions and sample weights of every shape Keras takes (none, scalar, per
batch row, per loss element, per row with a trailing 1, some zero). Values,
gradients (tf.GradientTape), output shapes and dtypes; where Keras refuses
the inputs, fastloss must refuse them too. A seeded sample of the space the
fixed cases of test_keras_parity.py leave out (a 1,800-case run of this
generator found no difference but the documented ones below).

Left out on purpose, as documented in fastloss.losses: categorical label
smoothing with ``axis`` other than the last (Keras divides by ``shape[-1]``),
and Keras' float64 LogCosh, whose ``log(2)`` is computed in float32 (compared
at 1e-7 relative here instead of 1e-9)."""

import zlib

import _keras

tf, keras = _keras.load()

import numpy as np
import pytest

from fastloss import losses as L

# name, option choices, input kind
SPECS = [
    ("BinaryCrossentropy", dict(from_logits=[False, True], label_smoothing=[0.0, 0.2], axis=[-1, 0, 1]), "bin"),
    ("CategoricalCrossentropy", dict(from_logits=[False, True], label_smoothing=[0.0, 0.1], axis=[-1, 0, 1]), "cat"),
    ("SparseCategoricalCrossentropy", dict(from_logits=[False, True], ignore_class=[None, -1, 1]), "sparse"),
    ("BinaryFocalCrossentropy", dict(from_logits=[False, True], apply_class_balancing=[False, True],
                                     gamma=[0.0, 2.0, 0.5], label_smoothing=[0.0, 0.1], axis=[-1, 0]), "bin"),
    ("CategoricalFocalCrossentropy", dict(from_logits=[False, True], gamma=[0.0, 2.0, 1.5], alpha=[0.25, 0.7],
                                          label_smoothing=[0.0, 0.1], axis=[-1, 0]), "cat"),
    ("KLDivergence", {}, "pos_cat"),
    ("Poisson", {}, "pos"),
    ("MeanSquaredError", {}, "reg"),
    ("MeanAbsoluteError", {}, "reg"),
    ("MeanAbsolutePercentageError", {}, "reg"),
    ("MeanSquaredLogarithmicError", {}, "pos"),
    ("Huber", dict(delta=[1.0, 0.3]), "reg"),
    ("LogCosh", {}, "reg"),
    ("CosineSimilarity", dict(axis=[-1, 0, 1]), "reg"),
    ("Hinge", {}, "pm"),
    ("SquaredHinge", {}, "pm"),
    ("CategoricalHinge", {}, "pos_cat"),
]
REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean_with_sample_weight"]
N_CASES = 153  # 9 per loss


def _case(i):
    rng = np.random.default_rng(zlib.crc32(b"keras-fuzz") + i)
    name, choices, kind = SPECS[i % len(SPECS)]  # every loss, in turn
    args = {k: v[rng.integers(len(v))] for k, v in choices.items()}
    rank = int(rng.integers(2 if kind == "sparse" else 1, 4))
    shape = tuple(int(rng.integers(1, 6)) for _ in range(rank))
    if kind == "sparse" and shape[-1] < 2:  # Keras refuses a 1-class y_pred against labels of its rank
        shape = shape[:-1] + (2,)
    ax = args.get("axis", -1)
    if ax >= rank:
        args["axis"] = ax = -1
    if ax % rank != rank - 1 and args.get("label_smoothing"):
        args["label_smoothing"] = 0.0  # documented difference (module docstring)
    args["reduction"] = REDUCTIONS[rng.integers(4)]
    dt = [np.float32, np.float64][rng.integers(2)]
    fl = args.get("from_logits", False)
    cax = ax % rank
    rest = tuple(np.delete(shape, cax))
    if kind == "sparse":
        C = shape[-1]
        yt = rng.integers(0, C, size=shape[:-1])
        if args.get("ignore_class") is not None:
            yt = np.where(rng.random(yt.shape) < 0.3, args["ignore_class"], yt)
        yp = rng.standard_normal(shape) if fl else rng.dirichlet(np.ones(C), size=shape[:-1])
        lshape = shape[:-1]
    else:
        def simplex():
            return np.moveaxis(rng.dirichlet(np.ones(shape[cax]), size=rest), -1, cax)

        if kind == "bin":
            yt = (rng.random(shape) < 0.5).astype(float)
            yp = rng.standard_normal(shape) if fl else rng.uniform(0.02, 0.98, shape)
        elif kind == "cat":
            yt = simplex()
            yp = rng.standard_normal(shape) if fl else simplex()
        elif kind == "pos_cat":
            yt, yp = simplex(), rng.uniform(0.05, 1.0, shape)
        elif kind == "pos":
            yt, yp = rng.uniform(0.0, 3.0, shape), rng.uniform(0.1, 3.0, shape)
        elif kind == "pm":
            yt, yp = rng.choice([-1.0, 1.0], shape), rng.standard_normal(shape)
        else:
            yt, yp = rng.standard_normal(shape), rng.standard_normal(shape)
        yt = yt.astype(dt)
        lshape = rest if rank > 1 else ()
    yp = yp.astype(dt)
    kind_w = int(rng.integers(5))
    sw = None
    if kind_w == 1:
        sw = np.asarray(rng.uniform(0.0, 2.0), dtype=dt)
    elif kind_w >= 2 and len(lshape) >= 1:
        wshape = {2: lshape[:1], 3: lshape, 4: lshape[:1] + (1,)}[kind_w]
        sw = rng.uniform(0.0, 2.0, wshape).astype(dt)
        if rng.random() < 0.25:
            sw = np.where(rng.random(sw.shape) < 0.5, 0.0, sw).astype(dt)
    return name, args, dt, yt, yp, sw


def _keras_side(name, args, dt, yt, yp, sw):
    return _keras.value_and_grad(getattr(keras.losses, name)(**args, dtype=np.dtype(dt).name), yt, yp, sw)


@pytest.mark.parametrize("i", range(N_CASES))
def test_random_configuration_matches_keras(i):
    name, args, dt, yt, yp, sw = _case(i)
    copies = [np.copy(a) for a in (yt, yp, sw) if a is not None]
    try:
        kv, kg = _keras_side(name, args, dt, yt, yp, sw)
    except Exception as e:  # Keras refuses these inputs: so must fastloss
        with pytest.raises((ValueError, TypeError)):
            getattr(L, name)(**args).value_and_grad(yt, yp, sample_weight=sw)
        pytest.skip(f"Keras refuses: {type(e).__name__}")
    fv, fg = getattr(L, name)(**args).value_and_grad(yt, yp, sample_weight=sw)
    for a, c in zip([a for a in (yt, yp, sw) if a is not None], copies):
        np.testing.assert_array_equal(a, c)  # inputs untouched
    if dt == np.float32:
        tol = dict(rtol=2e-4, atol=2e-5)
    elif name == "LogCosh":
        tol = dict(rtol=1e-7, atol=1e-9)  # Keras' log(2) in float32 (module docstring)
    else:
        tol = dict(rtol=1e-9, atol=1e-11)
    assert np.shape(fv) == np.shape(kv)
    assert np.asarray(fv).dtype == dt
    np.testing.assert_allclose(fv, kv, **tol)
    assert fg.shape == yp.shape and fg.dtype == dt
    np.testing.assert_allclose(fg, kg, **tol)
