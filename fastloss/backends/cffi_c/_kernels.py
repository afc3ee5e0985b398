"""Python faces of the C kernels, with the Numba kernels' contract::

    loss kernel  fn(yt, yp, prm, w, ws, loss, grad, want_grad, nch) -> info (nch, 3)
    grad_hess    fn(yt, yp, prm, w, ws, grad, hess, nch) -> info (nch, 3)

Arrays are passed as pointers into their own memory (``ffi.from_buffer``, no
copy); ``fastloss._core`` makes them C-contiguous and of one float dtype
(int64 labels for sparse losses). The checks below are the cheap ones that
stand between a wrong call and memory corruption (dtype, size); a failure is
an internal error, not a user error, and is raised as TypeError/ValueError.
"""

import numpy as np

from . import load

_ffi, _lib = load()
_from_buffer = _ffi.from_buffer
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)
_CT = {_F32: "float[]", _F64: "double[]"}


def _fns(name):
    return getattr(_lib, f"fl_{name}_f32"), getattr(_lib, f"fl_{name}_f64")


def _check(yt, yp, w, ws, outs, sparse, R, K):
    dt = yp.dtype
    if dt not in _CT:
        raise TypeError(f"C kernel: y_pred must be float32 or float64, got {dt}")
    if sparse:
        if yt.dtype != _I64 or yt.size != R:
            raise TypeError(f"C kernel: labels must be int64 of size {R}, got {yt.dtype} of size {yt.size}")
    elif yt.dtype != dt or yt.size != R * K:
        raise TypeError(f"C kernel: y_true must be {dt} of size {R * K}, got {yt.dtype} of size {yt.size}")
    if w.dtype != dt or w.size < (R if ws else 1):
        raise TypeError(f"C kernel: weights must be {dt} with {R if ws else 1} values, got {w.dtype} {w.size}")
    for o, n in outs:
        if o.dtype != dt or o.size < n:
            raise TypeError(f"C kernel: output must be {dt} with {n} values, got {o.dtype} {o.size}")


def loss_kernel(name, sparse=False):
    """The loss kernel ``fl_<name>_f32/_f64`` of ``csrc/``."""
    f32, f64 = _fns(name)
    yct = "int64_t[]" if sparse else None

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        R, K = yp.shape
        want = 1 if want_grad else 0
        _check(yt, yp, w, ws, ((loss, R), (grad, R * K * want), (prm, 10)), sparse, R, K)
        ct = _CT[yp.dtype]
        nch = max(1, int(nch))
        info = np.empty((nch, 3))
        st = (f32 if ct == "float[]" else f64)(
            _from_buffer(yct or ct, yt), _from_buffer(ct, yp), _from_buffer(ct, prm),
            _from_buffer(ct, w), int(ws), _from_buffer(ct, loss), _from_buffer(ct, grad),
            want, R, K, nch, _from_buffer("double[]", info),
        )
        if st:
            raise MemoryError(f"C kernel {name}: out of memory for its scratch buffers")
        return info

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


def gh_kernel(name, sparse=False):
    """The grad_hess kernel ``fl_<name>_f32/_f64`` of ``csrc/``."""
    f32, f64 = _fns(name)
    yct = "int64_t[]" if sparse else None

    def kernel(yt, yp, prm, w, ws, grad, hess, nch):
        R, K = yp.shape
        _check(yt, yp, w, ws, ((grad, R * K), (hess, R * K), (prm, 10)), sparse, R, K)
        ct = _CT[yp.dtype]
        nch = max(1, int(nch))
        info = np.empty((nch, 3))
        st = (f32 if ct == "float[]" else f64)(
            _from_buffer(yct or ct, yt), _from_buffer(ct, yp), _from_buffer(ct, prm),
            _from_buffer(ct, w), int(ws), _from_buffer(ct, grad), _from_buffer(ct, hess),
            R, K, nch, _from_buffer("double[]", info),
        )
        if st:
            raise MemoryError(f"C kernel {name}: out of memory for its scratch buffers")
        return info

    kernel.__name__ = kernel.__qualname__ = name
    return kernel
