"""Shared machinery of the Numba CPU kernels: the parameter layout, the
elementwise driver (blocked flat loops, row reduction, per-row weights, float64
batch total) and the serial/parallel entry points.

Kernel contract (every family): ``kernel(y_true, y_pred, prm, w, ws, loss, grad,
want_grad, nch) -> info``; see ``crossentropy.py``'s module docstring.

A new elementwise loss needs: an element function ``(y, p, eps, ome, alpha,
gamma, flag) -> (loss, dloss/dp)`` (``@njit(inline="always", **INLINE)``), a
flat loop over a block calling it (copy ``_flat_poisson`` in crossentropy.py), a
``*_rows`` kernel ``return elementwise_rows(_flat_x, row_mean, ...)``, a
``*_par`` kernel ``return par(x_rows, ...)`` and ``entry(x_rows, x_par, name)``.
"""

import numpy as np
from numba import njit, prange

from ..._config import FASTMATH
from ._math import fexp, flog, lit

# jit options: kernels (cached on disk), parallel kernels, inlined helpers.
JIT = dict(fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)
PJIT = dict(parallel=True, fastmath=FASTMATH, error_model="numpy", cache=True, nogil=True)
INLINE = dict(inline="always", fastmath=FASTMATH, error_model="numpy")

# Indices into ``prm``.
F_SCALE = 0
P_EPS = 1
P_OME = 2  # 1 - eps, rounded in the compute dtype like Keras' 1.0 - epsilon()
P_LS_A = 3  # label smoothing: y' = y * a + b
P_LS_B = 4
P_ALPHA = 5
P_GAMMA = 6
P_FLAG = 7  # loss-specific switch (class balancing, logits, ...)
P_IGNORE = 8  # ignore_class label value (sparse)
P_HAS_IGNORE = 9
# Categorical focal's alpha for class j: prm[P_AVEC + j * prm[P_AVEC_STEP]]. The
# step is 0 for one alpha (prm[P_AVEC] = prm[P_ALPHA]), 1 for one per class
# (prm then has P_AVEC + K entries). The kernels copy the K alphas into a
# contiguous array first: a per-element branch cost ~5%, a stepped load up to
# 2.7x (the loop stopped vectorizing; categorical focal 16384x100 float32).
P_AVEC_STEP = 10
P_AVEC = 11

# Rows are processed in blocks of about this many elements, so a block's
# scratch and gradient stay in L1/L2 between the passes over it.
BLOCK = 4096



# float32 rows of at most this many classes take the cross-entropy kernels'
# "columns" layout (``cols_in``): on such rows a row's own loops (sum, max,
# terms, gradient) are too short to vectorize, and their per-row cost, not the
# arithmetic, set the speed. Categorical cross-entropy on probabilities, soft
# labels, 65536 rows, one thread: 60 -> 11 ns a row at 3 classes, 110 -> 20 at
# 6, 132 -> 56 at 14; level at 16 (a multiple of the vector width), behind from
# there on. float64 rows (half the lanes a vector) take it up to fewer classes,
# kernel by kernel: the *_F64 cut-overs in crossentropy.py.
COLS_MAX_K = 15


# The transposes run class by class over flat 1-D views: a strided read (or
# write) of the rows, unit stride in the scratch. Row by row with 2-D indexing
# they took twice the time (0.6-0.86 against 0.35 ns an element at 3-4
# classes, float32).
@njit(**INLINE)
def cols_in(src, r0, nr, dst):
    """``dst[j, i] = src[r0 + i, j]`` for ``i < nr``: a block of short rows
    transposed, so that each loop over it runs along the rows (long, unit
    stride, vectorized) for one class at a time."""
    K = src.shape[1]
    nb = dst.shape[1]
    s = src.reshape(src.size)[r0 * K : (r0 + nr) * K]
    d = dst.reshape(dst.size)
    for j in range(K):
        dj = d[j * nb : j * nb + nr]
        for i in range(nr):
            dj[i] = s[i * K + j]


@njit(**INLINE)
def cols_in_labels(src, r0, nr, dst, a, b):
    """``cols_in`` of dense labels, converted to dst's type and smoothed:
    ``y' = y * a + b``."""
    K = src.shape[1]
    nb = dst.shape[1]
    s = src.reshape(src.size)[r0 * K : (r0 + nr) * K]
    d = dst.reshape(dst.size)
    for j in range(K):
        dj = d[j * nb : j * nb + nr]
        for i in range(nr):
            dj[i] = lit(a, s[i * K + j]) * a + b


@njit(**INLINE)
def cols_out(src, dst, r0, nr):
    """The inverse of ``cols_in``: ``dst[r0 + i, j] = src[j, i]``."""
    K = dst.shape[1]
    nb = src.shape[1]
    d = dst.reshape(dst.size)[r0 * K : (r0 + nr) * K]
    s = src.reshape(src.size)
    for j in range(K):
        sj = s[j * nb : j * nb + nr]
        for i in range(nr):
            d[i * K + j] = sj[i]


@njit(**INLINE)
def clip(p, lo, hi):
    c = p
    if c < lo:
        c = lo
    if c > hi:
        c = hi
    return c


@njit(**INLINE)
def chunk(c, nch, n):
    return c * n // nch, (c + 1) * n // nch


@njit(**INLINE)
def log_inplace(v):
    for t in range(v.shape[0]):
        v[t] = flog(v[t])


@njit(**INLINE)
def exp_inplace(v):
    # index from range(len): Numba then knows t >= 0 and emits no negative-index
    # wraparound, which would stop the loop from vectorizing
    for t in range(v.shape[0]):
        v[t] = fexp(v[t])


@njit(**INLINE)
def elementwise_rows(flat, row_mean, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Rows [lo, hi) of an elementwise loss whose flat loop is ``flat``
    (inlined: each loss compiles to its own kernel, and only the losses used
    are ever compiled)."""
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    flag = prm[P_FLAG]
    rscale = one / lit(zero, K) if row_mean else one
    ytf = yt.reshape(R * K)
    ypf = yp.reshape(R * K)
    rows_per_block = max(1, BLOCK // K)
    nblk = min(hi - lo, rows_per_block) * K
    lbuf = np.empty(nblk, yp.dtype)
    if want_grad:
        gf = grad.reshape(R * K)
    else:
        gf = np.empty(nblk, yp.dtype)  # gradients computed, thrown away
    sc = prm[F_SCALE] * rscale
    if ws == 0:
        sc = sc * w[0]
    if not want_grad:
        sc = one
    tot = 0.0
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + rows_per_block)
        e0 = r0 * K
        e1 = r1 * K
        # One call site: the flat loop is inlined here, and a second call for
        # the no-gradient case doubled every elementwise kernel's compile time.
        gs = gf[e0:e1] if want_grad else gf[: e1 - e0]
        flat(ytf[e0:e1], ypf[e0:e1], gs, lbuf, a, b, eps, ome, alpha, gamma, flag, sc)
        if want_grad and ws != 0:
            for i in range(r0, r1):
                wi = w[i]
                for j in range(K):
                    grad[i, j] *= wi
        # Indices below come from range(n) on views (lb, ls): Numba then knows
        # they are >= 0 and emits no wraparound select, which would keep these
        # loops from vectorizing (2x slower end to end for K == 1).
        nr = r1 - r0
        if K == 1 and ws == 0:  # one element per row: a plain (vectorized) copy
            ls = loss[r0:r1]
            part = 0.0
            for i in range(nr):
                ls[i] = lbuf[i]
                part += np.float64(lbuf[i])
            tot += part * np.float64(w[0])
        else:
            lb = lbuf[: nr * K].reshape(nr, K)
            for i in range(nr):
                acc = zero
                for j in range(K):
                    acc += lb[i, j]
                li = acc * rscale
                loss[r0 + i] = li
                tot += np.float64(li) * np.float64(w[(r0 + i) * ws])
        r0 = r1
    return 0, -1, tot


@njit(**INLINE)
def par(rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """Chunks of rows in prange; one (bad, first, total) row per chunk."""
    info = np.zeros((nch, 3))
    for c in prange(nch):
        lo, hi = chunk(c, nch, yp.shape[0])
        info[c, 0], info[c, 1], info[c, 2] = rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)
    return info



def entry(rows, par, name):
    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        if nch == 1:
            return (rows(yt, yp, prm, w, ws, loss, grad, want_grad, 0, yp.shape[0]),)
        return par(yt, yp, prm, w, ws, loss, grad, want_grad, nch)

    kernel.rows = rows  # the serial row kernel (which layout a call takes, for tests)
    kernel.__name__ = kernel.__qualname__ = name
    return kernel


_F32 = np.dtype(np.float32)


def entry_cols(rows, par, cols, cols_par, max_k, max_k64, name):
    """``entry`` whose inputs of at most ``max_k`` classes (float32) or
    ``max_k64`` (float64) run the columns-layout kernels ``cols``/``cols_par``
    (see COLS_MAX_K). Chosen here, not inside ``rows``: a branch there
    compiled both layouts into every signature (the four softmax kernels' cold
    compile 14 -> 33 s). ``kernel.pick(y_pred)`` is the chosen entry (tests
    check the choice with it)."""
    return _pick_layout(entry(rows, par, name), entry(cols, cols_par, name), max_k, max_k64, name)


def _pick_layout(by_rows, by_cols, max_k, max_k64, name):
    def pick(yp):
        return by_cols if yp.shape[1] <= (max_k if yp.dtype == _F32 else max_k64) else by_rows

    def kernel(yt, yp, *args):
        return pick(yp)(yt, yp, *args)

    kernel.pick = pick
    kernel.__name__ = kernel.__qualname__ = name
    return kernel


# ----------------------------------------------------------------------------
# Gradient and Hessian diagonal (gradient boosting):
#     kernel(yt, yp, prm, w, ws, grad, hess, nch) -> info
# grad/hess: (R, K) out, d/d y_pred and d2/d y_pred2 (diagonal) of loss_i,
# times w[i*ws] * prm[F_SCALE] (and 1/K where loss_i is a mean); info as for
# the loss kernels, one (bad_labels, first_bad_row, 0.0) triple per chunk.
# ----------------------------------------------------------------------------


@njit(**INLINE)
def elementwise_gh_rows(elem, row_mean, yt, yp, prm, w, ws, grad, hess, lo, hi):
    """Rows [lo, hi) of an elementwise loss whose element function
    ``elem(y', p, eps, ome, alpha, gamma, flag) -> (dl/dp, d2l/dp2)`` is
    inlined; ``y' = y * prm[P_LS_A] + prm[P_LS_B]`` (label smoothing). Flat
    loops over the chunk (vectorized whatever K is); per-row weights go into
    the same loop (K == 1, the usual boosting shape) or a row loop."""
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    flag = prm[P_FLAG]
    rscale = one / lit(zero, K) if row_mean else one
    sc0 = prm[F_SCALE] * rscale
    e0 = lo * K
    e1 = hi * K
    ys = yt.reshape(R * K)[e0:e1]
    ps = yp.reshape(R * K)[e0:e1]
    gs = grad.reshape(R * K)[e0:e1]
    hs = hess.reshape(R * K)[e0:e1]
    if ws == 0:
        sc = sc0 * w[0]
        for t in range(ps.shape[0]):
            g, h = elem(ys[t] * a + b, ps[t], eps, ome, alpha, gamma, flag)
            gs[t] = g * sc
            hs[t] = h * sc
    elif K == 1:
        wr = w[lo:hi]
        for t in range(ps.shape[0]):
            g, h = elem(ys[t] * a + b, ps[t], eps, ome, alpha, gamma, flag)
            sc = sc0 * wr[t]
            gs[t] = g * sc
            hs[t] = h * sc
    else:
        for i in range(hi - lo):
            sc = sc0 * w[lo + i]
            for j in range(K):
                t = i * K + j
                g, h = elem(ys[t] * a + b, ps[t], eps, ome, alpha, gamma, flag)
                gs[t] = g * sc
                hs[t] = h * sc
    return 0, -1, 0.0


@njit(**INLINE)
def par_gh(rows, yt, yp, prm, w, ws, grad, hess, nch):
    """Chunks of rows in prange; one (bad, first, 0) row per chunk."""
    info = np.zeros((nch, 3))
    for c in prange(nch):
        lo, hi = chunk(c, nch, yp.shape[0])
        info[c, 0], info[c, 1], info[c, 2] = rows(yt, yp, prm, w, ws, grad, hess, lo, hi)
    return info


def entry_gh(rows, par, name):
    def kernel(yt, yp, prm, w, ws, grad, hess, nch):
        if nch == 1:
            return (rows(yt, yp, prm, w, ws, grad, hess, 0, yp.shape[0]),)
        return par(yt, yp, prm, w, ws, grad, hess, nch)

    kernel.rows = rows
    kernel.__name__ = kernel.__qualname__ = name
    return kernel


def entry_gh_cols(rows, par, cols, cols_par, max_k, max_k64, name):
    """``entry_gh`` with ``entry_cols``' choice of layout."""
    return _pick_layout(entry_gh(rows, par, name), entry_gh(cols, cols_par, name), max_k, max_k64, name)
