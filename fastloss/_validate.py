"""Coercion and checks shared by every loss: dtypes, shapes, labels, weights,
reductions. Each failure is a ``ValueError`` or ``TypeError`` that names the
argument and what was expected. Nothing here ever writes into an input."""

import math
import operator

import numpy as np

REDUCTIONS = ("sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight")

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def standardize_reduction(reduction):
    """Keras' names; ``None`` means ``"none"``; TF's ``"auto"`` means the default."""
    if reduction is None:
        return "none"
    if isinstance(reduction, str):
        r = reduction.lower()
        if r == "auto":
            return "sum_over_batch_size"
        if r in REDUCTIONS:
            return r
    raise ValueError(
        f"Invalid value for argument `reduction`: {reduction!r}. "
        f"Expected one of {list(REDUCTIONS)} or None."
    )


def _as_numeric(x, name):
    try:
        a = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"`{name}` must be an array of real numbers; got {type(x).__name__} ({exc})") from None
    k = a.dtype.kind
    if k not in "fiub":
        raise TypeError(f"`{name}` must hold real numbers (float, int or bool); got dtype {a.dtype}")
    return a


def _np_dtype(dt):
    """The NumPy dtype behind an array's ``dtype`` attribute: NumPy's own,
    TensorFlow's (``tf.float64.as_numpy_dtype``) or one known by its name
    (PyTorch's ``torch.float64``); None where none fits (``torch.bfloat16``).
    TensorFlow's DType compares equal to NumPy's, so it must be converted, not
    compared: ``np.empty(n, tf.float64)`` fails."""
    conv = getattr(dt, "as_numpy_dtype", None)
    if conv is not None:
        dt = conv
    try:
        return np.dtype(dt)
    except TypeError:
        pass
    try:
        return np.dtype(str(dt).rpartition(".")[2])
    except TypeError:
        return None


def compute_dtype(y_pred, dtype=None):
    """float32 in -> float32, float64 in -> float64, any other number -> float32,
    unless ``dtype`` ('float32'/'float64') asks for one. Arrays of other
    libraries count by their dtype too (a float64 PyTorch CPU tensor or
    TensorFlow tensor is float64)."""
    if dtype is None and type(y_pred) is np.ndarray:  # the common call, without the conversions below
        dt = y_pred.dtype
        return dt if dt in _FLOATS else _FLOATS[0]
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"`dtype` must be 'float32' or 'float64'; got {dtype!r}") from None
        if dt not in _FLOATS:
            raise ValueError(f"`dtype` must be 'float32' or 'float64'; got {dtype!r}")
        return dt
    dt = getattr(y_pred, "dtype", None)
    if dt is not None:
        dt = _np_dtype(dt)
        if dt in _FLOATS:
            return dt
    return _FLOATS[0]


def as_float(x, name, dt):
    """``x`` as an array of dtype ``dt`` (a copy only when the dtype differs)."""
    if type(x) is np.ndarray and x.dtype == dt:
        return x
    a = _as_numeric(x, name)
    if a.dtype != dt:
        a = a.astype(dt)
    return a


def as_real(x, name):
    """A numeric array, its dtype kept (kernels convert per element)."""
    if type(x) is np.ndarray and x.dtype in _FLOATS:
        return x
    a = _as_numeric(x, name)
    if a.dtype.kind == "f" and a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    return a


def squeeze_or_expand(x1, x2):
    """Keras' ``squeeze_or_expand_to_same_rank`` on NumPy arrays."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = x2[:, None]
        else:
            x1 = x1[..., 0]
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = x1[:, None]
        else:
            x2 = x2[..., 0]
    return x1, x2


# How y_true and y_pred of different shapes broadcast, per loss (the
# registry's ``LossSpec.broadcast``), as Keras 3 on TensorFlow does: "all" for
# losses built from elementwise terms; "none" where Keras' cross-entropy ops
# refuse different shapes; "class" where Keras works along the class axis of
# each input before broadcasting (cosine similarity normalizes both;
# categorical focal normalizes y_pred and counts label smoothing's classes on
# y_true), so neither may broadcast along that axis (only the leading ones).


def broadcast_shape(st, sp, mode, axis, loss, shape_true, shape_pred):
    """The shape y_true (rank-fixed shape ``st``) and y_pred (``sp``) broadcast
    to for loss ``loss`` (its ``broadcast`` mode, see above), or a
    ``ValueError`` naming the shapes the caller passed (``shape_true``/
    ``shape_pred``)."""
    got = f"got y_true {tuple(shape_true)} and y_pred {tuple(shape_pred)}"
    if mode == "none":
        raise ValueError(
            f"`y_true` and `y_pred` must have the same shape for {loss} (Keras' cross-entropy does not "
            f"broadcast them either); {got}"
        )
    try:
        b = tuple(np.broadcast_shapes(st, sp))
    except ValueError:
        raise ValueError(
            f"`y_true` and `y_pred` must have the same shape, or shapes that broadcast against each other; {got}"
        ) from None
    ax = check_axis(axis, len(b)) - len(b)  # the class axis, counted from the end
    for name, shape in (("y_true", st), ("y_pred", sp)):
        if mode == "class" and (len(shape) < -ax or shape[ax] != b[ax]):
            raise ValueError(
                f"`{name}` must not broadcast along the class axis for {loss} (Keras normalizes or counts "
                f"classes along each input's own class axis first); its size there must be {b[ax]}; {got}"
            )
    return b


def class_alpha(n_alpha, K, moved):
    """A per-class ``alpha`` of ``n_alpha`` values for ``K`` classes (categorical
    focal); ``moved``: the class axis is not y_pred's last, along which Keras
    multiplies a list alpha whatever ``axis`` is."""
    if moved:
        raise ValueError(
            "a per-class `alpha` (a sequence) needs the class axis last (axis=-1): Keras multiplies it "
            "along y_pred's last axis whatever `axis` is; move the class axis last, or give one number"
        )
    if n_alpha != K:
        raise ValueError(f"`alpha` has {n_alpha} values; y_pred has {K} classes (give one per class, or one number)")


def check_axis(axis, ndim, name="axis"):
    if type(axis) is int and -ndim <= axis < ndim:  # (ndim 0 never passes: its error is below)
        return axis % ndim
    if isinstance(axis, bool):
        raise TypeError(f"`{name}` must be an int; got {axis!r}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"`{name}` must be an int; got {type(axis).__name__}") from None
    if ndim == 0:
        raise ValueError("`y_pred` must have at least one dimension; got a scalar")
    if not -ndim <= ax < ndim:
        raise ValueError(f"`{name}`={axis} is out of range for y_pred with {ndim} dimension(s)")
    return ax % ndim


def as_labels(x, name="y_true"):
    """Class labels as given (integer, bool or float array); see ``labels_int64``."""
    return _as_numeric(x, name)


def bad_labels_message(n_bad, n_classes, value, index, ignore_class):
    return (
        f"`y_true` has {n_bad} label(s) that are not integers in [0, {n_classes})"
        + (f" or the ignore_class {ignore_class}" if ignore_class is not None else "")
        + f"; the first is {value!r} at index {index}"
    )


def labels_int64(lab, n_classes, ignore_class):
    """Labels as a C-contiguous int64 array for the kernels.

    Integer labels are range-checked inside the kernel (no extra pass). Float
    labels (Keras accepts them and truncates) must be integral: that is checked
    here, in the same pass that converts them.
    """
    if lab.dtype.kind in "iub":
        return np.ascontiguousarray(lab, dtype=np.int64)
    flat = lab.reshape(-1)
    with np.errstate(invalid="ignore"):
        ok = (flat == np.trunc(flat)) & (flat >= 0) & (flat < n_classes)
        if ignore_class is not None:
            ok |= flat == ignore_class
    if not ok.all():
        bad = np.flatnonzero(~ok)
        i = int(bad[0])
        idx = np.unravel_index(i, lab.shape) if lab.ndim > 1 else i
        raise ValueError(bad_labels_message(len(bad), n_classes, flat[i].item(), idx, ignore_class))
    return np.ascontiguousarray(lab, dtype=np.int64)


def check_grad_out(grad_out, shape, dt, inputs):
    if type(grad_out) is not np.ndarray:
        raise TypeError(f"`grad_out` must be a NumPy array; got {type(grad_out).__name__}")
    if grad_out.shape != shape or grad_out.dtype != dt:
        raise ValueError(
            f"`grad_out` must have shape {shape} and dtype {dt} (those of y_pred's gradient); "
            f"got shape {grad_out.shape} and dtype {grad_out.dtype}"
        )
    flags = grad_out.flags
    if not (flags.c_contiguous and flags.writeable):
        raise ValueError("`grad_out` must be a writeable C-contiguous array")
    for a in inputs:
        if type(a) is np.ndarray and np.may_share_memory(grad_out, a):
            raise ValueError("`grad_out` must not share memory with y_true, y_pred or sample_weight")


def sample_weights(sample_weight, value_shape, dt, keras2=False):
    """Keras' weighting of per-sample losses (``keras2``: Keras 2's rank fix,
    which the TF Addons losses run on, instead of Keras 3's).

    Returns ``(w_rows, ws, out_shape, w_kept, spread)``: ``w_rows`` a 1-D array
    of dtype ``dt`` with one weight per loss element (``ws = 1``) or a single
    weight (``ws = 0``); ``out_shape`` the shape of the weighted losses (Keras
    may expand a rank); ``w_kept`` the weight array as Keras sums it for
    ``"mean_with_sample_weight"`` (after the rank fix, before broadcasting).

    Keras multiplies the losses by the weights with broadcasting, so weights of
    a larger shape spread each loss element over several weighted ones (a 1-D
    MSE's scalar loss times weights of shape ``(n,)`` gives ``n`` weighted
    losses; "sum_over_batch_size" divides by ``n``). ``spread`` is then
    ``(idx, wb)``: weighted loss ``j`` (flat, of ``out_shape``) is
    ``loss[idx[j]] * wb[j]``; ``w_rows`` holds each loss element's summed
    weights (the kernels' total and gradient are linear in them). Else None.
    """
    w = keras2_rank_fix(sample_weight, value_shape) if keras2 else _as_numeric(sample_weight, "sample_weight")
    if w.dtype != dt:
        w = w.astype(dt)
    n = int(math.prod(value_shape))  # np.prod of a shape costs ~6 us a call
    if w.shape == tuple(value_shape) and w.ndim:  # the usual case: one weight per loss element
        return np.ascontiguousarray(w).reshape(n), 1, tuple(value_shape), w, None
    if w.ndim == 0:
        # Keras 3's rank fix squeezes a loss of shape (1,) against a 0-d weight:
        # a 0-d weighted loss, which every reduction returns as it is (so
        # "mean_with_sample_weight" gives loss * w there, not loss)
        if not keras2 and len(value_shape) == 1 and value_shape[0] == 1:
            return w.reshape(1), 0, (), w, None
        return w.reshape(1), 0, value_shape, w, None
    vals = np.empty(value_shape, dtype=np.bool_) if n else np.zeros(value_shape, np.bool_)
    v2, w2 = (vals, w) if keras2 else squeeze_or_expand(vals, w)
    try:
        out_shape = tuple(np.broadcast_shapes(v2.shape, w2.shape))
    except ValueError:
        raise ValueError(
            f"`sample_weight` of shape {np.shape(sample_weight)} does not fit the per-sample loss of shape "
            f"{tuple(value_shape)}; expected a scalar, shape {tuple(value_shape)}, or a shape "
            f"that broadcasts with it (Keras multiplies the two)"
        ) from None
    if int(math.prod(out_shape)) != n:
        idx = np.ascontiguousarray(np.broadcast_to(np.arange(n, dtype=np.int64).reshape(v2.shape), out_shape)).reshape(-1)
        wb = np.ascontiguousarray(np.broadcast_to(w2, out_shape)).reshape(-1)
        rows = np.bincount(idx, weights=wb, minlength=n).astype(dt)  # bincount sums in float64
        return rows, 1, out_shape, w2, (idx, wb)
    rows = np.ascontiguousarray(np.broadcast_to(w2, out_shape)).reshape(n)
    if not rows.flags.writeable:  # broadcast_to's read-only view of w2 (only size-1 axes added): w2 itself,
        rows = np.ascontiguousarray(w2).reshape(n)  # so that the kernels see the same array type as with a copy
    return rows, 1, out_shape, w2, None


# class_weight dicts whose keys are in [0, _CW_TABLE_MAX) map labels through a
# dense table, 1.0 for the classes not listed and, in its last slot, for every
# label outside [0, max key] (the labels as uint64, where negative ones are
# huge, capped at that slot; ``take(mode="clip")`` would not do: it converts
# its indices to int64 first); others search their sorted keys. Tables are cached
# by the dict's items (a class-weighted call of 256 rows spent 9 us building
# one on the 2-core EPYC), except where a weight is 0 (0.0 and -0.0 are equal
# keys; the cached table would give the first one's sign to both).
_CW_TABLE_MAX = 1 << 16
_CW_TABLES = {}
_CW_TABLES_MAX = 64


def _cw_table(class_weight, dt):
    """``class_weight``'s dense table, or None where its keys do not fit one."""
    try:
        key = (tuple(class_weight.items()), dt.char)
        table = _CW_TABLES.get(key)
    except TypeError:  # an unhashable value (the checks below say what is wrong)
        key = table = None
    if table is not None:
        return table
    try:
        keys = [operator.index(k) for k in class_weight]
    except TypeError:
        raise TypeError("`class_weight` keys must be integer class labels") from None
    vals = _as_numeric(list(class_weight.values()), "class_weight values").astype(dt)
    if vals.ndim != 1:
        raise ValueError("`class_weight` values must be numbers")
    kmax = max(keys)
    if min(keys) < 0 or kmax >= _CW_TABLE_MAX:
        return None
    table = np.ones(kmax + 2, dt)
    table[keys] = vals
    if key is not None and not (vals == 0).any():
        if len(_CW_TABLES) >= _CW_TABLES_MAX:
            _CW_TABLES.clear()
        _CW_TABLES[key] = table
    return table


def class_weight_rows(class_weight, labels, dt):
    """Per-row weights from a class -> weight mapping (dict, list or array).

    ``labels`` is an integer array of one label per loss element (Keras' ``fit``
    takes ``argmax`` of one-hot targets and rounds). Dict: classes not listed
    weigh 1.0 (as in Keras). Sequence: indexed by class; a label outside it is a
    ValueError.
    """
    labels = np.asarray(labels).reshape(-1)
    if isinstance(class_weight, dict):
        if not class_weight:
            return np.ones(labels.shape, dt)
        table = _cw_table(class_weight, dt) if labels.dtype == np.int64 else None
        if table is not None:
            return table.take(np.minimum(labels.view(np.uint64), len(table) - 1))
        try:
            keys = np.array([operator.index(k) for k in class_weight], dtype=np.int64)
        except TypeError:
            raise TypeError("`class_weight` keys must be integer class labels") from None
        vals = _as_numeric(list(class_weight.values()), "class_weight values").astype(dt)
        if vals.ndim != 1:
            raise ValueError("`class_weight` values must be numbers")
        order = np.argsort(keys)
        keys, vals = keys[order], vals[order]
        idx = np.searchsorted(keys, labels)
        idx_c = np.minimum(idx, len(keys) - 1)
        hit = keys[idx_c] == labels
        return np.where(hit, vals[idx_c], dt.type(1.0)).astype(dt, copy=False)
    cw = _as_numeric(class_weight, "class_weight")
    if cw.ndim != 1:
        raise ValueError(f"`class_weight` must be a dict or a 1-D sequence; got shape {cw.shape}")
    cw = cw.astype(dt)
    bad = labels.view(np.uint64) >= cw.shape[0] if labels.dtype == np.int64 else (labels < 0) | (labels >= cw.shape[0])
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"`class_weight` has {cw.shape[0]} entries but label {int(labels[i])} "
            f"(flat index {i}) needs an entry"
        )
    return cw[labels]


# ---- boxes ---------------------------------------------------------------------

BOX_FORMATS = ("yxyx", "xyxy", "xywh", "cxcywh")


def box_format(value):
    """The box format code of ``value`` (``"yxyx"``, TF Addons' order, is 0)."""
    if isinstance(value, str) and value.lower() in BOX_FORMATS:
        return BOX_FORMATS.index(value.lower())
    raise ValueError(f"Invalid value for argument `box_format`: {value!r}. Expected one of {list(BOX_FORMATS)}.")


def boxes(y_true, y_pred, dt):
    """Two arrays of boxes (last dimension 4) for the box kernels.

    Returns ``(yt2, yp2, yp_full, bshape)``: ``yt2``/``yp2`` C-contiguous
    ``(rows, 4)`` arrays of dtype ``dt`` holding either one box per row of the
    broadcast shape ``bshape`` (the shapes less their last dimension,
    broadcast as TF does) or ONE box, broadcast by the kernel without a copy;
    ``yp_full`` is y_pred as the kernel sees it: y_pred itself, or, when
    shapes broadcast otherwise than one box against many, a copy broadcast to
    ``bshape + (4,)`` (its gradient is then summed back to y_pred's shape).
    """
    yp = as_float(y_pred, "y_pred", dt)
    yt = _as_numeric(y_true, "y_true")
    for a, name in ((yt, "y_true"), (yp, "y_pred")):
        if a.ndim == 0 or a.shape[-1] != 4:
            raise ValueError(
                f"`{name}` must hold boxes of 4 coordinates along its last dimension; got shape {a.shape}"
            )
    try:
        bshape = yp.shape[:-1] if yt.shape == yp.shape else tuple(np.broadcast_shapes(yt.shape[:-1], yp.shape[:-1]))
    except ValueError:
        raise ValueError(
            f"`y_true` of shape {yt.shape} and `y_pred` of shape {yp.shape} hold numbers of boxes "
            f"that do not match or broadcast (one box against many, or shapes that broadcast)"
        ) from None
    n = int(math.prod(bshape))

    def rows(a):
        if a.size == 4:  # one box: broadcast by the kernel
            return np.ascontiguousarray(a, dtype=dt).reshape(1, 4), a
        if a.shape[:-1] != bshape:
            a = np.broadcast_to(a, bshape + (4,))
        return np.ascontiguousarray(a, dtype=dt).reshape(n, 4), a

    yt2, _ = rows(yt)
    yp2, yp_full = rows(yp)
    return yt2, yp2, yp_full, bshape


def keras2_rank_fix(sample_weight, value_shape):
    """Keras 2's rank fix (TF Addons' losses run on it): a weight one rank below
    the loss gets a trailing axis, one a rank above with a trailing 1 loses it."""
    w = _as_numeric(sample_weight, "sample_weight")
    r = len(value_shape)
    if w.ndim == r + 1:
        if w.shape[-1] != 1:  # Keras 2 squeezes that axis (TF Addons fails on it)
            raise ValueError(
                f"`sample_weight` of shape {w.shape} has one axis more than the per-sample loss of shape "
                f"{tuple(value_shape)}, so (as in Keras 2, which TF Addons' losses run on) its last axis "
                f"must have size 1"
            )
        w = w[..., 0]
    elif w.ndim >= 1 and w.ndim == r - 1:
        w = w[..., None]
    return w


def sum_to_shape(g, shape):
    """Sum ``g`` (a broadcast shape) down to ``shape`` (numpy broadcasting's adjoint)."""
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)), dtype=np.float64)
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True, dtype=np.float64)
    return g


def on_device(x):
    """Whether ``x`` lives on a GPU (``__cuda_array_interface__``: CuPy, PyTorch
    CUDA tensors, Numba device arrays) or is a device array of Numba's CUDA
    simulator (which CI uses to run the device path). A PyTorch tensor is asked
    ``is_cuda``: ``hasattr`` would build its interface dict (a Python
    property, read 9 times per SCCE call on device inputs before, GPU_PROFILE.txt
    of benchmarks/results/h100-2026-12-05)."""
    if type(x) is np.ndarray:
        return False
    if type(x).__module__.partition(".")[0] == "torch":
        return bool(x.is_cuda)
    return hasattr(x, "__cuda_array_interface__") or type(x).__name__ == "FakeCUDAArray"
