"""Triplet losses on the C backend (``csrc/triplet.c``): the same names and
Python signatures as ``fastloss.backends.numba_cpu.triplet`` (read its
docstring for the inputs, the mining rules and the gradient coefficients)::

    semihard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch)
    hard(...), batch_all(...)                      # same arguments
    symmetrize(W, M, aux, metric, r, q, nch)
    hard_grad(X, M, aux, sel, selc, metric, scale, G)
    gram(X, M, nch)
    dense_grad(W, X, scale, G)

Arrays go to C as pointers into their own memory (``ffi.from_buffer``, no
copy; a non-contiguous array is refused by the buffer protocol). The checks
here are the cheap ones that stand between a wrong call and memory corruption
(dtypes, shapes); a failure is an internal error (``fastloss._triplet`` builds
every argument), raised as TypeError/ValueError.
"""

import numpy as np

from . import load

_ffi, _lib = load()
_buf = _ffi.from_buffer
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


def _dt(a, what):
    dt = a.dtype
    if dt == _F32:
        return "f32", "float[]"
    if dt == _F64:
        return "f64", "double[]"
    raise TypeError(f"C triplet kernel: {what} must be float32 or float64, got {dt}")


def _need(ok, msg, *args):
    """Raise ValueError(msg.format(*args)) unless ok. The message is formatted
    only on failure: formatting a dtype costs microseconds, and these checks
    run on every call of a kernel that takes tens of them at small N."""
    if not ok:
        raise ValueError("C triplet kernel: " + msg.format(*args))


def _status(st, name):
    if st:
        raise MemoryError(f"C triplet kernel {name}: out of memory for its scratch buffers")
    return 0


def _mine_args(M, aux, X, lab, prm, rowloss, rowcnt):
    suf, ct = _dt(M, "M")
    dt = M.dtype
    _need(M.ndim == 2 and M.shape[0] == M.shape[1], "M must be square, got shape {}", M.shape)
    N = M.shape[0]
    _need(prm.dtype == dt and prm.size >= 4, "prm must hold 4 values of M's dtype")
    metric = int(prm[1])
    _need(0 <= metric <= 3, "prm[1] (metric) must be 0..3, got {}", prm[1])
    if metric < 3:
        _need(aux.dtype == dt and aux.size >= N, "aux must hold {} values of {}", N, dt)
        _need(X.dtype == dt and X.ndim == 2 and X.shape[0] == N, "X must be ({}, D) {}, got {} {}", N, dt, X.shape, X.dtype)
        D = X.shape[1]
    else:
        D = 0
    _need(lab.dtype == _I64 and lab.size == N, "lab must be {} int64 labels", N)
    for a, nm in ((rowloss, "rowloss"), (rowcnt, "rowcnt")):
        _need(a.dtype == _F64 and a.size >= N, "{} must hold {} float64 values", nm, N)
    return suf, ct, N, D, metric


def _dense(name):
    fns = {"f32": getattr(_lib, f"fl_tr_{name}_f32"), "f64": getattr(_lib, f"fl_tr_{name}_f64")}

    def kernel(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch):
        suf, ct, N, D, metric = _mine_args(M, aux, X, lab, prm, rowloss, rowcnt)
        want = 1 if want_grad else 0
        if want:
            _need(W.dtype == M.dtype and W.size >= N * N, "W must be ({}, {}) {}", N, N, M.dtype)
        st = fns[suf](
            _buf(ct, M), _buf(ct, aux), _buf(ct, X), _buf("int64_t[]", lab), _buf(ct, prm),
            _buf("double[]", rowloss), _buf("double[]", rowcnt), _buf(ct, W), want, N, D,
            max(1, int(nch)),
        )
        return _status(st, name)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


semihard = _dense("semihard")
semihard.__doc__ = "Semi-hard mining, rows of ``W`` written (numba_cpu/triplet.py)."
batch_all = _dense("batch_all")
batch_all.__doc__ = "All valid triplets, rows of ``W`` written (numba_cpu/triplet.py)."


def hard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch):
    """Hard mining: ``sel``/``selc`` written (``W`` unused)."""
    suf, ct, N, D, metric = _mine_args(M, aux, X, lab, prm, rowloss, rowcnt)
    _need(sel.dtype == _I64 and sel.size >= 2 * N, "sel must be ({}, 2) int64", N)
    _need(selc.dtype == M.dtype and selc.size >= 2 * N, "selc must be ({}, 2) {}", N, M.dtype)
    fn = _lib.fl_tr_hard_f32 if suf == "f32" else _lib.fl_tr_hard_f64
    st = fn(
        _buf(ct, M), _buf(ct, aux), _buf(ct, X), _buf("int64_t[]", lab), _buf(ct, prm),
        _buf("double[]", rowloss), _buf("double[]", rowcnt), _buf("int64_t[]", sel), _buf(ct, selc),
        N, D, max(1, int(nch)),
    )
    return _status(st, "hard")


def symmetrize(W, M, aux, metric, r, q, nch):
    """``W <- W + W^T`` in place (angular: entries of clipped distances zeroed),
    ``r`` its row sums, ``q`` (angular) ``sum_j S[i, j] cos[i, j]``; float64."""
    suf, ct = _dt(W, "W")
    _need(W.ndim == 2 and W.shape[0] == W.shape[1], "W must be square, got {}", W.shape)
    N = W.shape[0]
    metric = int(metric)
    _need(r.dtype == _F64 and r.size >= N, "r must hold {} float64 values", N)
    if metric == 2:
        _need(M.dtype == W.dtype and M.size >= N * N, "M must be ({}, {}) {}", N, N, W.dtype)
        _need(aux.dtype == W.dtype and aux.size >= N, "aux must hold {} values", N)
        _need(q.dtype == _F64 and q.size >= N, "q must hold {} float64 values", N)
    fn = _lib.fl_tr_symmetrize_f32 if suf == "f32" else _lib.fl_tr_symmetrize_f64
    st = fn(_buf(ct, W), _buf(ct, M), _buf(ct, aux), metric, _buf("double[]", r), _buf("double[]", q),
            N, max(1, int(nch)))
    return _status(st, "symmetrize")


def hard_grad(X, M, aux, sel, selc, metric, scale, G):
    """Sparse assembly for hard mining (serial; numba_cpu/triplet.py hard_grad)."""
    suf, ct = _dt(G, "G")
    dt = G.dtype
    N = sel.shape[0]
    metric = int(metric)
    _need(sel.dtype == _I64 and sel.ndim == 2 and sel.shape[1] == 2, "sel must be (N, 2) int64")
    _need(selc.dtype == dt and selc.size >= 2 * N, "selc must be ({}, 2) {}", N, dt)
    _need(G.ndim == 2 and G.shape[0] == N, "G must have {} rows, got {}", N, G.shape)
    if metric == 3:
        _need(G.shape[1] == N, "G must be ({}, {}) for a distance matrix", N, N)
        D = 0
    else:
        _need(X.dtype == dt and X.shape == G.shape, "X must be {} {}", G.shape, dt)
        D = X.shape[1]
        if metric == 2:
            _need(M.dtype == dt and M.size >= N * N and aux.dtype == dt and aux.size >= N, "M/aux do not fit")
    if N and (int(sel.min()) < 0 or int(sel.max()) >= (N if metric != 3 else G.shape[1])):
        raise ValueError("C triplet kernel: sel holds a column outside the batch")
    fn = _lib.fl_tr_hard_grad_f32 if suf == "f32" else _lib.fl_tr_hard_grad_f64
    st = fn(_buf(ct, X), _buf(ct, M), _buf(ct, aux), _buf("int64_t[]", sel), _buf(ct, selc), metric,
            float(scale), _buf(ct, G), N, D, G.shape[1])
    return _status(st, "hard_grad")


def gram(X, M, nch):
    """``M = X X^T`` (each upper-triangle entry computed once, written to both
    places); ``nch`` 1: serial, else bands of four rows on OpenMP threads."""
    suf, ct = _dt(X, "X")
    N, D = X.shape
    _need(M.dtype == X.dtype and M.shape == (N, N), "M must be ({}, {}) {}", N, N, X.dtype)
    fn = _lib.fl_tr_gram_f32 if suf == "f32" else _lib.fl_tr_gram_f64
    return _status(fn(_buf(ct, X), _buf(ct, M), N, D, max(1, int(nch))), "gram")


def dense_grad(W, X, scale, G):
    """L2/squared-L2 assembly from the coefficient matrix (serial)."""
    suf, ct = _dt(X, "X")
    N, D = X.shape
    _need(W.dtype == X.dtype and W.shape == (N, N), "W must be ({}, {}) {}", N, N, X.dtype)
    _need(G.dtype == X.dtype and G.shape == (N, D), "G must be ({}, {}) {}", N, D, X.dtype)
    fn = _lib.fl_tr_dense_grad_f32 if suf == "f32" else _lib.fl_tr_dense_grad_f64
    return _status(fn(_buf(ct, W), _buf(ct, X), float(scale), _buf(ct, G), N, D), "dense_grad")
