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


def _fail(yt, yp, w, ws, outs, sparse):
    """The detailed message for a call that does not fit the contract."""
    R, K = yp.shape
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
    raise TypeError("C kernel: arguments do not fit the kernel contract")


def loss_kernel(name, sparse=False):
    """The loss kernel ``fl_<name>_f32/_f64`` of ``csrc/``.

    The fast path checks what a wrong call could corrupt memory with (dtypes
    and sizes) in one expression; ``_fail`` explains a failure."""
    f32, f64 = _fns(name)

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        R, K = yp.shape
        n = R * K
        dt = yp.dtype
        if dt is _F32 or dt == _F32:
            fn, ct = f32, "float[]"
        else:
            fn, ct = f64, "double[]"
        want = 1 if want_grad else 0
        if not (
            (dt is _F32 or dt is _F64 or dt in _CT)
            and ((yt.dtype == _I64 and yt.size == R) if sparse else (yt.dtype == dt and yt.size == n))
            and w.dtype == dt and w.size >= (R if ws else 1) and prm.dtype == dt and prm.size >= 10
            and loss.dtype == dt and loss.size >= R and grad.dtype == dt and grad.size >= n * want
        ):
            _fail(yt, yp, w, ws, ((loss, R), (grad, n * want), (prm, 10)), sparse)
        nch = 1 if nch < 1 else int(nch)
        info = np.empty((nch, 3))
        st = fn(
            _from_buffer("int64_t[]" if sparse else ct, yt), _from_buffer(ct, yp), _from_buffer(ct, prm),
            _from_buffer(ct, w), ws, _from_buffer(ct, loss), _from_buffer(ct, grad),
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

    def kernel(yt, yp, prm, w, ws, grad, hess, nch):
        R, K = yp.shape
        n = R * K
        dt = yp.dtype
        if dt is _F32 or dt == _F32:
            fn, ct = f32, "float[]"
        else:
            fn, ct = f64, "double[]"
        if not (
            (dt is _F32 or dt is _F64 or dt in _CT)
            and ((yt.dtype == _I64 and yt.size == R) if sparse else (yt.dtype == dt and yt.size == n))
            and w.dtype == dt and w.size >= (R if ws else 1) and prm.dtype == dt and prm.size >= 10
            and grad.dtype == dt and grad.size >= n and hess.dtype == dt and hess.size >= n
        ):
            _fail(yt, yp, w, ws, ((grad, n), (hess, n), (prm, 10)), sparse)
        nch = 1 if nch < 1 else int(nch)
        info = np.empty((nch, 3))
        st = fn(
            _from_buffer("int64_t[]" if sparse else ct, yt), _from_buffer(ct, yp), _from_buffer(ct, prm),
            _from_buffer(ct, w), ws, _from_buffer(ct, grad), _from_buffer(ct, hess),
            R, K, nch, _from_buffer("double[]", info),
        )
        if st:
            raise MemoryError(f"C kernel {name}: out of memory for its scratch buffers")
        return info

    kernel.__name__ = kernel.__qualname__ = name
    return kernel
