"""Shared loss cases and input generators for the cross-entropy family tests."""

from dataclasses import dataclass, field

import numpy as np

from fastloss import losses as L

import reference as R

REDUCTIONS = ["sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"]
DTYPES = [np.float32, np.float64]
WEIGHTS = ["unweighted", "per_sample", "scalar"]


@dataclass(frozen=True)
class Case:
    id: str
    cls: type
    ref: str
    kind: str  # binary | categorical | sparse | kld | poisson
    kw: dict = field(default_factory=dict)

    @property
    def logits(self):
        return bool(self.kw.get("from_logits"))

    @property
    def sparse(self):
        return self.kind == "sparse"

    def make(self, reduction="sum_over_batch_size", **extra):
        return self.cls(reduction=reduction, **self.kw, **extra)

    def ref_fn(self, axis=-1):
        fn = R.REFERENCES[self.ref]
        kw = dict(self.kw)
        if axis != -1:
            kw["axis"] = axis
        return lambda yt, yp: fn(yt, yp, **kw)

    def mask(self, y_true, y_pred, axis=-1):
        if self.sparse and self.kw.get("ignore_class") is not None:
            return R.sparse_mask(y_true, y_pred, self.kw["ignore_class"], axis)
        return None

    def __str__(self):
        return self.id


def _c(id, cls, ref, kind, **kw):
    return Case(id, cls, ref, kind, kw)


CASES = [
    _c("bce", L.BinaryCrossentropy, "binary_crossentropy", "binary"),
    _c("bce_ls", L.BinaryCrossentropy, "binary_crossentropy", "binary", label_smoothing=0.2),
    _c("bce_logits", L.BinaryCrossentropy, "binary_crossentropy", "binary", from_logits=True),
    _c("bce_logits_ls", L.BinaryCrossentropy, "binary_crossentropy", "binary", from_logits=True, label_smoothing=0.1),
    _c("cce", L.CategoricalCrossentropy, "categorical_crossentropy", "categorical"),
    _c("cce_ls", L.CategoricalCrossentropy, "categorical_crossentropy", "categorical", label_smoothing=0.2),
    _c("cce_logits", L.CategoricalCrossentropy, "categorical_crossentropy", "categorical", from_logits=True),
    _c(
        "cce_logits_ls",
        L.CategoricalCrossentropy,
        "categorical_crossentropy",
        "categorical",
        from_logits=True,
        label_smoothing=0.1,
    ),
    _c("scce", L.SparseCategoricalCrossentropy, "sparse_categorical_crossentropy", "sparse"),
    _c("scce_logits", L.SparseCategoricalCrossentropy, "sparse_categorical_crossentropy", "sparse", from_logits=True),
    _c(
        "scce_ignore_neg",
        L.SparseCategoricalCrossentropy,
        "sparse_categorical_crossentropy",
        "sparse",
        ignore_class=-1,
    ),
    _c(
        "scce_logits_ignore2",
        L.SparseCategoricalCrossentropy,
        "sparse_categorical_crossentropy",
        "sparse",
        from_logits=True,
        ignore_class=2,
    ),
    _c("bfce", L.BinaryFocalCrossentropy, "binary_focal_crossentropy", "binary"),
    _c(
        "bfce_bal_g3_ls",
        L.BinaryFocalCrossentropy,
        "binary_focal_crossentropy",
        "binary",
        apply_class_balancing=True,
        gamma=3.0,
        alpha=0.4,
        label_smoothing=0.1,
    ),
    _c("bfce_logits", L.BinaryFocalCrossentropy, "binary_focal_crossentropy", "binary", from_logits=True),
    _c(
        "bfce_logits_bal_g15",
        L.BinaryFocalCrossentropy,
        "binary_focal_crossentropy",
        "binary",
        from_logits=True,
        apply_class_balancing=True,
        gamma=1.5,
    ),
    _c("cfce", L.CategoricalFocalCrossentropy, "categorical_focal_crossentropy", "categorical"),
    _c(
        "cfce_logits_ls",
        L.CategoricalFocalCrossentropy,
        "categorical_focal_crossentropy",
        "categorical",
        from_logits=True,
        label_smoothing=0.1,
        alpha=0.5,
        gamma=1.0,
    ),
    _c("sfce", L.SigmoidFocalCrossEntropy, "sigmoid_focal_crossentropy", "binary"),
    _c("sfce_logits", L.SigmoidFocalCrossEntropy, "sigmoid_focal_crossentropy", "binary", from_logits=True),
    _c("sfce_a0_g0", L.SigmoidFocalCrossEntropy, "sigmoid_focal_crossentropy", "binary", alpha=0.0, gamma=0.0),
    _c(
        "sfce_logits_anone_gnone",
        L.SigmoidFocalCrossEntropy,
        "sigmoid_focal_crossentropy",
        "binary",
        from_logits=True,
        alpha=None,
        gamma=None,
    ),
    _c("sfce_a5_g05", L.SigmoidFocalCrossEntropy, "sigmoid_focal_crossentropy", "binary", alpha=0.5, gamma=0.5),
    _c("kld", L.KLDivergence, "kl_divergence", "kld"),
    _c("poisson", L.Poisson, "poisson", "poisson"),
]

CASE_BY_ID = {c.id: c for c in CASES}


def make_inputs(case, rng, shape=(5, 4), dtype=np.float64, soft=False):
    """(y_true, y_pred) away from clip kinks: probabilities in [0.05, 0.95], logits ~ N(0, 2)."""
    S, C = shape[:-1], shape[-1]
    if case.kind == "binary":
        yt = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(np.float64)
        yp = rng.normal(0, 2, shape) if case.logits else rng.uniform(0.05, 0.95, shape)
    elif case.kind == "categorical":
        if soft:
            yt = rng.uniform(0, 1, shape)
            yt /= yt.sum(-1, keepdims=True)
        else:
            yt = np.eye(C)[rng.integers(0, C, S)]
        yp = rng.normal(0, 2, shape) if case.logits else rng.uniform(0.05, 1.0, shape)  # rows NOT normalized
    elif case.kind == "sparse":
        yt = rng.integers(0, C, S)
        ic = case.kw.get("ignore_class")
        if ic is not None:
            flat = yt.reshape(-1)
            flat[:: 3] = ic  # some rows ignored, some valid
            if flat.size > 1:
                flat[1] = (ic + 1) % C if ic >= 0 else 0
        yp = rng.normal(0, 2, shape) if case.logits else rng.uniform(0.05, 0.95, shape)
    elif case.kind == "kld":
        yt = rng.uniform(0.05, 1, shape)
        yt /= yt.sum(-1, keepdims=True)
        yp = rng.uniform(0.05, 1, shape)
        yp /= yp.sum(-1, keepdims=True)
    elif case.kind == "poisson":
        yt = rng.integers(0, 5, shape).astype(np.float64)
        yp = rng.uniform(0.2, 3.0, shape)
    else:  # pragma: no cover
        raise AssertionError(case.kind)
    return yt, np.asarray(yp, dtype=dtype)


def make_weight(kind, S, rng):
    if kind == "unweighted":
        return None
    if kind == "scalar":
        return 0.7
    return rng.uniform(0.1, 2.0, S)


def expected(case, yt, yp, sw, reduction, axis=-1):
    """Reference value, float64, computed on the inputs as fastloss sees them."""
    per = case.ref_fn(axis)(yt, np.asarray(yp, np.float64))
    return R.reduce(per, sw, reduction, case.mask(yt, yp, axis))


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=2e-5, atol=2e-6)
