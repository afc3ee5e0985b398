"""fastloss: machine-learning losses and their gradients on NumPy arrays, fast.

Public surface only; see ``fastloss.losses`` (Keras / TF Addons classes) and
``fastloss.functional`` (per-sample functions, re-exported here).
"""

from . import losses
from ._backend import available_backends, current_backend, set_backend, use_backend
from .functional import (
    binary_crossentropy,
    binary_focal_crossentropy,
    categorical_crossentropy,
    categorical_focal_crossentropy,
    kl_divergence,
    poisson,
    sigmoid_focal_crossentropy,
    sparse_categorical_crossentropy,
)

__version__ = "0.1.0"

__all__ = [
    "losses",
    "available_backends",
    "current_backend",
    "set_backend",
    "use_backend",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "poisson",
    "sigmoid_focal_crossentropy",
    "sparse_categorical_crossentropy",
]
