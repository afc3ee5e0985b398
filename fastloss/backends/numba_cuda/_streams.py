"""The stream a CUDA call runs on (``fastloss.cuda_stream``, else the one
y_pred's producer names, else the default stream) and per-stream scratch buffers."""

import numpy as np
from numba import cuda

# The kernels of a call run on one stream: the one set by ``cuda_stream``, else
# the stream y_pred's producer names in its ``__cuda_array_interface__`` (CuPy
# and PyTorch put their current stream there), else the default stream. An
# input whose producer named another stream is waited for (numba's sync); the
# call's own stream needs no wait: work on it runs in order.
# (``fastloss.cuda_stream`` sets it: fastloss/_backend.py)
_EXTERNAL = {}


def _as_stream(s):
    """A Numba stream (or 0, the default stream) for ``s``: a Numba stream, a
    CuPy stream (``.ptr``), a PyTorch stream (``.cuda_stream``) or a raw
    ``cudaStream_t`` handle (int)."""
    if s is None:
        return 0
    if isinstance(s, bool):
        raise TypeError(f"`stream` must be a CUDA stream or a stream handle (int); got {s!r}")
    if isinstance(s, int):
        handle = s
    elif hasattr(s, "cuda_stream"):  # torch.cuda.Stream
        handle = int(s.cuda_stream)
    elif hasattr(s, "ptr"):  # cupy.cuda.Stream
        handle = int(s.ptr)
    elif hasattr(s, "synchronize") and type(s).__module__.startswith("numba"):
        return s
    else:
        raise TypeError(
            "`stream` must be a Numba, CuPy or PyTorch CUDA stream, or a cudaStream_t handle (int); "
            f"got {type(s).__name__}"
        )
    if handle < 0:
        raise ValueError(f"`stream` handle must be >= 0; got {handle}")
    if handle in (0, 1):  # the default stream (1: CU_STREAM_LEGACY, as PyTorch/CuPy name it)
        return 0
    st = _EXTERNAL.get(handle)
    if st is None:
        st = _EXTERNAL[handle] = cuda.external_stream(handle)
    return st


def _producer_stream(x):
    """The stream handle in ``x``'s __cuda_array_interface__ (None: none named)."""
    try:
        return x.__cuda_array_interface__.get("stream")
    except Exception:
        return None


def current_stream(y_pred=None):
    """The stream a call runs on (see above)."""
    from ..._backend import _stream_ctx

    st = _stream_ctx.get()
    if st is not None:
        return _as_stream(st)
    h = _producer_stream(y_pred) if y_pred is not None else None
    return _as_stream(h) if h else 0


def _handle(stream):
    """The stream's handle (an int) as a key; the simulator's streams have none."""
    if isinstance(stream, int):
        return stream
    try:
        return int(stream)
    except Exception:
        return id(stream)


def sync(stream):
    """Wait for ``stream`` (copies to pageable host memory on the default
    stream already waited)."""
    if not isinstance(stream, int):
        stream.synchronize()


def stage(yt, yp, w, loss, grad, want_grad):
    """A host-entry kernel's NumPy arguments on the device, on the call's stream:
    ``(stream, d_yt, d_yp, d_w, d_loss, d_grad)`` (``d_grad`` empty without
    ``want_grad``)."""
    st = current_stream()
    return (st, cuda.to_device(yt, stream=st), cuda.to_device(yp, stream=st), cuda.to_device(w, stream=st),
            cuda.device_array(loss.shape, loss.dtype, stream=st),
            cuda.device_array(grad.shape if want_grad else (0, yp.shape[1]), yp.dtype, stream=st))


_SCRATCH = {}
_SCRATCH_VIEW = {}


def scratch(name, n, dtype, stream=0):
    """A device work buffer reused across calls on the same stream (never handed
    to the caller): numba-cuda allocates with cuMemAlloc and frees with
    cuMemFree, which cost far more than a small kernel. One per stream, so that
    calls queued on two streams never share one. The ``n``-element view is kept
    too (slices were 10 of a small call's numba-cuda objects and about a quarter
    of its host time under cProfile on the H100 host, GPU_PROFILE.txt): calls of
    one size get the same view object."""
    key = (name, np.dtype(dtype).char, _handle(stream))
    v = _SCRATCH_VIEW.get(key)
    if v is not None and v[0] == n:
        return v[1]
    buf = _SCRATCH.get(key)
    if buf is None or buf.size < n:
        buf = cuda.device_array(max(n, 1), dtype, stream=stream)
        _SCRATCH[key] = buf
    view = buf[:n]
    if v is not None:
        forget(v[1])
    _SCRATCH_VIEW[key] = (n, view)
    remember(view)
    return view


_RESHAPES = {}  # id(view) -> (view, {shape: reshaped view}): long-lived views only


def remember(a):
    """Cache ``reshape``'s results for ``a``, a view that lives across calls
    (a scratch view, a cached view of a caller's array)."""
    if id(a) not in _RESHAPES:
        _RESHAPES[id(a)] = (a, {})


def forget(a):
    _RESHAPES.pop(id(a), None)


def reshape(a, *shape):
    """``a.reshape(*shape)``, and ``a`` itself for its own shape (numba-cuda
    makes a new array object either way); cached for remembered views."""
    if tuple(a.shape) == shape:
        return a
    e = _RESHAPES.get(id(a))
    if e is None or e[0] is not a:
        return a.reshape(*shape)
    r = e[1].get(shape)
    if r is None:
        r = e[1][shape] = a.reshape(*shape)
    return r


_CONST = {}  # (stream, dtype, size) -> {values' bytes: device array}, oldest first
CONST_PER_KEY = 32


def constant(values, stream=0):
    """A device copy of the small parameter vector ``values`` (a NumPy array),
    for kernels on ``stream``, made once per distinct value: a mean over a
    fixed batch size passes the same factor call after call. The copy is
    queued on ``stream`` and each vector is read only by kernels on that
    stream, so no synchronization is needed. At most ``CONST_PER_KEY`` values
    per (stream, dtype, size): a new value beyond that is copied, on the same
    stream, into the oldest one's memory (kernels queued before it have read
    it by then), so changing values (a factor from varying sample weights)
    allocate nothing."""
    values = np.ascontiguousarray(values)
    key = (_handle(stream), values.dtype.char, values.size)
    lru = _CONST.get(key)
    if lru is None:
        if len(_CONST) > 256:
            _CONST.clear()
        lru = _CONST[key] = {}
    b = values.tobytes()
    d = lru.pop(b, None)
    if d is None:
        if len(lru) >= CONST_PER_KEY:
            d = lru.pop(next(iter(lru)))
            d.copy_to_device(values, stream=stream)
        else:
            d = cuda.to_device(values, stream=stream)
    lru[b] = d  # most recent last
    return d