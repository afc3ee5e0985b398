"""Bounding-box family on the C backend (``csrc/boxes.c``): the same names and
contract as ``fastloss.backends.numba_cpu.boxes``::

    kernel(y_true, y_pred, prm, w, ws, loss, grad, want_grad, nch) -> info (nch, 3)

``y_true`` / ``y_pred`` are ``(R, 4)`` or ``(1, 4)`` (one box broadcast against
the ``R = loss.shape[0]`` rows, read in place); where ``y_pred`` is the one box,
``grad`` is ``(nch, 4)`` and chunk ``c`` writes its rows' gradient sum into
``grad[c]``. The checks below stand between a wrong call and memory
corruption (dtypes, sizes); a failure is an internal error (TypeError).
"""

import numpy as np

from ._kernels import _F32, _F64, _fns, _from_buffer


def _fail(name, yt, yp, prm, w, ws, loss, grad, want, R, nch):
    dt = yp.dtype
    if dt not in (_F32, _F64):
        raise TypeError(f"C kernel {name}: y_pred must be float32 or float64, got {dt}")
    for what, a in (("y_true", yt), ("y_pred", yp)):
        if a.dtype != dt or a.ndim != 2 or a.shape[1] != 4 or a.shape[0] not in (1, R):
            raise TypeError(f"C kernel {name}: {what} must be {dt} boxes of shape ({R}, 4) or (1, 4), "
                            f"got {a.dtype} {a.shape}")
    if w.dtype != dt or w.size < (R if ws else 1):
        raise TypeError(f"C kernel {name}: weights must be {dt} with {R if ws else 1} values, got {w.dtype} {w.size}")
    gn = (4 * nch if yp.shape[0] != R else 4 * R) * want
    for what, o, n in (("prm", prm, 10), ("loss", loss, R), ("grad", grad, gn)):
        if o.dtype != dt or o.size < n:
            raise TypeError(f"C kernel {name}: {what} must be {dt} with {n} values, got {o.dtype} {o.size}")
    raise TypeError(f"C kernel {name}: arguments do not fit the kernel contract")


def box_kernel(name):
    """The box loss kernel ``fl_<name>_f32/_f64`` of ``csrc/boxes.c``."""
    f32, f64 = _fns(name)

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        R = loss.shape[0]
        dt = yp.dtype
        if dt is _F32 or dt == _F32:
            fn, ct = f32, "float[]"
        else:
            fn, ct = f64, "double[]"
        want = 1 if want_grad else 0
        nch = 1 if nch < 1 else int(nch)
        tbc = 1 if yt.shape[0] != R else 0
        pbc = 1 if yp.shape[0] != R else 0
        if not (
            (dt is _F32 or dt is _F64 or dt == _F64)
            and yt.dtype == dt and yt.shape == ((1, 4) if tbc else (R, 4))
            and yp.shape == ((1, 4) if pbc else (R, 4))
            and yt.flags.c_contiguous and yp.flags.c_contiguous
            and w.dtype == dt and w.size >= (R if ws else 1) and prm.dtype == dt and prm.size >= 10
            and loss.dtype == dt and grad.dtype == dt and grad.size >= (4 * nch if pbc else 4 * R) * want
        ):
            _fail(name, yt, yp, prm, w, ws, loss, grad, want, R, nch)
        info = np.empty((nch, 3))
        st = fn(
            _from_buffer(ct, yt), _from_buffer(ct, yp), _from_buffer(ct, prm), _from_buffer(ct, w), ws,
            _from_buffer(ct, loss), _from_buffer(ct, grad), want, R, tbc, pbc, nch,
            _from_buffer("double[]", info),
        )
        if st:
            raise MemoryError(f"C kernel {name}: out of memory for its scratch buffers")
        return info

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


iou = box_kernel("iou")
giou = box_kernel("giou")
diou = box_kernel("diou")
ciou = box_kernel("ciou")
