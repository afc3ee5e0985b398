"""The one path every loss takes: validate -> registry -> backend kernel -> reduce.

Reduction semantics are Keras 3's (``keras/src/losses/loss.py``):

* per-sample losses ``v`` (shape ``S``) are multiplied by the sample weights;
* ``"sum"``: ``sum(v w)``; ``"sum_over_batch_size"``/``"mean"``: ``sum(v w) / n``
  with ``n`` the number of loss elements (the valid ones when ``ignore_class``
  masks some); ``"mean_with_sample_weight"``: ``sum(v w) / sum(w)``;
  ``"none"``: ``v w``. A zero divisor gives 0 (``divide_no_nan``).
* A per-sample loss that is a scalar (1-D input) is returned unreduced.
* An empty batch gives 0 for the reducing modes (Keras returns the empty
  array), an empty array for ``"none"``.

The gradient is of the returned loss (summed when it is not a scalar), so the
kernel scales each gradient row by ``w_i * factor`` while writing it.
"""

import math
import os
import time

import numpy as np

from . import _backend, _parallel, _registry
from . import _validate as V
from ._config import EPSILON, PARALLEL_MIN_ELEMENTS

_nthreads = None
_NO_PARAMS = {}
# The unit weight, one per dtype: the "no sample_weight" case. Writable, like
# the weights built from a caller's (no kernel writes its weights): Numba types
# a read-only array apart, so a read-only one here made every kernel compile a
# second time for its first call with weights.
_ONE = {c: np.ones(1, c) for c in "fd"}


def _threads():
    """Threads a parallel kernel splits its rows over: Numba's thread count
    (NUMBA_NUM_THREADS), else the C backend's OpenMP count (OMP_NUM_THREADS),
    else the CPUs this process may run on."""
    global _nthreads
    if _nthreads is None:
        try:
            import numba

            _nthreads = numba.get_num_threads()
        except Exception:  # no (working) Numba: the C backend alone
            try:
                from .backends import cffi_c

                _nthreads = cffi_c.max_threads()
            except Exception:
                _nthreads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return _nthreads


def _chunks(rows, cols):
    if rows * cols < PARALLEL_MIN_ELEMENTS or rows < 2:
        return 1
    return min(rows, _threads())


def _labels_for_class_weight(layout, yt2):
    """Keras fit's mapping of targets to the class whose weight applies."""
    if layout == "sparse":
        lab = yt2
    elif yt2.shape[-1] != 1:
        lab = np.argmax(yt2, axis=-1)
    else:
        lab = yt2[..., 0]
    if lab.dtype.kind == "f":  # rounded; NaN and +-inf are no class (-1)
        lab = np.rint(lab)  # np.round's half-to-even, as a ufunc
        finite = np.isfinite(lab)
        if not finite.all():  # (np.nan_to_num did this in 13 us of a 17 us call on 256 labels)
            lab[~finite] = -1.0
    return lab.astype(np.int64, copy=False)


def reduction_factor(reduction, scalar_loss, w_rows, ws, w_kept, valid, R, n_out=None):
    """The factor that turns ``sum(loss * w)`` into the reduced loss (Keras'
    ``reduce_values`` with ``divide_no_nan``); also the gradient's row scale.

    ``w_kept``: the weights as Keras sums them for ``mean_with_sample_weight``
    (None when there are no weights); ``valid``: the ignore_class mask or None;
    ``n_out``: the number of weighted losses Keras averages over, ``R`` unless
    the weights spread each loss over several (``_validate.sample_weights``).
    """
    if scalar_loss or reduction in ("none", "sum"):
        return 1.0
    if reduction == "mean_with_sample_weight" and w_kept is not None:
        if valid is not None:
            denom = float(np.sum((w_rows if ws else np.full(R, w_rows[0])) * valid, dtype=np.float64))
        else:
            denom = float(w_kept.sum(dtype=np.float64))  # (np.sum's wrapper: 2 us more a call)
        return 0.0 if denom == 0.0 else 1.0 / denom
    # sum_over_batch_size / mean (/ mean_with_sample_weight without weights).
    # Keras scales the ignore_class mask by (mask size) / (valid count), then
    # divides by the number of weighted losses.
    n_out = R if n_out is None else n_out
    n = int(np.count_nonzero(valid)) if valid is not None else R
    if n == 0 or n_out == 0:
        return 0.0
    return 1.0 / n if n_out == R else R / (float(n) * n_out)


_MAX_FACTOR = 2.0**64


def weights_and_factor(reduction, scalar_loss, w_rows, ws, w_kept, valid, R, n_out=None):
    """``(factor, w_rows, w_kept)``: ``reduction_factor``, with the weights
    rescaled where their sum is so small (subnormal) that ``1 / sum`` would
    overflow in the kernels' ``loss * w * factor``: the one reduction with such
    a factor, mean_with_sample_weight, is the same for weights all scaled by
    one power of two (hypothesis found w = 2.2e-313 giving NaN / inf)."""
    factor = reduction_factor(reduction, scalar_loss, w_rows, ws, w_kept, valid, R, n_out)
    if factor > _MAX_FACTOR:
        w_rows, w_kept = _rescaled_weights(w_rows, w_kept)
        factor = reduction_factor(reduction, scalar_loss, w_rows, ws, w_kept, valid, R, n_out)
    return factor, w_rows, w_kept


def _rescaled_weights(w_rows, w_kept):
    """``w_rows`` and ``w_kept`` times one power of two that brings their
    largest magnitude to [0.5, 1) (new arrays: the caller's stay untouched)."""
    m = float(np.max(np.abs(w_rows)))
    if not (m > 0.0) or not np.isfinite(m):
        return w_rows, w_kept
    e = -math.frexp(m)[1]
    w2 = np.ldexp(w_rows, e).astype(w_rows.dtype, copy=False)
    if w_kept is None:
        return w2, None
    return w2, (w2 if w_kept is w_rows else np.ldexp(w_kept, e).astype(w_kept.dtype, copy=False))


def _prepare(spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class):
    """Validation and coercion shared by ``compute`` and ``grad_hess``.

    Returns ``(dt, yp, yp2, yt2, ax, moved, grad_shape, bcast, S, R, K, sparse,
    masked, valid, w_rows, ws, out_shape, w_kept, spread)``: the compute dtype; y_pred
    with the class axis moved last; the C-contiguous kernel inputs ``(R, K)``
    (y_true as ``(R,)`` int64 labels for sparse losses); the class axis and
    whether it was moved; y_pred's shape; None, or the shape the gradient is
    summed to when y_pred broadcasts against y_true (y_true broadcasting
    against y_pred is only a copy, as Keras' ops broadcast it); the per-sample
    shape ``S`` (``R`` = its size); the
    ignore_class mask; the per-row weights ``w_rows`` with stride ``ws`` (0: one
    weight for every row); the weighted loss' shape and the weights as Keras
    sums them for ``"mean_with_sample_weight"``; None, or ``(idx, wb)`` where the
    weights spread each loss over several weighted ones (``_validate.sample_weights``).
    """
    dt = V.compute_dtype(y_pred, dtype)
    if spec.layout == "boxes":
        return _prepare_boxes(y_true, y_pred, sample_weight, class_weight, dt)
    yp = V.as_float(y_pred, "y_pred", dt)
    if yp.ndim == 0:
        raise ValueError("`y_pred` must have at least one dimension; got a scalar")
    grad_shape = yp.shape  # the gradient's, also where Keras' rank fix below reshapes y_pred
    bcast = None  # y_pred's shape (rank-fixed) when it broadcasts against y_true: the gradient is summed to it
    sparse = spec.layout == "sparse"
    if sparse:
        yt = V.as_labels(y_true)
        ax = V.check_axis(axis, yp.ndim)
        if yt.ndim == yp.ndim and yt.shape[ax] == 1:
            yt = np.squeeze(yt, axis=ax)
        want_shape = yp.shape[:ax] + yp.shape[ax + 1 :]
        if yt.shape != want_shape:
            raise ValueError(
                f"`y_true` must hold one label per row of y_pred: expected shape {want_shape} "
                f"(or with a trailing 1), got {yt.shape} for y_pred of shape {yp.shape}"
            )
    else:
        yt = V.as_real(y_true, "y_true")
        yt, yp = V.squeeze_or_expand(yt, yp)
        if yt.shape != yp.shape:  # as Keras' ops broadcast them (the registry's LossSpec.broadcast)
            b = V.broadcast_shape(yt.shape, yp.shape, spec.broadcast, axis, spec.name, np.shape(y_true), grad_shape)
            if yt.shape != b:
                yt = np.broadcast_to(yt, b)
            if yp.shape != b:
                bcast = yp.shape
                yp = np.broadcast_to(yp, b)
        ax = V.check_axis(axis, yp.ndim)
    moved = ax != yp.ndim - 1
    if moved:
        yp = np.moveaxis(yp, ax, -1)
        if not sparse:
            yt = np.moveaxis(yt, ax, -1)
    K = yp.shape[-1]
    if K == 0:
        raise ValueError(f"`y_pred` has an empty class/last axis (shape {yp.shape}); nothing to average over")
    S = yp.shape[:-1]
    R = 1
    for d in S:
        R *= d
    yp2 = np.ascontiguousarray(yp).reshape(R, K)
    if sparse:
        yt2 = V.labels_int64(yt, K, ignore_class).reshape(R)
    else:  # Keras casts y_true to y_pred's dtype; one kernel signature per dtype
        yt2 = np.ascontiguousarray(yt, dtype=dt).reshape(R, K)

    masked = sparse and ignore_class is not None
    valid = (yt2 != ignore_class) if masked else None

    # ---- weights -----------------------------------------------------------
    out_shape = S
    w_rows = None
    w_kept = None
    spread = None
    if sample_weight is not None:
        w_rows, ws, out_shape, w_kept, spread = V.sample_weights(sample_weight, S, dt, spec.weights == "keras2")
    if class_weight is not None:
        lab = _labels_for_class_weight(spec.layout, yt2)
        if masked:
            lab = np.where(valid, lab, 0)
        cw = V.class_weight_rows(class_weight, lab, dt)
        if masked:
            cw[~valid] = 1.0
        if w_rows is None:
            w_rows, ws = cw, 1
            w_kept = cw
        else:
            w_rows = w_rows * cw if ws else w_rows[0] * cw
            ws = 1
            w_kept = w_rows
            if spread is not None:  # each weighted loss takes its loss element's class weight
                spread = (spread[0], spread[1] * cw[spread[0]])
    if w_rows is None:
        w_rows, ws = _ONE[dt.char], 0
    return (dt, yp, yp2, yt2, ax, moved, grad_shape, bcast, S, R, K, sparse, masked, valid,
            w_rows, ws, out_shape, w_kept, spread)


def _prepare_boxes(y_true, y_pred, sample_weight, class_weight, dt):
    """``_prepare`` for the ``"boxes"`` layout: one loss per box (last dimension 4).

    y_true and y_pred broadcast against each other as in TF (one box against
    many is read in place: the kernel gets a one-row array). The per-box loss'
    shape is the broadcast shape with every size-1 axis dropped: TF Addons'
    ``tf.squeeze``. ``yp`` is y_pred as the kernel sees it (see
    ``_validate.boxes``); sample weights follow Keras 2's rank fix.
    """
    if class_weight is not None:
        raise ValueError("`class_weight` does not apply to box losses (there are no classes); use sample_weight")
    yt2, yp2, yp, bshape = V.boxes(y_true, y_pred, dt)
    grad_shape = np.shape(y_pred)
    S = tuple(d for d in bshape if d != 1)
    R = int(math.prod(bshape))
    out_shape = S
    w_kept = None
    spread = None
    if sample_weight is not None:
        w_rows, ws, out_shape, w_kept, spread = V.sample_weights(sample_weight, S, dt, keras2=True)
    else:
        w_rows, ws = _ONE[dt.char], 0
    ax = yp.ndim - 1
    bcast = grad_shape if yp.shape != grad_shape else None  # broadcast to a copy: its gradient is summed back
    return (dt, yp, yp2, yt2, ax, False, grad_shape, bcast, S, R, 4, False, False, None,
            w_rows, ws, out_shape, w_kept, spread)


def compute(
    name,
    y_true,
    y_pred,
    *,
    variant="probs",
    params=None,
    sample_weight=None,
    class_weight=None,
    reduction="none",
    want_grad=False,
    grad_out=None,
    axis=-1,
    dtype=None,
    ignore_class=None,
):
    """Run loss ``name``. Returns ``(loss, grad)`` (``grad`` is None unless asked)."""
    spec = _registry.get(name)
    if V.on_device(y_pred):
        # lives on a GPU (or in Numba's CUDA simulator): the device path
        from .backends.numba_cuda import device

        return device.compute(
            spec, y_true, y_pred, variant=variant, params=params, sample_weight=sample_weight,
            class_weight=class_weight, reduction=reduction, want_grad=want_grad, grad_out=grad_out,
            axis=axis, dtype=dtype, ignore_class=ignore_class, factor_fn=weights_and_factor,
        )
    (dt, yp, yp2, yt2, ax, moved, grad_shape, bcast, S, R, K, sparse, masked, valid,
     w_rows, ws, out_shape, w_kept, spread) = _prepare(
        spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class
    )

    # ---- reduction factor ----------------------------------------------------
    # Keras reduces the weighted losses (out_shape: the weights may broadcast
    # the per-sample losses to more elements); a 0-d one is returned as it is
    scalar_loss = len(out_shape) == 0
    n_out = R if spread is None else spread[0].size
    factor, w_rows, w_kept = weights_and_factor(reduction, scalar_loss, w_rows, ws, w_kept, valid, R, n_out)

    # ---- kernel --------------------------------------------------------------
    wanted = _chunks(R, K)
    pkey = _guard_key(spec, variant, dt, want_grad, params, R * K) if wanted > 1 else None
    nch = _parallel.chunks(pkey, wanted)
    # Box losses may broadcast y_pred: one box (the kernel reads one row and
    # sums its gradient, one row per chunk) or a copy to R rows (``expand``;
    # the gradient is summed back to y_pred's shape here).
    summed = yp2.shape[0] != R
    expand = bcast is not None
    if want_grad:
        if grad_out is not None:
            V.check_grad_out(grad_out, grad_shape, dt, (y_true, y_pred, sample_weight))
        if summed:
            grad2 = np.zeros((nch, K), dt)
        elif grad_out is not None and not moved and not expand:
            grad2 = grad_out.reshape(R, K)
        else:
            grad2 = np.empty((R, K), dt)
    else:
        grad2 = np.empty((0, K), dt)
    loss = np.empty(R, dt)
    total = 0.0
    if R:
        prm = _prm(factor, K, params, ignore_class, dt, moved)
        fn = _backend.pick_kernel(spec, variant, R * K)
        t0 = time.perf_counter()
        info = fn(yt2, yp2, prm, w_rows, ws, loss, grad2, want_grad, nch)
        _parallel.record(pkey, wanted, nch, R * K, time.perf_counter() - t0)
        if type(info) is np.ndarray:  # (nch, 3) from C or Numba's prange: Python floats are cheaper below
            info = info.tolist()
        if len(info) == 1:
            nbad, first, total = info[0]
        else:
            nbad = sum(r[0] for r in info)
            first = min((r[1] for r in info if r[0] > 0), default=-1)
            total = sum(r[2] for r in info)
        if sparse and nbad:
            _raise_bad_labels(nbad, first, S, yt2, K, ignore_class)

    # ---- reduce ----------------------------------------------------------------
    if reduction == "none" or scalar_loss:
        if spread is not None:
            out = (loss[spread[0]] * spread[1]).reshape(out_shape)
        elif ws:
            out = (loss * w_rows).reshape(out_shape)
        elif sample_weight is not None:
            out = (loss * w_rows[0]).reshape(out_shape)
        else:
            out = loss.reshape(out_shape)
        value = out if out.ndim else dt.type(out[()])
    else:  # the kernel summed loss * w in float64 while writing the loss
        value = dt.type(total * factor)

    grad = None
    if want_grad and (summed or expand or moved):
        if summed:
            g = grad2.sum(axis=0, dtype=np.float64)
        else:
            g = grad2.reshape(yp.shape)
            if moved:
                g = np.moveaxis(g, -1, ax)
            if expand:
                g = V.sum_to_shape(g, bcast)
        g = g.reshape(grad_shape)
        if grad_out is not None:
            grad_out[...] = g
            grad = grad_out
        else:
            grad = np.ascontiguousarray(g, dtype=dt)
    elif want_grad:
        grad = grad_out if grad_out is not None else grad2.reshape(grad_shape)
    return value, grad


def _guard_key(spec, variant, dt, mode, params, n_elements):
    """The parallel guard's kernel key (its serial rate, _parallel.py): one per
    kernel, backend and loss parameters. The parameters can change a kernel's
    speed severalfold (categorical focal: gamma 1.5 vs 2, label smoothing
    turning off the one-hot rows' shortcut; C and Numba differ too), and a
    serial rate measured on the cheaper setting made every parallel call of
    the dearer one look stalled (2x slower, serial, for good)."""
    try:
        pk = tuple(sorted(params.items())) if params else ()
        hash(pk)
    except TypeError:  # an unhashable parameter (custom losses): the kernel alone
        pk = ()
    return (spec.name, variant, dt.char, mode, _backend.choose(spec, variant, n_elements), pk)


# _prm's vectors without the factor, by (params' items, K, ignore_class, dtype,
# moved): building one from the dict costs ~2 us on the 2-core EPYC, an eighth
# of a small loss call; a copy of the cached one 0.4 us. Cleared when full.
_PRM_CACHE = {}
_PRM_CACHE_MAX = 512


def _prm(factor, K, params, ignore_class, dt, moved=False):
    """The kernels' parameter vector (layout: numba_cpu/_common.py, F_SCALE and
    P_*): the fixed slots, then categorical focal's alpha, one number or one per
    class (a tuple); ``moved``: the class axis is not y_pred's last. A new
    array each call (the cached one is never handed out)."""
    try:
        key = (tuple(params.items()) if params else (), K, ignore_class, dt.char, moved)
        base = _PRM_CACHE.get(key)
    except TypeError:  # an unhashable parameter (custom losses)
        key = base = None
    if base is None:
        base = _prm_build(K, params, ignore_class, dt, moved)
        if key is not None:
            if len(_PRM_CACHE) >= _PRM_CACHE_MAX:
                _PRM_CACHE.clear()
            _PRM_CACHE[key] = base
    prm = base.copy()
    prm[0] = factor
    return prm


def _prm_build(K, params, ignore_class, dt, moved):
    """``_prm``'s vector with a factor of 0."""
    p = params or _NO_PARAMS
    eps = float(p.get("eps", EPSILON))
    ls = float(p.get("label_smoothing", 0.0))
    ls_b = (ls / K if p.get("ls_per_class") else 0.5 * ls) if ls else 0.0
    alpha = p.get("alpha", 0.0)
    if isinstance(alpha, tuple) and len(alpha) == 1:
        alpha = alpha[0]
    if isinstance(alpha, tuple):
        V.class_alpha(len(alpha), K, moved)
        avec, astep, alpha = alpha, 1.0, 0.0
    else:
        avec, astep = (alpha,), 0.0
    return np.array(
        (
            0.0,
            eps,
            1.0 - eps,
            1.0 - ls,
            ls_b,
            alpha,
            p.get("gamma", 0.0),
            p.get("flag", 0.0),
            0.0 if ignore_class is None else ignore_class,
            0.0 if ignore_class is None else 1.0,
            astep,
        )
        + avec,
        dt,
    )


def _raise_bad_labels(nbad, first, S, yt2, K, ignore_class):
    """The kernel counted ``nbad`` invalid labels, the first at flat row ``first``."""
    nbad = int(nbad)
    first = int(first)
    idx = tuple(int(i) for i in np.unravel_index(first, S)) if len(S) > 1 else first
    raise ValueError(V.bad_labels_message(nbad, K, yt2[first].item(), idx, ignore_class))


def _gh_losses():
    """``"name (variants)"`` for every registry entry with a grad_hess kernel."""
    out = []
    for n in sorted(_registry.REGISTRY):
        vs = sorted({v for ks in _registry.REGISTRY[n].kernels.values() for v in ks if v in ("gh", "gh_logits")})
        if vs == ["gh", "gh_logits"]:
            out.append(n)
        elif vs == ["gh_logits"]:
            out.append(f"{n} (from_logits=True)")
        elif vs:
            has_logits = any("logits" in ks for ks in _registry.REGISTRY[n].kernels.values())
            out.append(f"{n} (from_logits=False)" if has_logits else n)
    return out


def grad_hess(
    name,
    y_true,
    y_pred,
    *,
    variant="gh",
    params=None,
    sample_weight=None,
    class_weight=None,
    axis=-1,
    dtype=None,
    ignore_class=None,
):
    """Gradient and Hessian diagonal of ``sum_i w_i loss_i`` w.r.t. ``y_pred``.

    ``loss_i`` is the per-sample loss (the class axis reduced by the loss' own
    mean or sum); ``w_i`` the sample weight times the class weight. No
    reduction: gradient boosting wants per-sample derivatives. ``variant`` is
    the registry's ``"gh"`` (probabilities / plain predictions) or
    ``"gh_logits"``. Returns ``(grad, hess)``, both of y_pred's shape and float
    dtype, written by one kernel pass
    ``kernel(yt, yp, prm, w, ws, grad, hess, nch)`` (``prm`` as for the loss
    kernels, with ``prm[F_SCALE] = 1``).
    """
    spec = _registry.get(name)
    if not any(variant in ks for ks in spec.kernels.values()):
        has_logits = any("logits" in ks for ks in spec.kernels.values())
        which = " (from_logits=True)" if variant == "gh_logits" else " (from_logits=False)" if has_logits else ""
        raise ValueError(
            f"grad_hess is available for {', '.join(_gh_losses()) or 'no loss'}; "
            f"not for {name}{which}"
        )
    if V.on_device(y_pred):
        # lives on a GPU (or in Numba's CUDA simulator): the device path
        from .backends.numba_cuda import device

        return device.grad_hess(
            spec, y_true, y_pred, variant=variant, params=params, sample_weight=sample_weight,
            class_weight=class_weight, axis=axis, dtype=dtype, ignore_class=ignore_class,
        )
    (dt, yp, yp2, yt2, ax, moved, grad_shape, bcast, S, R, K, sparse, masked, valid,
     w_rows, ws, out_shape, w_kept, spread) = _prepare(
        spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class
    )
    if bcast is not None:
        raise ValueError(
            f"grad_hess needs y_pred to have the full shape: y_pred of shape {np.shape(y_pred)} broadcasts "
            f"against y_true of shape {np.shape(y_true)}, and the Hessian of a broadcast prediction is not "
            f"a per-element diagonal; broadcast y_pred first (np.broadcast_to(y_pred, shape).copy())"
        )
    grad2 = np.empty((R, K), dt)
    hess2 = np.empty((R, K), dt)
    if R:
        prm = _prm(1.0, K, params, ignore_class, dt, moved)
        fn = _backend.pick_kernel(spec, variant, R * K)
        wanted = _chunks(R, K)
        pkey = _guard_key(spec, variant, dt, "gh", params, R * K) if wanted > 1 else None
        nch = _parallel.chunks(pkey, wanted)
        t0 = time.perf_counter()
        info = fn(yt2, yp2, prm, w_rows, ws, grad2, hess2, nch)
        _parallel.record(pkey, wanted, nch, R * K, time.perf_counter() - t0)
        if sparse and info is not None:  # (bad, first, ...) per chunk, as for the loss kernels
            nbad = sum(r[0] for r in info)
            if nbad:
                first = min(r[1] for r in info if r[0] > 0)
                _raise_bad_labels(nbad, first, S, yt2, K, ignore_class)
    if moved:
        shape = yp.shape
        return (
            np.ascontiguousarray(np.moveaxis(grad2.reshape(shape), -1, ax)).reshape(grad_shape),
            np.ascontiguousarray(np.moveaxis(hess2.reshape(shape), -1, ax)).reshape(grad_shape),
        )
    return grad2.reshape(grad_shape), hess2.reshape(grad_shape)
