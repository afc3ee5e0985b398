"""fastloss: machine-learning losses and their gradients on NumPy arrays, fast.

Public surface only; see ``fastloss.losses`` (Keras / TF Addons classes) and
``fastloss.functional`` (per-sample functions, re-exported here).
"""

from . import losses
from ._backend import available_backends, cuda_stream, current_backend, set_backend, use_backend
from .custom import CustomLoss, custom_loss
from .monitor import LossTracker
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
from .functional import (  # regression, similarity and hinge family
    mean_squared_error,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_logarithmic_error,
    huber,
    log_cosh,
    cosine_similarity,
    hinge,
    squared_hinge,
    categorical_hinge,
)
from .functional import giou_loss, iou_loss, diou_loss, ciou_loss  # bounding boxes
from .functional import triplet_batch_all_loss, triplet_hard_loss, triplet_semihard_loss  # triplet family

__version__ = "0.1.0"

__all__ = [
    "losses",
    "available_backends",
    "current_backend",
    "set_backend",
    "use_backend",
    "cuda_stream",
    "custom_loss",
    "CustomLoss",
    "LossTracker",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "poisson",
    "sigmoid_focal_crossentropy",
    "sparse_categorical_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error",
    "huber",
    "log_cosh",
    "cosine_similarity",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "giou_loss",
    "iou_loss",
    "diou_loss",
    "ciou_loss",
    "triplet_semihard_loss",
    "triplet_hard_loss",
    "triplet_batch_all_loss",
]
