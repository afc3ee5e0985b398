"""Gradient-boosting objectives and metrics from fastloss losses (XGBoost, LightGBM).

Any loss with ``grad_hess`` (see ``fastloss.losses.Loss.grad_hess``) becomes a
custom objective in one line::

    from fastloss.boosting import xgboost_objective, lightgbm_objective
    from fastloss.losses import BinaryCrossentropy

    obj = xgboost_objective(BinaryCrossentropy(from_logits=True))
    booster = xgboost.train({"base_score": 0.0}, dtrain, num_boost_round=50, obj=obj)
    clf = xgboost.XGBClassifier(objective=obj)                    # sklearn API: the same callable

    obj = lightgbm_objective(BinaryCrossentropy(from_logits=True))
    booster = lightgbm.train({"objective": obj}, dataset)           # native API
    clf = lightgbm.LGBMClassifier(objective=obj)                    # sklearn API: the same callable

Both libraries hand a custom objective *raw scores* (margins, before any
sigmoid/softmax), so the losses are the ``from_logits=True`` ones for
classification (``Poisson`` and the regression losses take the raw prediction
itself). The objective returns, per score, the derivatives of
``sum_i w_i loss_i`` (data-set weights times the loss' ``class_weight``; the
loss' ``reduction`` plays no part).

Shapes (what XGBoost 3.x and LightGBM 4.x pass):

* one score per sample, ``(n,)``: scores and labels are taken as ``(n, 1)``,
  i.e. each sample is its own row (``BinaryCrossentropy``, ``Poisson``,
  regression losses); the gradient comes back ``(n,)``.
* multi-class, ``(n, C)`` (XGBoost's ``num_class``, LightGBM's ``num_class``;
  LightGBM's array is Fortran-ordered, which is fine): labels are ``(n,)``
  class indices. ``SparseCategoricalCrossentropy(from_logits=True)`` takes them
  as they are; a dense loss (``CategoricalCrossentropy(from_logits=True)``) gets
  them one-hot encoded. The Hessian is the exact diagonal ``p (1 - p)``
  (XGBoost's ``multi:softprob`` uses ``2 p (1 - p)``, LightGBM's ``multiclass``
  ``C/(C-1) p (1 - p)``: the same trees up to the scale of ``lambda`` and
  ``min_child_weight``).
* multi-output regression, ``(n, T)`` with ``n*T`` labels (XGBoost): the rows
  are the samples, so a mean over the last axis scales the derivatives by
  ``1/T`` (reshape to one output per row yourself if that matters).

The same callable serves each library's native and scikit-learn interfaces:
it tells ``(preds, DMatrix/Dataset)`` from ``(y_true, y_pred[, weight])`` by
the second argument. With a custom objective, XGBoost's ``base_score`` is a
*margin* (set ``base_score=0.0`` to start from 0 like ``binary:logistic``'s
``base_score=0.5`` does), and LightGBM starts from 0 (its built-in objectives
start from the data average unless ``boost_from_average=False``).
"""

import copy

import numpy as np

from . import _registry

__all__ = ["xgboost_objective", "lightgbm_objective", "xgboost_metric", "lightgbm_metric"]


def _is_sparse(loss):
    spec = _registry.REGISTRY.get(getattr(loss, "_loss", None))
    return spec is not None and spec.layout == "sparse"


def _shaped(loss, y_true, raw):
    """(y, x, back): fastloss inputs for labels ``y_true`` and raw scores, and a
    function that gives an array of x's shape the shape of ``raw``."""
    raw = np.asarray(raw)
    y = np.asarray(y_true)
    if raw.ndim == 1:
        if _is_sparse(loss):
            raise ValueError(
                f"{type(loss).__name__} needs multi-class scores of shape (n_samples, n_classes) "
                f"(num_class >= 2); got one score per sample, shape {raw.shape}. For a binary "
                "task use BinaryCrossentropy(from_logits=True)."
            )
        n = raw.shape[0]
        return y.reshape(n, 1), raw.reshape(n, 1), lambda a: a.reshape(n)
    if raw.ndim != 2:
        raise ValueError(f"expected raw scores of shape (n,) or (n, C); got {raw.shape}")
    n, C = raw.shape
    if _is_sparse(loss):
        return y.reshape(n), raw, lambda a: a
    if y.size == n * C:
        return y.reshape(n, C), raw, lambda a: a
    if y.size == n:  # class indices -> one-hot
        lab = y.reshape(n).astype(np.int64)
        if lab.size and (lab.min() < 0 or lab.max() >= C):
            raise ValueError(f"class labels must be in [0, {C}); got values in [{lab.min()}, {lab.max()}]")
        onehot = np.zeros((n, C), raw.dtype if raw.dtype.kind == "f" else np.float32)
        onehot[np.arange(n), lab] = 1.0
        return onehot, raw, lambda a: a
    raise ValueError(f"{y.size} labels do not fit raw scores of shape {raw.shape}")


def _weight(w):
    if w is None:
        return None
    w = np.asarray(w)
    return None if w.size == 0 else w


def _grad_hess(loss, y_true, raw, weight):
    y, x, back = _shaped(loss, y_true, raw)
    g, h = loss.grad_hess(y, x, sample_weight=_weight(weight))
    return back(g), back(h)


def _check(loss):
    if not hasattr(loss, "grad_hess"):
        raise TypeError(f"expected a fastloss loss object with grad_hess; got {type(loss).__name__}")
    return loss


def _name(loss):
    return getattr(loss, "name", None) or type(loss).__name__


def xgboost_objective(loss):
    """An XGBoost custom objective from a fastloss loss.

    Returns ``obj(predt, dtrain) -> (grad, hess)`` for ``xgboost.train(..., obj=obj)``;
    the same callable works as ``XGBClassifier/XGBRegressor(objective=obj)``
    (``obj(y_true, y_pred, sample_weight=None)``). ``dtrain``'s weights are
    used. Shapes: see the module docstring.

    >>> import numpy as np
    >>> from fastloss.losses import BinaryCrossentropy
    >>> obj = xgboost_objective(BinaryCrossentropy(from_logits=True))
    >>> g, h = obj(np.array([1.0, 0.0]), np.array([0.0, 2.0], np.float32))   # (y_true, y_pred)
    >>> g.round(4), h.round(4)            # sigmoid(x) - y, sigmoid(x) sigmoid(-x)
    (array([-0.5   ,  0.8808], dtype=float32), array([0.25 , 0.105], dtype=float32))
    """
    _check(loss)

    def objective(predt_or_y_true, dtrain_or_y_pred, sample_weight=None):
        if hasattr(dtrain_or_y_pred, "get_label"):  # native: (predt, DMatrix)
            dtrain = dtrain_or_y_pred
            return _grad_hess(loss, dtrain.get_label(), predt_or_y_true, dtrain.get_weight())
        return _grad_hess(loss, predt_or_y_true, dtrain_or_y_pred, sample_weight)

    objective.__name__ = objective.__qualname__ = f"xgboost_objective_{_name(loss)}"
    objective.loss = loss
    return objective


def lightgbm_objective(loss):
    """A LightGBM custom objective from a fastloss loss.

    Returns a callable that works both as ``lightgbm.train({"objective": obj}, ...)``
    (called ``obj(preds, train_data)``, weights from the Dataset) and as
    ``LGBMClassifier/LGBMRegressor(objective=obj)`` (called
    ``obj(y_true, y_pred, weight)``). Shapes: see the module docstring.

    >>> import numpy as np
    >>> from fastloss.losses import SparseCategoricalCrossentropy
    >>> obj = lightgbm_objective(SparseCategoricalCrossentropy(from_logits=True))
    >>> g, h = obj(np.array([0, 2]), np.zeros((2, 3)))     # (y_true, y_pred (n, C))
    >>> g.round(4)                                          # softmax - onehot
    array([[-0.6667,  0.3333,  0.3333],
           [ 0.3333,  0.3333, -0.6667]])
    """
    _check(loss)

    def objective(preds_or_y_true, train_data_or_y_pred, weight=None):
        if hasattr(train_data_or_y_pred, "get_label"):  # native: (preds, Dataset)
            ds = train_data_or_y_pred
            return _grad_hess(loss, ds.get_label(), preds_or_y_true, ds.get_weight())
        return _grad_hess(loss, preds_or_y_true, train_data_or_y_pred, weight)

    objective.__name__ = objective.__qualname__ = f"lightgbm_objective_{_name(loss)}"
    objective.loss = loss
    return objective


def _metric_value(loss, y_true, raw, weight):
    """Weighted mean per-sample loss: sum(w l) / sum(w) (plain mean without weights)."""
    y, x, _ = _shaped(loss, y_true, raw)
    m = copy.copy(loss)
    m.reduction = "mean_with_sample_weight"
    return float(m(y, x, sample_weight=_weight(weight)))


def xgboost_metric(loss, name=None):
    """An XGBoost custom metric: ``metric(predt, dmatrix) -> (name, value)``, the
    (weighted) mean per-sample loss, for ``xgboost.train(..., custom_metric=metric)``.
    XGBoost passes raw margins when the objective is custom, transformed
    predictions (probabilities) otherwise: pick ``from_logits`` to match."""
    _check(loss)
    label = name or _name(loss)

    def metric(predt, dmatrix):
        return label, _metric_value(loss, dmatrix.get_label(), predt, dmatrix.get_weight())

    metric.__name__ = metric.__qualname__ = label
    return metric


def lightgbm_metric(loss, name=None):
    """A LightGBM custom metric (lower is better), both signatures:
    ``feval(preds, eval_data)`` for ``lightgbm.train(..., feval=metric)`` and
    ``(y_true, y_pred, weight)`` for the sklearn API's ``eval_metric``;
    returns ``(name, value, False)``. LightGBM passes raw scores when the
    objective is custom."""
    _check(loss)
    label = name or _name(loss)

    def metric(preds_or_y_true, data_or_y_pred, weight=None):
        if hasattr(data_or_y_pred, "get_label"):
            ds = data_or_y_pred
            return label, _metric_value(loss, ds.get_label(), preds_or_y_true, ds.get_weight()), False
        return label, _metric_value(loss, preds_or_y_true, data_or_y_pred, weight), False

    metric.__name__ = metric.__qualname__ = label
    return metric
