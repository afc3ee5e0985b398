"""The one table: every loss, its kernel on each backend, its float64 reference
(in ``tests/reference.py``), the dtypes it takes and the tolerances it is held to.

``layout``:
  * ``"dense"``: y_true has y_pred's shape (Keras squeezes/expands one rank first);
  * ``"sparse"``: y_true holds one integer label per row of y_pred.
``variants``: kernel name per variant (``"probs"``/``"logits"``).
"""

from dataclasses import dataclass, field

_NUMBA_XE = "fastloss.backends.numba_cpu.crossentropy"

TOLERANCES = {"float32": 1e-5, "float64": 1e-10}


@dataclass(frozen=True)
class LossSpec:
    name: str
    family: str
    layout: str
    kernels: dict  # backend -> {variant: "module:function"}
    reference: str  # function name in tests/reference.py
    dtypes: tuple = ("float32", "float64")
    rtol: dict = field(default_factory=lambda: dict(TOLERANCES))


def _xe(name, layout, variants, reference):
    return LossSpec(
        name=name,
        family="crossentropy",
        layout=layout,
        kernels={"numba": {v: f"{_NUMBA_XE}:{k}" for v, k in variants.items()}},
        reference=reference,
    )


REGISTRY = {
    s.name: s
    for s in (
        _xe("binary_crossentropy", "dense", {"probs": "bce_probs", "logits": "bce_logits"}, "binary_crossentropy"),
        _xe("categorical_crossentropy", "dense", {"probs": "cce_probs", "logits": "cce_logits"}, "categorical_crossentropy"),
        _xe(
            "sparse_categorical_crossentropy",
            "sparse",
            {"probs": "scce_probs", "logits": "scce_logits"},
            "sparse_categorical_crossentropy",
        ),
        _xe(
            "binary_focal_crossentropy",
            "dense",
            {"probs": "binary_focal", "logits": "binary_focal_logits"},
            "binary_focal_crossentropy",
        ),
        _xe(
            "categorical_focal_crossentropy",
            "dense",
            {"probs": "categorical_focal", "logits": "categorical_focal"},
            "categorical_focal_crossentropy",
        ),
        _xe(
            "sigmoid_focal_crossentropy",
            "dense",
            {"probs": "sigmoid_focal", "logits": "sigmoid_focal_logits"},
            "sigmoid_focal_crossentropy",
        ),
        _xe("kl_divergence", "dense", {"probs": "kl_divergence"}, "kl_divergence"),
        _xe("poisson", "dense", {"probs": "poisson"}, "poisson"),
    )
}


def get(name):
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(REGISTRY)}") from None
