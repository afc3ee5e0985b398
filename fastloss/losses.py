"""Keras 3 / TF Addons compatible loss classes.

Each class takes the constructor arguments of its original (same names, same
defaults) plus ``class_weight`` (a dict or sequence mapping class -> weight,
applied per sample the way ``keras.Model.fit`` maps it: ``argmax`` of one-hot
targets, rounded labels, classes not in a dict weigh 1.0; multiplied with any
``sample_weight``). The classes are thin: arguments in, one call into
``fastloss._core.compute``.

Calling conventions (the same for every class)::

    loss = obj(y_true, y_pred, sample_weight=None)
    loss, grad = obj.value_and_grad(y_true, y_pred, sample_weight=None, grad_out=None)
    grad, hess = obj.grad_hess(y_true, y_pred, sample_weight=None)   # boosting; see the method
    per_sample = obj.call(y_true, y_pred)                             # Keras' Loss.call
    obj = get("mse") / get("Huber") / get(config); serialize(obj); deserialize(d)   # keras.losses' identifiers

``loss`` is a NumPy scalar of y_pred's float dtype (or an array for
``reduction="none"``); ``grad`` is d(loss, summed if it is an array)/d y_pred,
same shape and dtype as (float) y_pred, written by the same kernel pass.

Shapes: y_true and y_pred have the same shape, up to Keras' rank fix (one
trailing axis of size 1 squeezed or added), or shapes that broadcast against
each other where Keras 3 on TensorFlow broadcasts them: losses of elementwise
terms (MSE, MAE, MAPE, MSLE, Huber, LogCosh, hinge losses, KL divergence,
Poisson) broadcast either input (a target row for a batch, a scalar target, a
prediction row against many targets: its gradient is summed over the rows it
was broadcast to); categorical focal and cosine similarity broadcast along the
leading axes only (Keras works along each input's own class axis before
broadcasting, which fastloss refuses rather than imitates); the binary,
categorical and focal cross-entropies take equal shapes only, as Keras' ops
do. ``grad_hess`` takes a broadcast y_true but not a broadcast y_pred.

Where fastloss differs from the original, on purpose:

* float64 inputs are computed in float64 (Keras computes in ``floatx()``).
* An empty batch reduces to 0 (Keras returns the empty array).
* Categorical cross-entropy from logits: the gradient is the exact derivative
  ``sum(y) softmax(x) - y``; TF uses ``softmax(x) - y``, equal when each row of
  labels sums to 1 (one-hot and smoothed labels do).
* Focal losses with ``0 <= gamma < 1`` at ``p_t == 1`` (a prediction exactly
  right): the derivative of ``(1 - p_t)**gamma`` is infinite there, and TF returns
  inf/NaN gradients; fastloss takes it as 0, the value of the one-sided limit
  of the *loss* slope for ``gamma >= 1`` and the usual subgradient choice, so the
  gradient stays finite. ``gamma < 0`` is a ValueError (TF Addons also refuses it).
* ``BinaryFocalCrossentropy(from_logits=True)`` follows Keras 3 on its
  TensorFlow backend: the cross-entropy from the logits, no clip. Keras' JAX
  and PyTorch backends clip the sigmoid to ``[eps, 1 - eps]``; they give a
  smaller loss and ~0 gradient for logits past ~16 on the wrong side.
* Sigmoids are evaluated as ``sigmoid(x)`` and ``sigmoid(-x)`` separately, so
  ``1 - p`` keeps full relative precision for large logits (float32 TF loses
  digits there).
* Categorical label smoothing with ``axis`` other than the last: ``ls / C``
  uses the size of the class axis (Keras 3.15 divides by ``shape[-1]``
  whatever ``axis`` is). ``SparseCategoricalCrossentropy`` accepts any
  ``axis`` (Keras' TF backend supports only the last).
* ``CategoricalHinge`` with infinite scores (a class masked with ``-inf``):
  ``y p`` is 0 where ``y = 0`` and ``(1 - y) p`` is 0 where ``y = 1``, their
  limits, where Keras' formula gives ``0 * inf = NaN``: a true class at
  ``-inf`` gives ``+inf``, a wrong class at ``-inf`` drops out of the max.
* Box losses. ``GIoULoss`` matches TF Addons 0.23 (values, shapes after
  TFA's ``tf.squeeze``, Keras 2's sample-weight rank fix, TF's gradients at
  ties and clamps); additions: ``box_format`` (``"yxyx"``, TFA's order, by
  default; ``"xyxy"``, ``"xywh"``, ``"cxcywh"``) and ``dtype``. ``IoULoss``
  is ``GIoULoss(mode="iou")``. ``DIoULoss``/``CIoULoss`` take torchvision's
  values (``distance_box_iou_loss``/``complete_box_iou_loss``, eps 1e-7) on
  proper boxes, and differ from torchvision on purpose: TFA's box order and
  reduction default; box extents clamped at 0 as TFA does (torchvision
  leaves inverted boxes unclamped, documented as invalid input); CIoU's
  ``atan(w / h)`` evaluated as ``atan2(w, h)``, so zero-height and point
  boxes give finite values (``pi/2`` and 0) where torchvision gives NaN for
  ``0 / 0``; ties in a max/min send the gradient to the prediction (TF's
  rule; PyTorch splits it). CIoU's gradient holds ``alpha`` constant as
  torchvision does (``no_grad``): it is not the exact derivative of the
  value. Degenerate boxes (zero area, identical zero-area boxes, inverted
  corners, boxes far apart) give finite losses and gradients in every mode;
  a NaN coordinate gives NaN in its own box's loss only.
* Triplet losses (TF Addons' ``TripletSemiHardLoss``/``TripletHardLoss``; see
  ``_Triplet``): no positive pair gives 0 (TFA: NaN); near-duplicate
  embeddings get their L2 distance recomputed directly (exactly 0 for
  duplicates; TFA's Gram formula leaves ~1e-4 in float32) and the subgradient
  0 at distance 0; at tied distances the gradient goes to the lowest index (TF
  splits it); softplus never overflows; float64 works (TFA's L2 fails);
  ``"precomputed"`` distance matrices and callables returning ``(distances,
  vjp)`` are accepted; ``reduction``/``sample_weight`` act on the one loss
  per batch (a scalar weight only, like TFA). ``TripletBatchAllLoss`` and
  ``TripletSemiHardLoss(soft=True)`` are fastloss additions.
"""

import copy
import math
import numbers

import numpy as np

from . import _core, _triplet, _validate
from ._validate import standardize_reduction


def _check_unit(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number in [0, 1]; got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1]; got {value}")
    return float(value)


def _check_gamma(gamma):
    if gamma is None:
        return 0.0
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not math.isfinite(gamma):
        raise TypeError(f"`gamma` must be a finite real number >= 0; got {gamma!r}")
    if gamma < 0:
        raise ValueError(f"`gamma` must be >= 0; got {gamma}")
    return float(gamma)


def _check_alpha(alpha):
    if alpha is None:
        return 0.0
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha):
        raise TypeError(f"`alpha` must be a finite real number; got {alpha!r}")
    return float(alpha)


def _check_class_alpha(alpha):
    """Categorical focal's ``alpha``: a real number, or one per class (a list,
    tuple or 1-D array; Keras multiplies it along the class axis)."""
    if alpha is None or isinstance(alpha, numbers.Real):
        return _check_alpha(alpha)
    if isinstance(alpha, (str, bytes, dict)) or not hasattr(alpha, "__len__") and not hasattr(alpha, "__array__"):
        raise TypeError(f"`alpha` must be a finite real number or a sequence of them (one per class); got {alpha!r}")
    a = np.asarray(alpha)
    if a.ndim == 0:
        return _check_alpha(a.item())
    if a.dtype.kind not in "iuf" or a.ndim != 1:
        raise TypeError(
            f"`alpha` must be a finite real number or a 1-D sequence of them (one per class); "
            f"got {a.ndim}-D {a.dtype} values {alpha!r}"
        )
    if a.size == 0:
        raise ValueError("`alpha` is an empty sequence; give one value per class (or one number)")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"`alpha` must hold finite numbers; got {alpha!r}")
    return tuple(float(v) for v in a)


def _class_weight_config(cw):
    if cw is None:
        return None
    if isinstance(cw, dict):
        return {
            (int(k) if isinstance(k, (numbers.Integral, np.integer)) else k): (v.item() if isinstance(v, np.generic) else v)
            for k, v in cw.items()
        }
    return np.asarray(cw).tolist()


def _from_keras_config(config):
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict (a get_config() result); got {type(config).__name__}")
    cfg = dict(config)
    cfg.pop("fn", None)  # Keras 2's LossFunctionWrapper records its function's name
    dt = cfg.get("dtype")
    if isinstance(dt, dict):  # a Keras dtype policy, {"class_name": "DTypePolicy", "config": {"name": ...}}
        cfg["dtype"] = (dt.get("config") or {}).get("name", dt.get("name"))
    cw = cfg.get("class_weight")
    if isinstance(cw, dict):  # JSON turns the integer class keys into strings
        cfg["class_weight"] = {
            (int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k): v for k, v in cw.items()
        }
    return cfg


class Loss:
    """Base class: Keras' ``reduction``/``name``/``dtype`` plus ``class_weight``."""

    _loss = None  # registry name

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None, class_weight=None):
        self.name = name
        self.reduction = standardize_reduction(reduction)
        if dtype is not None:
            _validate.compute_dtype(None, dtype)  # 'float32'/'float64', else a clear ValueError/TypeError
        self.dtype = dtype
        if class_weight is not None and not isinstance(class_weight, dict):
            class_weight = np.asarray(class_weight)
        self.class_weight = class_weight

    # Subclasses say which kernel variant and parameters they need.
    def _variant(self):
        return "probs"

    def _params(self):
        return None

    def _kw(self):
        return {}

    def _run(self, y_true, y_pred, sample_weight, want_grad, grad_out):
        return _core.compute(
            self._loss,
            y_true,
            y_pred,
            variant=self._variant(),
            params=self._params(),
            sample_weight=sample_weight,
            class_weight=self.class_weight,
            reduction=self.reduction,
            want_grad=want_grad,
            grad_out=grad_out,
            dtype=self.dtype,
            **self._kw(),
        )

    def __call__(self, y_true, y_pred, sample_weight=None):
        return self._run(y_true, y_pred, sample_weight, False, None)[0]

    def call(self, y_true, y_pred):
        """Keras' ``Loss.call``: the per-sample losses, neither reduced nor
        weighted (``class_weight`` not applied), as ``reduction="none"`` gives
        them without weights."""
        obj = copy.copy(self)
        obj.reduction = "none"
        obj.class_weight = None
        return obj(y_true, y_pred)

    def value_and_grad(self, y_true, y_pred, sample_weight=None, grad_out=None):
        """Loss and its gradient w.r.t. ``y_pred`` from one fused kernel pass.

        ``grad_out``: optional C-contiguous array of y_pred's shape and float
        dtype to write the gradient into (reuse it across calls in a hot loop).
        """
        return self._run(y_true, y_pred, sample_weight, True, grad_out)

    def grad_hess(self, y_true, y_pred, sample_weight=None):
        """Gradient and Hessian diagonal for gradient boosting, one kernel pass.

        Derivatives of ``sum_i w_i loss_i`` w.r.t. ``y_pred`` (``loss_i`` the
        per-sample loss, including the ``1/K`` of a mean over the last axis;
        ``w_i`` sample weight times class weight); the object's ``reduction``
        is ignored. Returns ``(grad, hess)``, y_pred's shape and float dtype.
        Available for the losses whose registry entry has a ``"gh"`` (or,
        ``from_logits``, ``"gh_logits"``) kernel; others raise ValueError.
        ``fastloss.boosting`` turns this into XGBoost/LightGBM objectives.

        >>> import numpy as np, fastloss
        >>> bce = fastloss.losses.BinaryCrossentropy(from_logits=True)
        >>> g, h = bce.grad_hess([[1.0], [0.0]], np.array([[0.0], [2.0]]))
        >>> g.ravel().round(4), h.ravel().round(4)   # sigmoid(x) - y, sigmoid(x) sigmoid(-x)
        (array([-0.5   ,  0.8808]), array([0.25 , 0.105]))
        """
        return _core.grad_hess(
            self._loss,
            y_true,
            y_pred,
            variant="gh_logits" if getattr(self, "from_logits", False) else "gh",
            params=self._params(),
            sample_weight=sample_weight,
            class_weight=self.class_weight,
            dtype=self.dtype,
            **self._kw(),
        )

    def get_config(self):
        """The constructor arguments, JSON-ready: Keras' keys plus ``dtype`` and,
        when one is set, ``class_weight`` (a dict as ``{class: weight}``, a
        sequence as a list)."""
        cfg = {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}
        cfg.update(self._config())
        if self.class_weight is not None:
            cfg["class_weight"] = _class_weight_config(self.class_weight)
        return cfg

    def _config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        """The loss of a ``get_config()`` dict, also after a JSON round trip
        (class-weight keys as strings), and of Keras 3 / Keras 2 / TF Addons
        loss configs (Keras 2's ``fn`` key is dropped, a dtype policy dict
        gives its dtype name)."""
        return cls(**_from_keras_config(config))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args}{', ' if args else ''}reduction={self.reduction!r})"


class _FromLogits(Loss):
    def __init__(self, from_logits, label_smoothing, axis, **kw):
        super().__init__(**kw)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_unit(label_smoothing, "label_smoothing")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"`axis` must be an int; got {axis!r}")
        self.axis = int(axis)

    def _variant(self):
        return "logits" if self.from_logits else "probs"

    def _kw(self):
        return {"axis": self.axis}

    def _config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis}


class BinaryCrossentropy(_FromLogits):
    """Binary cross-entropy, Keras 3's ``BinaryCrossentropy``.

    Per element, with ``eps = 1e-7``, ``p = clip(y_pred, eps, 1 - eps)``:

    (1) ``-(y log p + (1 - y) log(1 - p))``                      (probabilities)
    (2) ``max(x, 0) - x y + log1p(exp(-|x|))``                      (``from_logits``)

    averaged over ``axis``; ``label_smoothing`` replaces ``y`` by
    ``y (1 - ls) + ls / 2``.

    Examples
    --------
    The example of Keras' own documentation (Keras prints 0.8654, a truncation
    of TF's 0.865458):

    >>> import numpy as np, fastloss
    >>> y_true = np.array([[0, 1], [0, 0]])
    >>> y_pred = np.array([[-18.6, 0.51], [2.94, -12.8]], dtype=np.float32)
    >>> bce = fastloss.losses.BinaryCrossentropy(from_logits=True)
    >>> print(f"{bce(y_true, y_pred):.5f}")
    0.86546
    >>> print(f"{bce(y_true, y_pred, sample_weight=[0.8, 0.2]):.4f}")
    0.2436
    >>> fastloss.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y_true, y_pred).round(3)
    array([0.235, 1.496], dtype=float32)
    >>> loss, grad = bce.value_and_grad(y_true, y_pred)
    >>> grad.shape, grad.dtype
    ((2, 2), dtype('float32'))
    """

    _loss = "binary_crossentropy"

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(from_logits, label_smoothing, axis, name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)

    def _params(self):
        return {"label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(_FromLogits):
    """Categorical cross-entropy, Keras 3's ``CategoricalCrossentropy``.

    (1) probabilities: ``q = y_pred / sum(y_pred)``, then ``clip(q, eps, 1 - eps)``,
        ``loss = -sum(y log q)``;
    (2) ``from_logits``: ``loss = sum(y) logsumexp(x) - sum(y x)``;

    over ``axis``; ``label_smoothing`` replaces ``y`` by ``y (1 - ls) + ls / C``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = np.array([[0, 1, 0], [0, 0, 1]])
    >>> y_pred = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], dtype=np.float32)
    >>> cce = fastloss.losses.CategoricalCrossentropy()
    >>> print(f"{cce(y_true, y_pred):.3f}")
    1.177
    >>> print(f"{cce(y_true, y_pred, sample_weight=np.array([0.3, 0.7])):.3f}")
    0.814
    >>> fastloss.losses.CategoricalCrossentropy(reduction=None)(y_true, y_pred).round(4)
    array([0.0513, 2.3026], dtype=float32)
    """

    _loss = "categorical_crossentropy"

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(from_logits, label_smoothing, axis, name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)

    def _params(self):
        return {"label_smoothing": self.label_smoothing, "ls_per_class": True}


class SparseCategoricalCrossentropy(Loss):
    """Sparse categorical cross-entropy, Keras 3's ``SparseCategoricalCrossentropy``.

    ``y_true`` holds integer class labels (integer dtype, or floats with integral
    values), one per row; a trailing axis of size 1 is squeezed.

    (1) probabilities (TF backend): ``c = clip(y_pred, eps, 1 - eps)``,
        ``loss = log(sum(c)) - log(c[y])`` (clip first, then normalize);
    (2) ``from_logits``: ``loss = logsumexp(x) - x[y]``.

    ``ignore_class``: rows with that label get loss 0 and gradient 0 and do not
    count in the ``"sum_over_batch_size"`` denominator. A label outside
    ``[0, C)`` (and not ``ignore_class``) raises ``ValueError`` naming the row.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = np.array([1, 2])
    >>> y_pred = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], dtype=np.float32)
    >>> scce = fastloss.losses.SparseCategoricalCrossentropy()
    >>> print(f"{scce(y_true, y_pred):.3f}")
    1.177
    >>> print(f"{scce(y_true, y_pred, sample_weight=np.array([0.3, 0.7])):.3f}")
    0.814
    >>> logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]], dtype=np.float32)
    >>> loss, grad = fastloss.losses.SparseCategoricalCrossentropy(from_logits=True).value_and_grad([0, 1], logits)
    >>> bool(np.allclose(grad.sum(axis=-1), 0, atol=1e-6))  # softmax - onehot sums to 0 per row
    True
    """

    _loss = "sparse_categorical_crossentropy"

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        self.from_logits = bool(from_logits)
        if ignore_class is not None:
            if isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral):
                raise TypeError(f"`ignore_class` must be an int or None; got {ignore_class!r}")
            ignore_class = int(ignore_class)
        self.ignore_class = ignore_class
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"`axis` must be an int; got {axis!r}")
        self.axis = int(axis)

    def _variant(self):
        return "logits" if self.from_logits else "probs"

    def _kw(self):
        return {"axis": self.axis, "ignore_class": self.ignore_class}

    def _config(self):
        return {"from_logits": self.from_logits, "ignore_class": self.ignore_class, "axis": self.axis}


class BinaryFocalCrossentropy(_FromLogits):
    """Binary focal cross-entropy, Keras 3's ``BinaryFocalCrossentropy``.

    With ``p_t = y p + (1 - y)(1 - p)``:

    ``loss = mean_axis[ w (1 - p_t)**gamma bce(y, p) ]``,
    ``w = y alpha + (1 - y)(1 - alpha)`` if ``apply_class_balancing`` else 1.

    ``from_logits``: ``p = sigmoid(x)`` for the focal factor, and ``bce`` taken
    from the logits themselves, ``max(x, 0) - x y + log1p(exp(-|x|))``, with
    no clip: what Keras 3 computes on its TensorFlow backend (its sigmoid keeps
    the logits). A confidently wrong logit keeps its loss and gradient (x = -20
    for y = 1 costs 20; through the clipped probability it would stop at 16.1
    with a gradient of ~0, as Keras' JAX and PyTorch backends give).

    ``gamma = 0`` gives ``BinaryCrossentropy`` exactly (value and gradient).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = np.array([[0, 1], [0, 0]])
    >>> y_pred = np.array([[-18.6, 0.51], [2.94, -12.8]], dtype=np.float32)
    >>> print(f"{fastloss.losses.BinaryFocalCrossentropy(gamma=3, from_logits=True)(y_true, y_pred):.3f}")
    0.647
    >>> loss = fastloss.losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3, from_logits=True)
    >>> print(f"{loss(y_true, y_pred, sample_weight=[0.8, 0.2]):.3f}")
    0.097
    """

    _loss = "binary_focal_crossentropy"

    def __init__(
        self,
        apply_class_balancing=False,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_focal_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(from_logits, label_smoothing, axis, name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        self.apply_class_balancing = bool(apply_class_balancing)
        self.alpha = _check_alpha(alpha)
        self.gamma = _check_gamma(gamma)

    def _params(self):
        return {
            "label_smoothing": self.label_smoothing,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "flag": 1.0 if self.apply_class_balancing else 0.0,
        }

    def _config(self):
        cfg = super()._config()
        cfg.update(apply_class_balancing=self.apply_class_balancing, alpha=self.alpha, gamma=self.gamma)
        return cfg


class CategoricalFocalCrossentropy(_FromLogits):
    """Categorical focal cross-entropy, Keras 3's ``CategoricalFocalCrossentropy``.

    ``p = softmax(x)`` if ``from_logits``; ``q = clip(p / sum(p), eps, 1 - eps)``;
    ``loss = sum_axis[ alpha (1 - q)**gamma (-y log q) ]``.

    ``alpha`` is one number, or one per class (a list, tuple or 1-D array, as
    Keras takes it, for example inverse class frequencies): class ``j``'s
    terms are weighted by ``alpha[j]``. Keras multiplies a list along the
    *last* axis whatever ``axis`` is; fastloss takes one only with the class
    axis last, and refuses it otherwise rather than weight the wrong axis.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = [[0., 1., 0.], [0., 0., 1.]]
    >>> y_pred = np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]], dtype=np.float32)
    >>> print(f"{fastloss.losses.CategoricalFocalCrossentropy()(y_true, y_pred):.5f}")
    0.23315
    >>> print(f"{fastloss.losses.CategoricalFocalCrossentropy(reduction='sum')(y_true, y_pred):.5f}")
    0.46631

    One alpha per class (Keras 3.15 on TensorFlow prints the same numbers):

    >>> per_class = fastloss.losses.CategoricalFocalCrossentropy(alpha=[0.25, 0.5, 1.0], reduction=None)
    >>> print(per_class(y_true, y_pred))
    [6.4116663e-05 1.8650938e+00]
    """

    _loss = "categorical_focal_crossentropy"

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_focal_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(from_logits, label_smoothing, axis, name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        self.alpha = _check_class_alpha(alpha)  # a float, or a tuple: one per class
        self.gamma = _check_gamma(gamma)

    def _variant(self):
        return "probs"  # one kernel; the logits switch travels in the flag

    def _params(self):
        return {
            "label_smoothing": self.label_smoothing,
            "ls_per_class": True,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "flag": 1.0 if self.from_logits else 0.0,
        }

    def _config(self):
        cfg = super()._config()
        cfg.update(alpha=list(self.alpha) if isinstance(self.alpha, tuple) else self.alpha, gamma=self.gamma)
        return cfg


class KLDivergence(Loss):
    """Kullback-Leibler divergence, Keras 3's ``KLDivergence``:
    ``sum_last(y log(y / p))`` with ``y, p`` clipped to ``[eps, 1]``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = np.array([[0.2, 0.8], [0.5, 0.5]])
    >>> y_pred = np.array([[0.4, 0.6], [0.5, 0.5]])
    >>> fastloss.losses.KLDivergence(reduction=None)(y_true, y_pred).round(6)
    array([0.091516, 0.      ])
    """

    _loss = "kl_divergence"

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class Poisson(Loss):
    """Poisson loss, Keras 3's ``Poisson``: ``mean_last(p - y log(p + eps))``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> fastloss.losses.Poisson(reduction=None)([[1.0, 2.0]], np.array([[1.0, 2.0]])).round(6)
    array([0.806853])
    """

    _loss = "poisson"

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class SigmoidFocalCrossEntropy(Loss):
    """TF Addons' ``SigmoidFocalCrossEntropy`` (defaults: ``reduction="none"``).

    ``ce`` is Keras 2's binary cross-entropy (with logits:
    ``sigmoid_cross_entropy_with_logits``; with probabilities,
    ``p = clip(p, eps, 1 - eps)`` and ``-(y log(p + eps) + (1 - y) log(1 - p + eps))``);
    ``loss = SUM_last[ a_t (1 - p_t)**gamma ce ]`` with
    ``a_t = y alpha + (1 - y)(1 - alpha)``. ``alpha`` or ``gamma`` of 0/None turn
    their factor off; ``gamma < 0`` is a ValueError. Note the SUM over the last
    axis (Keras' focal loss takes the mean).

    Examples
    --------
    TF Addons' docstring example (TFA 0.23 gives 6.8532745e-06, 1.9097870e-04,
    2.0559824e-05):

    >>> import numpy as np, fastloss
    >>> fl = fastloss.losses.SigmoidFocalCrossEntropy()
    >>> loss = fl([[1.0], [1.0], [0.0]], np.array([[0.97], [0.91], [0.03]], dtype=np.float32))
    >>> print(np.array2string(loss, formatter={"float": lambda v: f"{v:.4e}"}))
    [6.8533e-06 1.9098e-04 2.0560e-05]
    """

    _loss = "sigmoid_focal_crossentropy"

    def __init__(
        self,
        from_logits=False,
        alpha=0.25,
        gamma=2.0,
        reduction="none",
        name="sigmoid_focal_crossentropy",
        dtype=None,
        class_weight=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        self.from_logits = bool(from_logits)
        self.alpha = _check_alpha(alpha)
        self.gamma = _check_gamma(gamma)

    def _variant(self):
        return "logits" if self.from_logits else "probs"

    def _params(self):
        return {"alpha": self.alpha, "gamma": self.gamma}

    def _config(self):
        return {"from_logits": self.from_logits, "alpha": self.alpha, "gamma": self.gamma}


# ----------------------------------------------------------------------------
# Regression, similarity and hinge losses (kernels: numba_cpu/regression.py)
# ----------------------------------------------------------------------------


class MeanSquaredError(Loss):
    """Mean squared error, Keras 3's ``MeanSquaredError``: ``mean_last((y - p)**2)``.

    Examples
    --------
    Keras' docstring example (a 1-D input: the mean over the last axis is
    already one number):

    >>> import numpy as np, fastloss
    >>> mse = fastloss.losses.MeanSquaredError()
    >>> print(f"{mse([1.0, 0.0, 1.0], np.array([0.9, 0.1, 0.8], dtype=np.float32)):.4f}")
    0.0200
    >>> loss, grad = mse.value_and_grad([[1.0, 0.0]], np.array([[0.5, 0.5]]))
    >>> grad   # 2 (p - y) / K
    array([[-0.5,  0.5]])
    """

    _loss = "mean_squared_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class MeanAbsoluteError(Loss):
    """Mean absolute error, Keras 3's ``MeanAbsoluteError``: ``mean_last(|y - p|)``.

    The gradient at ``p == y`` is 0 (TF's ``sign(0)``).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> mae = fastloss.losses.MeanAbsoluteError()
    >>> print(f"{mae([1.0, 0.3, 1.0], np.array([1.9, 0.3, 1.8], dtype=np.float32)):.7f}")
    0.5666667
    """

    _loss = "mean_absolute_error"

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class MeanAbsolutePercentageError(Loss):
    """Mean absolute percentage error, Keras 3's ``MeanAbsolutePercentageError``:
    ``100 mean_last(|y - p| / max(|y|, eps))``, ``eps = 1e-7``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> mape = fastloss.losses.MeanAbsolutePercentageError()
    >>> print(f"{mape([100.0, 200.0, 300.0], np.array([90.0, 210.0, 310.0], dtype=np.float32)):.5f}")
    6.11111
    """

    _loss = "mean_absolute_percentage_error"

    def __init__(
        self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None, class_weight=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class MeanSquaredLogarithmicError(Loss):
    """Mean squared logarithmic error, Keras 3's ``MeanSquaredLogarithmicError``:
    ``mean_last((log(max(p, eps) + 1) - log(max(y, eps) + 1))**2)``.

    Difference from Keras, on purpose: ``log(x + 1)`` is evaluated as
    ``log1p(x)`` (the same value, without the rounding of ``x + 1`` for small
    ``x``). The gradient is 0 where ``p < eps`` (clipped) and flows at
    ``p == eps`` (TF's ``maximum`` gives ties to its first argument).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> msle = fastloss.losses.MeanSquaredLogarithmicError(reduction=None)
    >>> msle([[0.0, 1.0]], np.array([[np.e - 1.0, 1.0]])).round(6)   # (1 - 0)**2 / 2
    array([0.5])
    """

    _loss = "mean_squared_logarithmic_error"

    def __init__(
        self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None, class_weight=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


def _check_delta(delta):
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise TypeError(f"`delta` must be a real number >= 0; got {delta!r}")
    if not math.isfinite(delta) or delta < 0:
        raise ValueError(f"`delta` must be a finite number >= 0; got {delta}")
    return float(delta)


class Huber(Loss):
    """Huber loss, Keras 3's ``Huber``. With ``e = p - y``:

    ``0.5 e**2`` if ``|e| <= delta`` else ``delta |e| - 0.5 delta**2``, averaged over
    the last axis. Gradient ``clip(e, -delta, delta)`` (both sides agree at
    ``|e| == delta``).

    Difference from Keras, on purpose: ``delta`` must be a finite number
    ``>= 0`` (ValueError otherwise; Keras accepts anything and returns NaN or
    nonsense for a negative or infinite ``delta``).

    Examples
    --------
    Keras' docstring example (``keras.losses.huber`` gives 0.155 as the mean):

    >>> import numpy as np, fastloss
    >>> h = fastloss.losses.Huber()
    >>> print(f"{h([[0, 1], [0, 0]], np.array([[0.6, 0.4], [0.4, 0.6]], dtype=np.float32)):.3f}")
    0.155
    >>> fastloss.losses.Huber(delta=0.5, reduction=None)([[0.0, 0.0]], np.array([[0.25, 2.0]]))
    array([0.453125])
    """

    _loss = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        self.delta = _check_delta(delta)

    def _params(self):
        return {"alpha": self.delta}

    def _config(self):
        return {"delta": self.delta}


class LogCosh(Loss):
    """Log-cosh loss, Keras 3's ``LogCosh``: ``mean_last(log(cosh(p - y)))``.

    Evaluated as Keras does, ``x + softplus(-2 x) - log 2`` written as
    ``|x| + log1p(exp(-2|x|)) - log 2`` (no overflow for any ``x``); gradient
    ``tanh(x)``. Like Keras', the value has an absolute (not relative) error
    of a few ulp of ``log 2`` for tiny ``|x|``.

    Examples
    --------
    Keras' docstring example (``keras.losses.log_cosh`` gives 0.108 as the mean):

    >>> import numpy as np, fastloss
    >>> lc = fastloss.losses.LogCosh()
    >>> print(f"{lc([[0.0, 1.0], [0.0, 0.0]], np.array([[1.0, 1.0], [0.0, 0.0]], dtype=np.float32)):.3f}")
    0.108
    """

    _loss = "log_cosh"

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class CosineSimilarity(Loss):
    """Cosine similarity loss, Keras 3's ``CosineSimilarity``:
    ``-sum_axis(l2n(y) l2n(p))``, ``l2n(x) = x min(1/||x||, 1/eps)``, ``eps = 1e-7``
    (Keras' ``normalize``: a zero vector normalizes to 0, so the loss is 0).

    Gradient as TF's: ``a (c a p - r y)`` with ``a = 1/||p||``, ``r = 1/||y||``
    (each capped at ``1/eps``), ``c`` the cosine; where ``||p|| < eps`` (a zero
    vector included) ``a`` is the constant ``1/eps`` and the gradient is
    ``-a r y`` (large, ``1e7 y/||y||``, exactly what TF returns).

    Examples
    --------
    Keras' docstring example:

    >>> import numpy as np, fastloss
    >>> y_true = [[0., 1.], [1., 1.], [1., 1.]]
    >>> y_pred = np.array([[1., 0.], [1., 1.], [-1., -1.]], dtype=np.float32)
    >>> fastloss.losses.CosineSimilarity(reduction=None)(y_true, y_pred).round(6) + 0.0
    array([ 0., -1.,  1.], dtype=float32)
    >>> print(f"{fastloss.losses.CosineSimilarity()(y_true, y_pred):.4f}")
    -0.0000
    """

    _loss = "cosine_similarity"

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"`axis` must be an int; got {axis!r}")
        self.axis = int(axis)

    def _kw(self):
        return {"axis": self.axis}

    def _config(self):
        return {"axis": self.axis}


class Hinge(Loss):
    """Hinge loss, Keras 3's ``Hinge``: ``mean_last(max(1 - y p, 0))``.

    ``y_true`` should be -1 or 1; when EVERY label of the batch is 0 or 1 they
    are mapped to ``2 y - 1`` (Keras' ``convert_binary_labels_to_hinge``).
    Gradient ``-y`` where ``1 - y p >= 0`` (TF gives the tie to the active side).

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> fastloss.losses.Hinge(reduction=None)([[0, 1], [1, 1]], np.array([[0.5, 0.5], [2.0, -1.0]]))
    array([1., 1.])
    """

    _loss = "hinge"

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class SquaredHinge(Loss):
    """Squared hinge loss, Keras 3's ``SquaredHinge``: ``mean_last(max(1 - y p, 0)**2)``,
    labels in {0, 1} mapped to {-1, 1} as in ``Hinge``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> fastloss.losses.SquaredHinge(reduction=None)([[0, 1], [1, 1]], np.array([[0.5, 0.5], [2.0, -1.0]]))
    array([1.25, 2.  ])
    """

    _loss = "squared_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


class CategoricalHinge(Loss):
    """Categorical hinge loss, Keras 3's ``CategoricalHinge``:
    ``max(neg - pos + 1, 0)``, ``pos = sum_last(y p)``, ``neg = max_last((1 - y) p)``.

    Gradient as TF's: where ``neg - pos + 1 >= 0``, ``(1 - y_j) [q_j == neg] / n - y_j``
    with ``q = (1 - y) p`` and ``n`` the number of ``q_j`` tied at the max.

    Infinite scores (a class masked with ``-inf``): a term whose label factor is 0
    (``y_j = 0`` in ``pos``, ``y_j = 1`` in ``q``) is 0, its limit, where Keras'
    formula makes ``0 * inf = NaN``: the true class at ``-inf`` gives ``+inf``, a
    wrong class at ``-inf`` leaves the loss as any very low score would. A NaN
    in the input still gives NaN.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> ch = fastloss.losses.CategoricalHinge(reduction=None)
    >>> ch([[0, 1, 0], [0, 0, 1]], np.array([[0.2, 0.9, 0.1], [1.0, 2.0, 2.0]]))
    array([0.3, 1. ])
    """

    _loss = "categorical_hinge"

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None, class_weight=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype, class_weight=class_weight)


# ----------------------------------------------------------------------------
# Bounding-box losses (kernels: numba_cpu/boxes.py)
# ----------------------------------------------------------------------------


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"`eps` must be a finite real number >= 0; got {eps!r}")
    return float(eps)


class _BoxLoss(Loss):
    """Shared by the box losses: one loss per box, ``box_format``, no class weights.

    ``y_true`` and ``y_pred`` hold boxes along their last axis (which must be
    4) and broadcast against each other as in TF: in particular one box
    against N boxes on either side (the single box is read in place, not
    copied; its gradient is the sum over the N pairs). The per-box loss has
    the broadcast shape with every size-1 axis dropped (TF Addons'
    ``tf.squeeze``): ``(N, 4)`` -> ``(N,)``, ``(1, 4)`` and ``(4,)`` -> a scalar,
    ``(B, N, 4)`` -> ``(B, N)``. Integer boxes are cast to float32.
    """

    def __init__(self, box_format="yxyx", reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._fmt = _validate.box_format(box_format)
        self.box_format = _validate.BOX_FORMATS[self._fmt]

    def _params(self):
        return {"flag": float(self._fmt)}

    def _config(self):
        return {"box_format": self.box_format}


class GIoULoss(_BoxLoss):
    """TF Addons' ``GIoULoss``: ``1 - GIoU`` (``mode="giou"``) or ``1 - IoU``
    (``mode="iou"``) per box, default reduction ``"sum_over_batch_size"``.

    Boxes are ``[y_min, x_min, y_max, x_max]`` (``box_format="yxyx"``, TF
    Addons' order; ``"xyxy"``, ``"xywh"``, ``"cxcywh"`` are fastloss
    additions). With extents clamped at 0 (``w = max(0, x_max - x_min)``),
    ``I`` the intersection area, ``U`` the union, ``C`` the enclosing box's area:

    (1) ``iou = I / U``  (0 where ``U == 0``: TF's ``divide_no_nan``)
    (2) ``giou = iou - (C - U) / C``  (the second term 0 where ``C == 0``)
    (3) ``loss = 1 - giou``, in [0, 2]  (``1 - iou`` in [0, 1] for ``mode="iou"``)

    The gradient w.r.t. ``y_pred`` is TF's (``tf.GradientTape`` through TF
    Addons' code), kinks included: where a predicted and a true coordinate tie
    in a max/min, the predicted one gets the gradient; a clamped extent
    (``max(0, d)`` at ``d <= 0``) and a zero divisor pass none.

    Degenerate boxes give finite values and gradients, as in TF Addons:
    two identical zero-area boxes: loss 1, gradient 0; a zero-area or inverted
    (max < min, clamped to zero extent) box against a proper one: IoU 0 and
    the enclosure term; boxes far apart: loss near 2. A NaN coordinate makes
    its box's loss NaN (and only that box's).

    Examples
    --------
    TF Addons' docstring example (TFA 0.23 gives 1.5041667):

    >>> import numpy as np, fastloss
    >>> gl = fastloss.losses.GIoULoss()
    >>> boxes1 = np.array([[4.0, 3.0, 7.0, 5.0], [5.0, 6.0, 10.0, 7.0]], np.float32)
    >>> boxes2 = np.array([[3.0, 4.0, 6.0, 8.0], [14.0, 14.0, 15.0, 15.0]], np.float32)
    >>> print(f"{gl(boxes1, boxes2):.7f}")
    1.5041667
    >>> loss, grad = gl.value_and_grad(boxes1, boxes2)
    >>> grad.shape, grad.dtype
    ((2, 4), dtype('float32'))
    """

    def __init__(self, mode="giou", reduction="sum_over_batch_size", name="giou_loss", box_format="yxyx", dtype=None):
        if mode not in ("giou", "iou"):
            raise ValueError(f"Invalid value for argument `mode`: {mode!r}. Expected 'giou' or 'iou'.")
        super().__init__(box_format=box_format, reduction=reduction, name=name, dtype=dtype)
        self.mode = mode

    @property
    def _loss(self):
        return "giou_loss" if self.mode == "giou" else "iou_loss"

    def _config(self):
        return {"mode": self.mode, "box_format": self.box_format}


class IoULoss(GIoULoss):
    """``1 - IoU`` per box: ``GIoULoss(mode="iou")`` (TF Addons' IoU, 0 where the
    union is 0), with fastloss' ``box_format``.

    >>> import numpy as np, fastloss
    >>> il = fastloss.losses.IoULoss(reduction=None)
    >>> il([[0, 0, 2, 2], [0, 0, 2, 2]], np.array([[0, 0, 1, 1], [0, 2, 2, 4]], np.float32))
    array([0.75, 1.  ], dtype=float32)
    """

    def __init__(self, box_format="yxyx", reduction="sum_over_batch_size", name="iou_loss", dtype=None):
        super().__init__(mode="iou", reduction=reduction, name=name, box_format=box_format, dtype=dtype)

    def _config(self):
        return {"box_format": self.box_format}


class DIoULoss(_BoxLoss):
    """Distance-IoU loss (Zheng et al., 2020) with torchvision's values
    (``torchvision.ops.distance_box_iou_loss``, ``eps=1e-7``):

    (1) ``iou = I / (U + eps)``
    (2) ``loss = 1 - iou + rho2 / (c2 + eps)``, ``rho2`` the squared distance of
        the two centres, ``c2`` the squared diagonal of the enclosing box.

    Differences from torchvision: the default box order is TF Addons'
    ``yxyx`` (torchvision's is ``box_format="xyxy"``); extents are clamped at
    0 as TF Addons does (torchvision leaves inverted boxes unclamped and
    documents them as invalid input); a tie in a max/min sends the gradient to
    the predicted coordinate (PyTorch splits it evenly); default reduction
    ``"sum_over_batch_size"`` (torchvision's is ``"none"``). Identical boxes
    give 0; degenerate boxes give finite values (the eps terms).

    >>> import numpy as np, fastloss
    >>> dl = fastloss.losses.DIoULoss(box_format="xyxy", reduction=None)
    >>> dl([[0, 0, 2, 2]], np.array([[2, 0, 4, 2], [1, 1, 3, 3]], np.float32)).round(6)
    array([1.2     , 0.968254], dtype=float32)
    """

    _loss = "diou_loss"

    def __init__(self, box_format="yxyx", eps=1e-7, reduction="sum_over_batch_size", name="diou_loss", dtype=None):
        super().__init__(box_format=box_format, reduction=reduction, name=name, dtype=dtype)
        self.eps = _check_eps(eps)

    def _params(self):
        return {"flag": float(self._fmt), "eps": self.eps}

    def _config(self):
        return {"box_format": self.box_format, "eps": self.eps}


class CIoULoss(DIoULoss):
    """Complete-IoU loss (Zheng et al., 2020) with torchvision's values
    (``torchvision.ops.complete_box_iou_loss``, ``eps=1e-7``):

    (1) DIoU loss, as ``DIoULoss``
    (2) ``v = 4 / pi**2 (atan(w_true / h_true) - atan(w_pred / h_pred))**2``
    (3) ``alpha = v / (1 - iou + v + eps)``;  ``loss = diou_loss + alpha v``

    ``atan(w / h)`` is evaluated as ``atan2(w, h)``: no division, so a box of
    zero height gives ``pi/2`` (the limit) and a point box 0 where torchvision
    gives NaN. The gradient treats ``alpha`` as a constant, as torchvision
    does (it computes alpha under ``torch.no_grad()``, following the CIoU
    paper): it is the gradient a PyTorch user trains with, NOT the exact
    derivative of the returned value (which would add ``v * d alpha``).
    Other differences from torchvision as for ``DIoULoss``.

    >>> import numpy as np, fastloss
    >>> cl = fastloss.losses.CIoULoss(box_format="xyxy", reduction=None)
    >>> cl([[0, 0, 2, 2]], np.array([[0, 0, 2, 2], [0, 0, 4, 2]], np.float32)).round(6)
    array([0.      , 0.553248], dtype=float32)
    """

    _loss = "ciou_loss"

    def __init__(self, box_format="yxyx", eps=1e-7, reduction="sum_over_batch_size", name="ciou_loss", dtype=None):
        super().__init__(box_format=box_format, eps=eps, reduction=reduction, name=name, dtype=dtype)
# Triplet losses (path: fastloss/_triplet.py; kernels: numba_cpu/triplet.py)
# ----------------------------------------------------------------------------


class _Triplet(Loss):
    """Base of the triplet losses: ``obj(y_true=labels, y_pred=embeddings)``.

    ``y_true``: N integer labels, shape (N,) or (N, 1) (integral floats and
    bools are accepted); ``y_pred``: (N, D) embeddings, or the (N, N) distance
    matrix with ``distance_metric="precomputed"``. The loss is ONE number per
    batch: ``sample_weight`` must be a scalar (or hold one element) and
    multiplies it (TF Addons fails on any other weight shape); ``reduction``
    (default ``"none"``, what TF Addons forces) changes nothing else, except
    ``"mean_with_sample_weight"``, where the weight divides out.

    ``distance_metric``: ``"L2"`` (Euclidean, NOT squared), ``"squared-L2"``,
    ``"angular"`` (``max(1 - cos, 0)``), ``"precomputed"`` (fastloss only:
    y_pred is the distance matrix and the gradient is w.r.t. it), or a callable
    ``f(embeddings) -> (N, N) distances``. A callable gives the loss value; for
    ``value_and_grad`` it must return ``(distances, vjp)`` with
    ``vjp(dL/ddistances) -> dL/dembeddings`` (e.g. from JAX or PyTorch), since
    fastloss cannot differentiate arbitrary code. Like TF Addons, a callable's
    matrix is used as given, diagonal included.

    Differences from TF Addons 0.23 (on purpose):

    * no positive pair in the batch (semi-hard: TFA returns NaN, 0/0): 0, and a
      zero gradient;
    * L2 distance of two (near-)duplicate embeddings: TFA's Gram formula
      ``|a|^2 + |b|^2 - 2 a.b`` cancels (float32 duplicates come out ~1e-4
      apart instead of 0); fastloss recomputes ``|a - b|^2`` directly where the
      Gram value is below 2**-6 (float32; 2**-20 float64) of ``|a|^2 + |b|^2``,
      so duplicates are exactly 0 apart. The gradient of the distance at 0 is
      undefined; fastloss takes the subgradient 0 (TFA's zero-distance mask
      does the same), so duplicates give finite gradients;
    * ties between equal distances competing for one selection: the whole
      gradient goes to the lowest column index (TF splits it equally among the
      tied entries); both are subgradients, the values agree;
    * softplus and its derivative are evaluated without overflow (TFA's
      ``log1p(exp(x))`` is inf beyond x ~ 88 in float32, its gradient NaN);
    * float64 embeddings are computed in float64 (TFA's L2 fails on float64);
    * ``N == 0``: 0.
    """

    _loss = None
    _soft_default = False

    def __init__(self, margin=1.0, distance_metric="L2", soft=False, name=None, reduction="none", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = _triplet.check_margin(margin)
        self.distance_metric = _triplet.check_metric(distance_metric)
        if not isinstance(soft, (bool, np.bool_)):
            raise TypeError(f"`soft` must be a bool; got {soft!r}")
        self.soft = bool(soft)

    def _run(self, y_true, y_pred, sample_weight, want_grad, grad_out):
        return _triplet.compute_triplet(
            self._loss,
            y_true,
            y_pred,
            margin=self.margin,
            soft=self.soft,
            distance_metric=self.distance_metric,
            sample_weight=sample_weight,
            reduction=self.reduction,
            want_grad=want_grad,
            grad_out=grad_out,
            dtype=self.dtype,
        )

    def value_and_grad(self, y_true, y_pred, sample_weight=None, grad_out=None):
        """Loss and its gradient w.r.t. the embeddings ``y_pred`` (N, D) (w.r.t.
        the distance matrix for ``"precomputed"``), from one mining pass.

        ``grad_out``: optional C-contiguous array of y_pred's shape and float
        dtype to write the gradient into (reuse it across calls in a hot loop).
        """
        return self._run(y_true, y_pred, sample_weight, True, grad_out)

    def grad_hess(self, y_true, y_pred, sample_weight=None):
        raise ValueError(f"grad_hess is not available for {type(self).__name__} (one loss per batch, not per sample)")

    def _config(self):
        return {"margin": self.margin, "soft": self.soft, "distance_metric": self.distance_metric}


class TripletSemiHardLoss(_Triplet):
    """TF Addons' ``TripletSemiHardLoss``: semi-hard negative mining.

    With ``D`` the distances (``distance_metric``), for every positive pair
    ``(a, p)`` (same label, ``a != p``):

    (1) ``neg = min{D[a, n] : label(n) != label(a), D[a, n] > D[a, p]}`` (strict;
        the margin plays no part in the mining);
    (2) if there is none, ``neg = max{D[a, n] : label(n) != label(a)}`` (and when
        the anchor has no negative at all, the smallest entry of its row,
        TFA's masked-maximum rule: 0 for L2);
    (3) ``loss = sum max(margin + D[a, p] - neg, 0) / (number of positive pairs)``.

    ``soft=True`` (fastloss only; TFA has no such option for semi-hard):
    ``softplus(D[a, p] - neg)`` instead of the hinge, the margin unused (as in
    TFA's ``TripletHardLoss(soft=True)``). Differences from TFA: see ``_Triplet``
    (no positive pair: 0, TFA NaN).

    Examples
    --------
    TF Addons' docstring values:

    >>> import numpy as np, fastloss
    >>> y_true = np.array([0, 0])
    >>> y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    >>> print(f"{fastloss.losses.TripletSemiHardLoss()(y_true, y_pred):.7f}")
    2.4142137
    >>> sim = lambda x: x @ x.T
    >>> print(fastloss.losses.TripletSemiHardLoss(distance_metric=sim)(y_true, y_pred))
    1.0
    >>> loss, grad = fastloss.losses.TripletSemiHardLoss().value_and_grad(y_true, y_pred)
    >>> grad.shape, grad.dtype
    ((2, 2), dtype('float32'))
    """

    _loss = "triplet_semihard"

    def __init__(self, margin=1.0, distance_metric="L2", name="triplet_semihard_loss", soft=False, reduction="none", dtype=None):
        super().__init__(margin=margin, distance_metric=distance_metric, soft=soft, name=name, reduction=reduction, dtype=dtype)


class TripletHardLoss(_Triplet):
    """TF Addons' ``TripletHardLoss``: hardest positive and hardest negative per anchor.

    For every anchor ``a`` (all N of them):

    (1) ``hp = max{D[a, p] : label(p) == label(a), p != a}`` (no positive: the
        smallest entry of the row, 0 for L2: TFA's masked-maximum rule);
    (2) ``hn = min{D[a, n] : label(n) != label(a)}`` (no negative: the largest
        entry of the row);
    (3) ``loss = mean_a max(hp - hn + margin, 0)``; ``soft=True``:
        ``mean_a log(1 + exp(hp - hn))`` (the margin unused, as in TFA).

    Examples
    --------
    TF Addons' docstring values:

    >>> import numpy as np, fastloss
    >>> y_true = np.array([0, 0])
    >>> y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    >>> print(fastloss.losses.TripletHardLoss()(y_true, y_pred))
    1.0
    >>> sim = lambda x: x @ x.T
    >>> print(fastloss.losses.TripletHardLoss(distance_metric=sim)(y_true, y_pred))
    0.0
    """

    _loss = "triplet_hard"

    def __init__(self, margin=1.0, soft=False, distance_metric="L2", name="triplet_hard_loss", reduction="none", dtype=None):
        super().__init__(margin=margin, distance_metric=distance_metric, soft=soft, name=name, reduction=reduction, dtype=dtype)


class TripletBatchAllLoss(_Triplet):
    """Batch-all triplet loss (fastloss only; not in TF Addons).

    Every valid triplet ``(a, p, n)`` (``label(p) == label(a)``, ``p != a``,
    ``label(n) != label(a)``) takes part:

    (1) hinge (default): ``l = max(margin + D[a, p] - D[a, n], 0)``;
        ``loss = sum(l) / #{l > 0}`` (the mean over the triplets that still
        violate the margin; 0 when none does);
    (2) ``soft=True``: ``loss = mean over all valid triplets of
        softplus(D[a, p] - D[a, n])`` (the margin unused, as in TFA's soft hard loss).

    The gradient treats the count in (1) as a constant (it is piecewise so).
    Cost O(N * P * Q) per batch (P positives, Q negatives per anchor), O(N^2) memory.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> y_true = np.array([0, 0, 1])
    >>> y_pred = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 1.5]])
    >>> print(f"{fastloss.losses.TripletBatchAllLoss()(y_true, y_pred):.4f}")
    1.0000
    """

    _loss = "triplet_batch_all"

    def __init__(self, margin=1.0, soft=False, distance_metric="L2", name="triplet_batch_all_loss", reduction="none", dtype=None):
        super().__init__(margin=margin, distance_metric=distance_metric, soft=soft, name=name, reduction=reduction, dtype=dtype)


# ---- identifiers: keras.losses.get / serialize / deserialize ------------------------

# Keras 3's short names (keras.losses.ALL_OBJECTS_DICT) for its functions.
_ALIASES = {
    "bce": "binary_crossentropy",
    "kld": "kl_divergence",
    "mae": "mean_absolute_error",
    "mape": "mean_absolute_percentage_error",
    "mse": "mean_squared_error",
    "msle": "mean_squared_logarithmic_error",
}
_ALIASES.update({k.upper(): v for k, v in list(_ALIASES.items())})
# Keras losses outside fastloss' mission: named in the error message.
_NOT_HERE = ("Dice", "Tversky", "Circle", "CTC", "CategoricalGeneralizedCrossEntropy",
             "dice", "tversky", "circle", "ctc", "categorical_generalized_cross_entropy")


def _objects():
    from . import functional

    objs = {n: globals()[n] for n in __all__ if n[0].isupper() and n != "Loss"}
    objs.update({n: f for n in dir(functional) if n[0] != "_" and callable(f := getattr(functional, n))})
    objs.pop("losses", None)
    objs.update({a: objs[n] for a, n in _ALIASES.items()})
    return objs


def _lookup(name, custom_objects):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    objs = _objects()
    key = name[len("Addons>"):] if name.startswith("Addons>") else name  # TF Addons' registered names
    if key in objs:
        return objs[key]
    if key in _NOT_HERE:
        raise ValueError(f"Keras loss {name!r} has no fastloss equivalent (outside fastloss' losses)")
    classes = ", ".join(sorted(k for k in objs if k[0].isupper() and k not in _ALIASES))
    raise ValueError(
        f"Could not interpret loss identifier: {name!r}. Expected a class name ({classes}), "
        f"a function name (e.g. 'binary_crossentropy', 'mse'), a config dict or a callable"
    )


def serialize(loss):
    """A loss object or function as a dict that ``deserialize``/``get`` turn back
    into it, in the layout of ``keras.losses.serialize``: ``{"module",
    "class_name", "config", "registered_name"}`` (``config`` is
    ``get_config()``; a function is recorded by name, as Keras does)."""
    if isinstance(loss, Loss):
        return {"module": type(loss).__module__, "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    name = getattr(loss, "__name__", None)
    if callable(loss) and name is not None and _objects().get(name) is loss:
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    raise TypeError(f"`loss` must be a fastloss.losses.Loss object or a fastloss loss function; got {loss!r}")


def deserialize(config, custom_objects=None):
    """The loss that ``config`` names, as ``keras.losses.deserialize``: a dict
    from ``serialize``/``keras.losses.serialize`` (Keras 3 or 2, TF Addons; the
    ``module`` is not consulted, the ``class_name`` is; a class's ``config`` goes
    to its ``from_config``), or a class name (an instance with the defaults) or
    a function name (the function). ``custom_objects``: extra ``name -> class or
    function``, consulted first.

    Keras' own configs lose what its ``get_config`` omits (Keras 3.15: ``delta``
    of ``Huber``, ``axis`` of ``CosineSimilarity``): the defaults stand in, as
    they do when Keras deserializes them.
    """
    if isinstance(config, str):
        obj = _lookup(config, custom_objects)
        return obj() if isinstance(obj, type) else obj
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict or a string; got {type(config).__name__}")
    name = config.get("class_name")
    if not isinstance(name, str):
        raise ValueError(f"Could not interpret loss identifier: {config!r} (no 'class_name')")
    inner = config.get("config")
    if name == "function":  # Keras records a function by its name
        if not isinstance(inner, str):
            raise ValueError(f"Could not interpret loss identifier: {config!r}")
        obj = _lookup(inner, custom_objects)
        if isinstance(obj, type):
            raise ValueError(f"Could not interpret loss identifier: {config!r} ({inner!r} is a class)")
        return obj
    obj = _lookup(name, custom_objects)
    if not isinstance(obj, type):
        return obj
    return obj.from_config(inner or {})


def get(identifier):
    """A loss from an identifier, as ``keras.losses.get``: ``None`` -> ``None``;
    a string -> the function of that name (``"binary_crossentropy"``,
    ``"mse"``, ``"huber"``, ...) or an instance of the class of that name with
    its defaults (``"BinaryCrossentropy"``, TF Addons' ``"GIoULoss"``); a dict
    -> ``deserialize``; a callable (a loss object, a function) -> itself.

    >>> import fastloss
    >>> fastloss.losses.get("mse") is fastloss.mean_squared_error
    True
    >>> fastloss.losses.get({"class_name": "BinaryCrossentropy", "config": {"from_logits": True}})
    BinaryCrossentropy(from_logits=True, label_smoothing=0.0, axis=-1, reduction='sum_over_batch_size')
    """
    if identifier is None:
        return None
    if isinstance(identifier, (dict, str)):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")

__all__ = [
    "Loss",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy",
    "KLDivergence",
    "Poisson",
    "SigmoidFocalCrossEntropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError",
    "Huber",
    "LogCosh",
    "CosineSimilarity",
    "Hinge",
    "SquaredHinge",
    "CategoricalHinge",
    "GIoULoss",
    "IoULoss",
    "DIoULoss",
    "CIoULoss",
    "TripletSemiHardLoss",
    "TripletHardLoss",
    "TripletBatchAllLoss",
    "get",
    "serialize",
    "deserialize",
]
