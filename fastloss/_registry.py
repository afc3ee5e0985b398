"""The one table: every loss, its kernel on each backend, its float64 reference
(in ``tests/reference.py``), the dtypes it takes and the tolerances it is held to.

``layout``:
  * ``"dense"``: y_true has y_pred's shape (Keras squeezes/expands one rank first);
  * ``"sparse"``: y_true holds one integer label per row of y_pred;
  * ``"boxes"``: y_true and y_pred hold boxes (4 numbers on the last axis) that
    broadcast against each other, one loss per box.
  * ``"triplet"``: y_true holds one integer label per embedding (row of y_pred);
    one loss per batch (``fastloss._triplet.compute_triplet``).
``variants``: kernel name per variant (``"probs"``/``"logits"``; ``"gh"``/``"gh_logits"``:
gradient + Hessian diagonal for boosting, ``kernel(yt, yp, prm, w, ws, grad, hess, nch)``,
see ``fastloss._core.grad_hess``).
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
    # dense layout: how y_true and y_pred of different shapes broadcast (as in
    # Keras 3 on TensorFlow; see _validate.broadcast_shape): "all", "none",
    # "class" (leading axes only: both inputs keep their class axis)
    broadcast: str = "all"
    # how sample weights meet the per-sample losses: "keras3" (Keras 3's rank
    # fix), or "keras2" for the TF Addons losses, which run on Keras 2's
    # (_validate.sample_weights)
    weights: str = "keras3"


_CUDA_XE = "fastloss.backends.numba_cuda.crossentropy"
_CUDA_EW = "fastloss.backends.numba_cuda.elementwise"
_CUDA_RW = "fastloss.backends.numba_cuda.rows"
# The C backend (csrc/, built by CFFI) has a twin of every Numba CPU kernel, under
# the same name in the same-named module of fastloss/backends/cffi_c/.
_C_XE = "fastloss.backends.cffi_c.crossentropy"
_C_RG = "fastloss.backends.cffi_c.regression"
_C_BX = "fastloss.backends.cffi_c.boxes"


def _xe(name, layout, variants, reference, cuda=None, cuda_ew=None, cuda_rw=None, broadcast="none", weights="keras3"):
    kernels = {
        "numba": {v: f"{_NUMBA_XE}:{k}" for v, k in variants.items()},
        "c": {v: f"{_C_XE}:{k}" for v, k in variants.items()},
    }
    if cuda:
        kernels["cuda"] = {v: f"{_CUDA_XE}:{k}" for v, k in cuda.items()}
    if cuda_ew:  # elementwise losses: the CUDA kernels share one module
        kernels["cuda"] = {v: f"{_CUDA_EW}:{variants[v]}" for v in cuda_ew}
    if cuda_rw:  # row kernels (block per row); merged with the logits kernels above
        kernels.setdefault("cuda", {}).update({v: f"{_CUDA_RW}:{variants[v]}_host" for v in cuda_rw})
    return LossSpec(name=name, family="crossentropy", layout=layout, kernels=kernels, reference=reference,
                    broadcast=broadcast, weights=weights)


REGISTRY = {
    s.name: s
    for s in (
        _xe("binary_crossentropy", "dense", {"probs": "bce_probs", "logits": "bce_logits", "gh": "bce_gh", "gh_logits": "bce_logits_gh"}, "binary_crossentropy", cuda_ew=("probs", "logits")),
        _xe(
            "categorical_crossentropy",
            "dense",
            {"probs": "cce_probs", "logits": "cce_logits", "gh_logits": "cce_logits_gh"},
            "categorical_crossentropy",
            cuda={"logits": "cce_logits"},
            cuda_rw=("probs",),
        ),
        _xe(
            "sparse_categorical_crossentropy",
            "sparse",
            {"probs": "scce_probs", "logits": "scce_logits", "gh_logits": "scce_logits_gh"},
            "sparse_categorical_crossentropy",
            cuda={"logits": "scce_logits"},
            cuda_rw=("probs",),
        ),
        _xe(
            "binary_focal_crossentropy",
            "dense",
            {"probs": "binary_focal", "logits": "binary_focal_logits"},
            "binary_focal_crossentropy",
            cuda_ew=("probs", "logits"),
        ),
        _xe(
            "categorical_focal_crossentropy",
            "dense",
            {"probs": "categorical_focal", "logits": "categorical_focal"},
            "categorical_focal_crossentropy",
            cuda_rw=("probs", "logits"),
            broadcast="class",
        ),
        _xe(
            "sigmoid_focal_crossentropy",
            "dense",
            {"probs": "sigmoid_focal", "logits": "sigmoid_focal_logits"},
            "sigmoid_focal_crossentropy",
            cuda_ew=("probs", "logits"),
            weights="keras2",  # TF Addons
        ),
        _xe("kl_divergence", "dense", {"probs": "kl_divergence"}, "kl_divergence", cuda_ew=("probs",), broadcast="all"),
        _xe("poisson", "dense", {"probs": "poisson", "gh": "poisson_gh"}, "poisson", cuda_ew=("probs",),
            broadcast="all"),
    )
}

# ---- regression / similarity / hinge family (numba_cpu/regression.py) ----------
_NUMBA_RG = "fastloss.backends.numba_cpu.regression"


def _rg(name, kernel, gh=True, cuda="ew", broadcast="all"):
    names = {"probs": kernel}
    if gh:
        names["gh"] = f"{kernel}_gh"
    kernels = {
        "numba": {v: f"{_NUMBA_RG}:{k}" for v, k in names.items()},
        "c": {v: f"{_C_RG}:{k}" for v, k in names.items()},
    }
    if cuda == "ew":  # elementwise
        kernels["cuda"] = {"probs": f"{_CUDA_EW}:{kernel}"}
    else:  # row kernels
        kernels["cuda"] = {"probs": f"{_CUDA_RW}:{kernel}_host"}
    return LossSpec(name=name, family="regression", layout="dense", kernels=kernels, reference=name,
                    broadcast=broadcast)


REGISTRY.update(
    (s.name, s)
    for s in (
        _rg("mean_squared_error", "mse"),
        _rg("mean_absolute_error", "mae"),
        _rg("mean_absolute_percentage_error", "mape"),
        _rg("mean_squared_logarithmic_error", "msle"),
        _rg("huber", "huber"),
        _rg("log_cosh", "log_cosh"),
        _rg("hinge", "hinge"),
        _rg("squared_hinge", "squared_hinge"),
        _rg("cosine_similarity", "cosine_similarity", gh=False, cuda="rows", broadcast="class"),
        _rg("categorical_hinge", "categorical_hinge", gh=False, cuda="rows"),
    )
)


# ---- grad_hess on CUDA --------------------------------------------------------------
# Every CPU grad_hess kernel ("gh"/"gh_logits") has a CUDA twin of the same name.
_CUDA_GH = "fastloss.backends.numba_cuda.gradhess"
for _spec in REGISTRY.values():
    for _v, _path in _spec.kernels["numba"].items():
        if _v in ("gh", "gh_logits"):
            _spec.kernels.setdefault("cuda", {})[_v] = f"{_CUDA_GH}:{_path.partition(':')[2]}"
del _spec, _v, _path


# ---- bounding boxes (numba_cpu/boxes.py) -------------------------------------------
# layout "boxes": y_true and y_pred hold boxes of 4 numbers along the last axis and
# broadcast against each other (see _core._prepare_boxes).
_NUMBA_BX = "fastloss.backends.numba_cpu.boxes"
_CUDA_BX = "fastloss.backends.numba_cuda.boxes"


def _bx(name, kernel):
    # "probs" is the core's plain variant (the one a class without from_logits asks for)
    kernels = {
        "numba": {"probs": f"{_NUMBA_BX}:{kernel}"},
        "c": {"probs": f"{_C_BX}:{kernel}"},
        "cuda": {"probs": f"{_CUDA_BX}:{kernel}_host"},
    }
    return LossSpec(name=name, family="boxes", layout="boxes", kernels=kernels, reference=name, weights="keras2")


REGISTRY.update(
    (s.name, s)
    for s in (
        _bx("iou_loss", "iou"),
        _bx("giou_loss", "giou"),
        _bx("diou_loss", "diou"),
        _bx("ciou_loss", "ciou"),
    )
)

# ---- triplet family (numba_cpu/triplet.py; path: fastloss/_triplet.py) -------
# layout "triplet": y_true (N,) labels, y_pred (N, D) embeddings; variants
# "mine" (the mining kernel), "gram" (X X^T, blocked, serial or parallel),
# "symmetrize"/"dense_grad" (dense gradient assembly: angular / L2 from the
# nonzero coefficients; a dense W uses BLAS) or "grad" (sparse assembly of hard mining).
_NUMBA_TR = "fastloss.backends.numba_cpu.triplet"
_C_TR = "fastloss.backends.cffi_c.triplet"  # the C twins (csrc/triplet.c), same names


def _tr(name, mine, assembly):
    kernels = {}
    for backend, mod in (("numba", _NUMBA_TR), ("c", _C_TR)):
        variants = {"mine": f"{mod}:{mine}"}
        variants.update({v: f"{mod}:{k}" for v, k in assembly.items()})
        kernels[backend] = variants
    return LossSpec(name=name, family="triplet", layout="triplet", kernels=kernels, reference=name)


REGISTRY.update(
    (s.name, s)
    for s in (
        _tr("triplet_semihard", "semihard", {"symmetrize": "symmetrize", "dense_grad": "dense_grad", "gram": "gram"}),
        _tr("triplet_hard", "hard", {"grad": "hard_grad", "gram": "gram"}),
        _tr("triplet_batch_all", "batch_all", {"symmetrize": "symmetrize", "dense_grad": "dense_grad", "gram": "gram"}),
    )
)


def get(name):
    """The spec of registered loss ``name``; a ``LossSpec`` passed in is returned
    as is (unregistered losses carry their own, e.g. ``fastloss.custom_loss``)."""
    if isinstance(name, LossSpec):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(REGISTRY)}") from None
