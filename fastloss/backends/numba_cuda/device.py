"""The core path for inputs that already live on a GPU.

Anything with ``__cuda_array_interface__`` (CuPy arrays, PyTorch CUDA tensors,
Numba device arrays) is viewed without a copy. The kernel writes the
per-sample loss and the scaled gradient on the device; the gradient (and the
per-sample losses for ``reduction="none"``) are returned as the caller's own
array type, allocated by its library (``new_like``: a PyTorch tensor for
PyTorch inputs, a CuPy array for CuPy inputs, else a Numba device array). A
reduced loss comes back as a NumPy scalar: reading it (and the kernel's
bad-label count, which must raise before anything is returned) is the one
synchronization per call. The kernels run on the caller's stream
(``_streams.current_stream``).

Validation, weights and the reduction factor are the CPU path's own
(``fastloss._core.reduction_factor``, ``fastloss._validate``); only the array
handling differs. Device inputs must be C-contiguous and use the last axis as
the class axis; ``class_weight`` is taken on the host path only.
"""

import math

import numpy as np
from numba import cuda, float64

from ... import _registry
from ... import _validate as V
from . import boxes as BX
from . import crossentropy as K
from . import elementwise as EW
from . import gradhess as GH
from . import rows as RW
from ._launch import launch
from ._streams import _as_stream, _handle, _producer_stream, current_stream
from ._streams import forget, remember
from ._streams import reshape as _reshape

_MODULES = {K.__name__: K, EW.__name__: EW, RW.__name__: RW, BX.__name__: BX}


def _kind(spec, variant):
    """(module, kernel name) of the CUDA kernel registered for spec/variant."""
    path = spec.kernels.get("cuda", {}).get(variant)
    if path is None:
        have = sorted(f"{n} ({v})" for n, s in _registry.REGISTRY.items() for v in s.kernels.get("cuda", {}))
        raise ValueError(f"{spec.name} ({variant}) has no CUDA kernel yet; device inputs work for: {have}")
    mod, _, kind = path.partition(":")
    return _MODULES[mod], kind.removesuffix("_host")


def on_device(x):
    """Whether ``x`` lives on a GPU (``__cuda_array_interface__``), or is a
    device array of Numba's CUDA simulator (which CI uses to run this path)."""
    return V.on_device(x)


_VIEWS = {}  # (data, shape, strides, typestr) -> a Numba view of that memory
VIEWS_MAX = 64


def _view(x):
    """(Numba view of ``x``, the stream its producer named). The stream is taken
    out of the interface first: left in, numba would wrap it in a new Stream
    object on every call.

    A view is only a description (pointer, shape, strides, dtype), so the last
    ``VIEWS_MAX`` are kept and reused for the same description: numba-cuda
    makes a context lookup, a memory-pointer object and the array object for
    each, and a training loop passes the same buffers
    again and again (PyTorch's and CuPy's caching allocators hand back the same
    addresses). The views own nothing (``owner=None``): ``x`` is the caller's,
    alive for the call, as it was with a view made per call."""
    desc = x.__cuda_array_interface__
    h = desc.get("stream")
    if desc.get("mask") is not None:
        d = dict(desc)
        d.pop("stream", None)
        return cuda.from_cuda_array_interface(d, owner=x, sync=False), h
    strides = desc.get("strides")
    key = (desc["data"], tuple(desc["shape"]), tuple(strides) if strides is not None else None, desc["typestr"])
    v = _VIEWS.get(key)
    if v is None:
        d = dict(desc)
        d.pop("stream", None)
        v = cuda.from_cuda_array_interface(d, owner=None, sync=False)
        if len(_VIEWS) >= VIEWS_MAX:
            forget(_VIEWS.pop(next(iter(_VIEWS))))
        _VIEWS[key] = v
        remember(v)
    return v, h


def _device(x, name, stream=None):
    """A Numba view of device array ``x`` (no copy; a Numba device array is used
    as it is). When ``x``'s producer named a stream other than the call's, the
    call's stream waits for it on the device (an event; the host does not wait)."""
    if type(x).__name__ == "FakeCUDAArray":
        return x
    try:
        if type(x).__module__.startswith("numba") and cuda.is_cuda_array(x):
            arr = x
            h = _producer_stream(x)
        else:
            arr, h = _view(x)
    except Exception as exc:
        raise TypeError(f"`{name}` could not be viewed as a CUDA array: {exc}") from None
    if h and h != 1 and h != _handle(stream if stream is not None else 0):
        ev = cuda.event(timing=False)
        ev.record(_as_stream(h))
        ev.wait(stream if stream is not None else 0)
    return arr


_ONES = {}
_EMPTY = {}


def _empty(C, dt):
    """A (0, C) device array (the gradient argument without ``want_grad``), made once."""
    key = (C, dt.char)
    e = _EMPTY.get(key)
    if e is None:
        if len(_EMPTY) > 256:
            _EMPTY.clear()
        e = _EMPTY[key] = cuda.device_array((0, C), dt)
    return e


def _ones(dt):
    """A device array [1.0] per dtype, made once (the no-weights case)."""
    if dt.char not in _ONES:
        _ONES[dt.char] = cuda.to_device(np.ones(1, dt))
    return _ONES[dt.char]


REDUCE_TPB = 256  # threads per block of _wsum (a power of two <= 256); tests shrink it


@cuda.jit
def _wsum(loss, w, ws, tot):
    """tot[0] += sum_i loss[i] * w[i * ws] (float64; a block sum, then one atomic per block)."""
    sh = cuda.shared.array(256, float64)
    acc = 0.0
    for i in range(cuda.grid(1), loss.shape[0], cuda.gridsize(1)):
        acc += loss[i] * w[i * ws]
    acc = EW._block_sum(acc, sh)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(tot, 0, acc)


def _weighted_total(loss, d_w, ws, st, tot):
    """``tot[0] += sum(loss_i w_i)`` on the device (``tot`` zeroed by the caller;
    the kernels that write per-row losses only: this reads them on the device
    instead of copying them back)."""
    R = loss.shape[0]
    if R:
        launch(_wsum, max(1, min((R + REDUCE_TPB - 1) // REDUCE_TPB, 1024)), REDUCE_TPB, st, loss, d_w, ws, tot)
    return tot


def new_like(like, shape, dt, st):
    """A new device array for a result: ``(what the caller gets, a Numba view
    of it)``. For a PyTorch tensor or CuPy array ``like``, made by that library
    (its caching allocator: no cuMemAlloc/cuMemFree per call, and the caller
    gets its own type back); else a Numba device array."""
    mod = type(like).__module__.partition(".")[0]
    try:
        if mod == "torch":
            import torch

            t = torch.empty(shape, dtype=getattr(torch, np.dtype(dt).name), device=like.device)
            h = _handle(st)
            if h != int(torch.cuda.current_stream(like.device).cuda_stream):
                t.record_stream(torch.cuda.ExternalStream(h, device=like.device))  # written on our stream
            return t, _view(t)[0]
        if mod == "cupy":
            import cupy

            with like.device:
                a = cupy.empty(shape, dtype=dt)
            return a, _view(a)[0]
    except Exception:  # an unexpected library version: Numba's own allocation below
        pass
    d = cuda.device_array(shape, dt, stream=st)
    return d, d


@cuda.jit
def _scale(loss, w, ws, out):
    i = cuda.grid(1)
    if i < loss.shape[0]:
        out[i] = loss[i] * w[i * ws]


@cuda.jit
def _spread(loss, idx, wb, out):
    j = cuda.grid(1)
    if j < out.shape[0]:
        out[j] = loss[idx[j]] * wb[j]


def _inputs(spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class, st):
    """The checks and views every dense/sparse device call makes:
    ``(yp, dt, S, C, R, yp2, yt2, w_rows, ws, out_shape, w_kept, spread)``
    (``yp2``/``yt2`` the (R, C) / (R,) views; ``w_rows``/``ws``/``spread`` the
    host sample weights, as ``_validate.sample_weights`` gives them)."""
    yp = _device(y_pred, "y_pred", st)
    dt = np.dtype(yp.dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"device `y_pred` must be float32 or float64; got {dt}")
    if dtype is not None and np.dtype(dtype) != dt:
        raise ValueError(f"`dtype`={dtype!r} differs from the device y_pred's {dt}; cast it on the device first")
    if yp.ndim == 0:
        raise ValueError("`y_pred` must have at least one dimension; got a scalar")
    if V.check_axis(axis, yp.ndim) != yp.ndim - 1:
        raise ValueError("device inputs take the class axis last (axis=-1); move it on the device first")
    if not yp.is_c_contiguous():
        raise ValueError("device `y_pred` must be C-contiguous; make a contiguous copy on the device first")
    if class_weight is not None:
        raise ValueError("`class_weight` is not supported for device inputs; pass per-sample weights")
    S = tuple(yp.shape)[:-1]
    C = tuple(yp.shape)[-1]
    if C == 0:
        raise ValueError(f"`y_pred` has an empty class axis (shape {tuple(yp.shape)})")
    R = int(math.prod(S))
    yp2 = _reshape(yp, R, C)

    sparse = spec.layout == "sparse"
    on_dev = on_device(y_true)
    if sparse:
        yt = _device(y_true, "y_true", st) if on_dev else V.as_labels(y_true)
        if np.dtype(yt.dtype).kind not in "iu":
            if on_dev:
                raise TypeError(f"device labels must be an integer array; got {yt.dtype}")
            yt = V.labels_int64(yt, C, ignore_class)
        shape = tuple(yt.shape)
        if len(shape) == yp.ndim and shape[-1] == 1:
            shape = shape[:-1]
        if shape != S:
            raise ValueError(f"`y_true` must hold one label per row of y_pred: expected shape {S}, got {tuple(yt.shape)}")
        if not on_dev:
            yt = cuda.to_device(np.ascontiguousarray(yt, dtype=np.int64), stream=st)
        yt2 = _reshape(yt, R)
    else:
        if on_dev:
            yt = _device(y_true, "y_true", st)
        else:  # a host y_true may broadcast to y_pred's shape (one target row for a batch, a scalar)
            yt = V.as_float(y_true, "y_true", dt)
            if yt.shape != tuple(yp.shape):
                b = V.broadcast_shape(yt.shape, tuple(yp.shape), spec.broadcast, axis, spec.name, yt.shape,
                                      tuple(yp.shape))
                if b != tuple(yp.shape):
                    raise ValueError(f"device `y_pred` must have the broadcast shape {b} of y_true and y_pred; "
                                     f"got {tuple(yp.shape)} (broadcast it on the device first)")
                yt = np.broadcast_to(yt, b)
            yt = cuda.to_device(np.ascontiguousarray(yt), stream=st)
        if tuple(yt.shape) != tuple(yp.shape) or np.dtype(yt.dtype) != dt:
            raise ValueError(f"`y_true` must match y_pred's shape {tuple(yp.shape)} and dtype {dt} (a host y_true may broadcast to that shape); got {tuple(yt.shape)} {yt.dtype}")
        yt2 = _reshape(yt, R, C)

    if sample_weight is not None and on_device(sample_weight):
        sample_weight = _device(sample_weight, "sample_weight", st).copy_to_host(stream=st)
    out_shape, w_rows, ws, w_kept, spread = S, np.ones(1, dt), 0, None, None
    if sample_weight is not None:
        w_rows, ws, out_shape, w_kept, spread = V.sample_weights(sample_weight, S, dt, spec.weights == "keras2")
    return yp, dt, S, C, R, yp2, yt2, w_rows, ws, out_shape, w_kept, spread


def compute(spec, y_true, y_pred, *, variant, params, sample_weight, class_weight, reduction, want_grad, grad_out, axis, dtype, ignore_class, factor_fn):
    from ..._core import _prm

    mod, kind = _kind(spec, variant)
    st = current_stream(y_pred)
    if mod is BX:
        return _compute_boxes(kind, y_true, y_pred, params, sample_weight, class_weight, reduction, want_grad,
                              grad_out, dtype, factor_fn, st)
    yp, dt, S, C, R, yp2, yt2, w_rows, ws, out_shape, w_kept, spread = _inputs(
        spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class, st)
    sparse = spec.layout == "sparse"
    valid = None
    if sparse and ignore_class is not None and reduction not in ("none", "sum") and out_shape:
        # the reduction's factor counts the rows kept (it scales the gradient the
        # kernel writes): a copy of the labels, the one synchronization before
        # the kernel; "none" and "sum" do not need it
        valid = yt2.copy_to_host(stream=st) != ignore_class
    n_out = R if spread is None else spread[0].size
    factor, w_rows, w_kept = factor_fn(reduction, len(out_shape) == 0, w_rows, ws, w_kept, valid, R, n_out)

    prm = _prm(factor, C, params, ignore_class, dt)  # the CPU path's parameter vector
    d_w = _ones(dt) if (ws == 0 and sample_weight is None) else cuda.to_device(w_rows, stream=st)
    loss = K._scratch("loss", R, dt, st)
    if want_grad:
        if grad_out is not None:
            g = _device(grad_out, "grad_out", st)
            if tuple(g.shape) != tuple(yp.shape) or np.dtype(g.dtype) != dt or not g.is_c_contiguous():
                raise ValueError(f"`grad_out` must be a C-contiguous device array of shape {tuple(yp.shape)} and dtype {dt}")
            grad = grad_out
        else:
            grad, g = new_like(y_pred, tuple(yp.shape), dt, st)
        grad2 = _reshape(g, R, C)
    else:
        grad = None
        grad2 = _empty(C, dt)
    total = None
    if mod is EW:  # elementwise: the kernel also summed loss * w on the device
        tot = EW.run(kind, yt2, yp2, prm, d_w, ws, loss, grad2, want_grad, st)
        if reduction != "none" and out_shape:
            total = float(tot.copy_to_host(stream=st)[0])
    else:
        # bad-label count and the weighted total in one buffer: one copy back
        if mod is RW:  # row kernels: bad-label counts and the device-side total
            buf, info, tot = RW.run(kind, yt2, yp2, prm, d_w, ws, loss, grad2, want_grad, st)
        else:
            buf, info, tot = K.run(kind, yt2, yp2, prm, d_w, ws, loss, grad2, want_grad, st)
            if tot is None and reduction != "none" and out_shape:
                # the total on the device, into the same per-stream status buffer
                # (zeroed by K.run): 8 bytes come back, not R losses
                tot = _weighted_total(loss, d_w, ws, st, K.status(st)[2])
        n_bad, first, total = K.read_status(buf, st)
        if n_bad:
            raise ValueError(V.bad_labels_message(n_bad, C, int(yt2[first]), first, ignore_class))
        if tot is None:
            total = None
    return _reduce(reduction, loss, total, out_shape, R, d_w, ws, w_rows, spread, dt, factor, st, y_pred), grad


def grad_hess(spec, y_true, y_pred, *, variant, params, sample_weight, class_weight, axis, dtype, ignore_class):
    """``(grad, hess)`` of ``sum_i w_i loss_i`` for device inputs
    (``fastloss._core.grad_hess``), both the caller's array type, y_pred's
    shape. Elementwise losses return without waiting for the kernel; SCCE
    reads back its bad-label count (the one synchronization)."""
    from ..._core import _prm

    if variant not in spec.kernels.get("cuda", {}):
        raise ValueError(f"grad_hess of {spec.name} ({variant}) has no CUDA kernel")
    kind = spec.kernels["cuda"][variant].partition(":")[2]
    st = current_stream(y_pred)
    yp, dt, S, C, R, yp2, yt2, w_rows, ws, out_shape, w_kept, spread = _inputs(
        spec, y_true, y_pred, sample_weight, class_weight, axis, dtype, ignore_class, st)
    prm = _prm(1.0, C, params, ignore_class, dt)
    d_w = _ones(dt) if (ws == 0 and sample_weight is None) else cuda.to_device(np.ascontiguousarray(w_rows), stream=st)
    grad, g = new_like(y_pred, tuple(yp.shape), dt, st)
    hess, h = new_like(y_pred, tuple(yp.shape), dt, st)
    buf = GH.run(kind, yt2, yp2, prm, d_w, ws, _reshape(g, R, C), _reshape(h, R, C), st)
    if buf is not None:
        n_bad, first, _ = K.read_status(buf, st)
        if n_bad:
            raise ValueError(V.bad_labels_message(n_bad, C, int(yt2[first]), first, ignore_class))
    return grad, hess


def _reduce(reduction, loss, total, out_shape, R, d_w, ws, w_rows, spread, dt, factor, st, like):
    """The returned loss: weighted per-sample losses on the device ("none"), or
    the reduced value from ``total``, the kernel's device total already read
    back (None: the per-sample losses are copied back and summed here).
    ``out_shape``: the weighted losses' shape (0-d: returned as it is, as Keras
    does); ``spread``: see ``_validate.sample_weights``."""
    if reduction == "none" or not out_shape:
        if spread is not None:  # weighted loss j = loss[idx[j]] * wb[j], on the device
            n = spread[0].size
            res, out = new_like(like, (n,), dt, st)
            if n:
                d_idx = cuda.to_device(spread[0], stream=st)
                d_wb = cuda.to_device(np.ascontiguousarray(spread[1], dtype=dt), stream=st)
                launch(_spread, (n + 255) // 256, 256, st, loss, d_idx, d_wb, out)
            return res.reshape(out_shape)
        if not out_shape:
            out = cuda.device_array(R, dt, stream=st)
            launch(_scale, (R + 255) // 256 or 1, 256, st, loss, d_w, ws, out)
            return dt.type(out.copy_to_host(stream=st)[0])
        res, out = new_like(like, (R,), dt, st)
        launch(_scale, (R + 255) // 256 or 1, 256, st, loss, d_w, ws, out)
        return res.reshape(out_shape)
    if total is not None:
        return dt.type(total * factor)
    lh = loss.copy_to_host(stream=st).astype(np.float64)
    total = float(np.dot(lh, w_rows.astype(np.float64))) if ws else float(lh.sum()) * float(w_rows[0])
    return dt.type(total * factor)


def _compute_boxes(kind, y_true, y_pred, params, sample_weight, class_weight, reduction, want_grad, grad_out,
                   dtype, factor_fn, st):
    """Box losses on device inputs: y_true and y_pred of the same shape
    ``(..., 4)``, or either one a single box (broadcast in place). Other
    broadcasts are taken on the host path only. The per-box loss' shape drops
    size-1 axes as TF Addons' ``tf.squeeze`` (and the host path) do."""
    from ..._core import _prm

    if class_weight is not None:
        raise ValueError("`class_weight` does not apply to box losses (there are no classes); use sample_weight")
    yp = _device(y_pred, "y_pred", st)
    dt = np.dtype(yp.dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"device `y_pred` must be float32 or float64; got {dt}")
    if dtype is not None and np.dtype(dtype) != dt:
        raise ValueError(f"`dtype`={dtype!r} differs from the device y_pred's {dt}; cast it on the device first")
    if on_device(y_true):
        yt = _device(y_true, "y_true", st)
        if np.dtype(yt.dtype) != dt:
            raise ValueError(f"device `y_true` must have y_pred's dtype {dt}; got {yt.dtype}")
    else:
        yt = cuda.to_device(np.ascontiguousarray(V.as_float(y_true, "y_true", dt)), stream=st)
    pshape, tshape = tuple(yp.shape), tuple(yt.shape)
    for shape, name in ((tshape, "y_true"), (pshape, "y_pred")):
        if not shape or shape[-1] != 4:
            raise ValueError(f"`{name}` must hold boxes of 4 coordinates along its last dimension; got shape {shape}")
    for a, name in ((yt, "y_true"), (yp, "y_pred")):
        if not a.is_c_contiguous():
            raise ValueError(f"device `{name}` must be C-contiguous; make a contiguous copy on the device first")
    one_t, one_p = math.prod(tshape) == 4, math.prod(pshape) == 4
    if tshape[:-1] == pshape[:-1] or one_t:
        bshape = pshape[:-1]
    elif one_p:
        bshape = tshape[:-1]
    else:
        raise ValueError(
            f"device box inputs must have the same shape or one side a single box; got y_true {tshape} and "
            f"y_pred {pshape} (other broadcasts: pass NumPy arrays)"
        )
    R = int(math.prod(bshape))
    S = tuple(d for d in bshape if d != 1)
    yt2 = _reshape(yt, 1 if one_t else R, 4)
    yp2 = _reshape(yp, 1 if one_p else R, 4)
    if sample_weight is not None and on_device(sample_weight):
        sample_weight = _device(sample_weight, "sample_weight", st).copy_to_host(stream=st)
    out_shape, w_rows, ws, w_kept, spread = S, np.ones(1, dt), 0, None, None
    if sample_weight is not None:
        w_rows, ws, out_shape, w_kept, spread = V.sample_weights(sample_weight, S, dt, keras2=True)
    n_out = R if spread is None else spread[0].size
    factor, w_rows, w_kept = factor_fn(reduction, len(out_shape) == 0, w_rows, ws, w_kept, None, R, n_out)
    prm = _prm(factor, 4, params, None, dt)
    d_w = _ones(dt) if (ws == 0 and sample_weight is None) else cuda.to_device(w_rows, stream=st)
    loss = K._scratch("loss", R, dt, st)
    grad = None
    grad2 = _empty(4, dt)
    if want_grad:
        if grad_out is not None:
            g = _device(grad_out, "grad_out", st)
            if tuple(g.shape) != pshape or np.dtype(g.dtype) != dt or not g.is_c_contiguous():
                raise ValueError(f"`grad_out` must be a C-contiguous device array of shape {pshape} and dtype {dt}")
            grad = grad_out
        else:
            grad, g = new_like(y_pred, pshape, dt, st)
        grad2 = _reshape(g, yp2.shape[0], 4)
    tot = BX.run(kind, yt2, yp2, prm, d_w, ws, loss, grad2, want_grad, st)
    total = float(tot.copy_to_host(stream=st)[0]) if (reduction != "none" and out_shape) else None
    return _reduce(reduction, loss, total, out_shape, R, d_w, ws, w_rows, spread, dt, factor, st, y_pred), grad
