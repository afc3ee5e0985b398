"""Cross-entropy family on the Numba CPU backend.

Every kernel has the same contract (see ``fastloss/_registry.py``)::

    kernel(y_true, y_pred, prm, w, ws, loss, grad, want_grad, nch) -> info

* ``y_pred``: C-contiguous ``(R, K)`` float32/float64; ``y_true`` the same shape
  (dense kernels, any real dtype, converted per element) or ``(R,)`` labels
  (sparse kernels, integer or integral float).
* ``prm``: parameters, in y_pred's dtype: ``prm[F_SCALE]`` is the reduction
  scale, then eps, 1 - eps, and the loss' own parameters (the ``P_*`` indices).
* ``w``/``ws``: per-row weights and their stride (0: one weight for all rows).
* ``loss``: ``(R,)`` out, the unweighted per-sample loss.
* ``grad``: ``(R, K)`` out when ``want_grad``: d loss_i / d y_pred[i] multiplied
  by ``w[i*ws] * prm[F_SCALE]``, written in the same pass (no second pass over
  the gradient for the scaling).
* ``nch``: number of row chunks run in parallel (1 = serial in this thread).
* ``info``: ``(nch, 2)`` int64, per chunk the number of bad labels and the first
  bad row (-1 if none); all zeros for dense kernels.

Row arithmetic is in y_pred's dtype; every float constant goes through
``lit`` so float32 stays float32 (and vectorizes).
"""

import numpy as np
from numba import njit, prange

from ..._config import FASTMATH
from ._math import fexp, flog, flog1p, fpow, lit, row_max

# Indices into ``prm``.
F_SCALE = 0
P_EPS = 1
P_OME = 2  # 1 - eps, rounded in the compute dtype like Keras' 1.0 - epsilon()
P_LS_A = 3  # label smoothing: y' = y * a + b
P_LS_B = 4
P_ALPHA = 5
P_GAMMA = 6
P_FLAG = 7  # loss-specific switch (class balancing, alpha on/off, ...)
P_IGNORE = 8  # ignore_class label value (sparse)
P_HAS_IGNORE = 9
N_PRM = 10

_JIT = dict(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)


@njit(fastmath=FASTMATH, cache=True)
def _clip(p, lo, hi):
    c = p
    if c < lo:
        c = lo
    if c > hi:
        c = hi
    return c


@njit(fastmath=FASTMATH, cache=True)
def _sigmoid_pair(x):
    """(sigmoid(x), sigmoid(-x)), each accurate (no 1 - s cancellation)."""
    one = lit(x, 1.0)
    u = fexp(-abs(x))
    s = one / (one + u)
    t = u * s
    if x >= lit(x, 0.0):
        return s, t
    return t, s


@njit(fastmath=FASTMATH, cache=True)
def _chunk(c, nch, n):
    return c * n // nch, (c + 1) * n // nch


# ----------------------------------------------------------------------------
# Binary cross-entropy (mean over the last axis)
# ----------------------------------------------------------------------------


@njit(**_JIT)
def bce_probs(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    inv_k = one / lit(zero, K)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            if want_grad:
                sc = w[i * ws] * prm[F_SCALE] * inv_k
                for j in range(K):
                    y = lit(zero, yt[i, j]) * a + b
                    p = yp[i, j]
                    pc = _clip(p, eps, ome)
                    acc += -(y * flog(pc) + (one - y) * flog(one - pc))
                    g = (pc - y) / (pc * (one - pc))
                    if p < eps:
                        g = zero
                    if p > ome:
                        g = zero
                    grad[i, j] = g * sc
            else:
                for j in range(K):
                    y = lit(zero, yt[i, j]) * a + b
                    pc = _clip(yp[i, j], eps, ome)
                    acc += -(y * flog(pc) + (one - y) * flog(one - pc))
            loss[i] = acc * inv_k
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def bce_logits(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    inv_k = one / lit(zero, K)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            if want_grad:
                sc = w[i * ws] * prm[F_SCALE] * inv_k
                for j in range(K):
                    y = lit(zero, yt[i, j]) * a + b
                    x = yp[i, j]
                    u = fexp(-abs(x))
                    relu = x if x > zero else zero
                    acc += relu - x * y + flog1p(u)
                    s = one / (one + u)
                    sig = s if x >= zero else u * s
                    grad[i, j] = (sig - y) * sc
            else:
                for j in range(K):
                    y = lit(zero, yt[i, j]) * a + b
                    x = yp[i, j]
                    relu = x if x > zero else zero
                    acc += relu - x * y + flog1p(fexp(-abs(x)))
            loss[i] = acc * inv_k
    return np.zeros((nch, 2), np.int64)


# ----------------------------------------------------------------------------
# Keras BinaryFocalCrossentropy (mean over the last axis)
# ----------------------------------------------------------------------------


@njit(fastmath=FASTMATH, cache=True)
def _binary_focal_elem(y, p, q, eps, ome, alpha, gamma, balance):
    """Loss and d loss / d p for one element; q = 1 - p (accurate for logits).

    loss = wb * (1 - p_t)**gamma * bce(clip(p)), 1 - p_t = y q + (1 - y) p.
    The derivative of (1 - p_t)**gamma is taken as 0 where 1 - p_t == 0 and
    gamma < 1 (TF gives inf/NaN there; see the module docs of fastloss.losses).
    """
    zero = eps - eps
    one = zero + lit(zero, 1.0)
    pc = _clip(p, eps, ome)
    bce = -(y * flog(pc) + (one - y) * flog(one - pc))
    dbce = (pc - y) / (pc * (one - pc))
    if p < eps:
        dbce = zero
    if p > ome:
        dbce = zero
    m = y * q + (one - y) * p
    f = fpow(m, gamma)
    df = gamma * fpow(m, gamma - one) * (one - y - y)
    wb = one
    if balance:
        wb = y * alpha + (one - y) * (one - alpha)
    return wb * f * bce, wb * (df * bce + f * dbce)


@njit(**_JIT)
def binary_focal(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    balance = prm[P_FLAG] != zero
    inv_k = one / lit(zero, K)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE] * inv_k
            for j in range(K):
                y = lit(zero, yt[i, j]) * a + b
                p = yp[i, j]
                l, g = _binary_focal_elem(y, p, one - p, eps, ome, alpha, gamma, balance)
                acc += l
                if want_grad:
                    grad[i, j] = g * sc
            loss[i] = acc * inv_k
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def binary_focal_logits(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    balance = prm[P_FLAG] != zero
    inv_k = one / lit(zero, K)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE] * inv_k
            for j in range(K):
                y = lit(zero, yt[i, j]) * a + b
                p, q = _sigmoid_pair(yp[i, j])
                l, g = _binary_focal_elem(y, p, q, eps, ome, alpha, gamma, balance)
                acc += l
                if want_grad:
                    grad[i, j] = g * (p * q) * sc
            loss[i] = acc * inv_k
    return np.zeros((nch, 2), np.int64)


# ----------------------------------------------------------------------------
# TF Addons SigmoidFocalCrossEntropy (SUM over the last axis)
# ----------------------------------------------------------------------------


@njit(fastmath=FASTMATH, cache=True)
def _tfa_focal_factors(y, prob, qprob, alpha, gamma, use_alpha, use_gamma):
    """alpha factor, modulating factor and d(modulating)/d prob."""
    zero = alpha - alpha
    one = zero + lit(zero, 1.0)
    af = one
    if use_alpha:
        af = y * alpha + (one - y) * (one - alpha)
    mf = one
    dmf = zero
    if use_gamma:
        m = y * qprob + (one - y) * prob
        mf = fpow(m, gamma)
        dmf = gamma * fpow(m, gamma - one) * (one - y - y)
    return af, mf, dmf


@njit(**_JIT)
def sigmoid_focal(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    use_alpha = alpha != zero
    use_gamma = gamma != zero
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE]
            for j in range(K):
                y = lit(zero, yt[i, j])
                p = yp[i, j]
                pc = _clip(p, eps, ome)
                # Keras 2 backend (what TF Addons calls): log(p + eps)
                ce = -(y * flog(pc + eps) + (one - y) * flog(one - pc + eps))
                af, mf, dmf = _tfa_focal_factors(y, p, one - p, alpha, gamma, use_alpha, use_gamma)
                acc += af * mf * ce
                if want_grad:
                    dce = (one - y) / (one - pc + eps) - y / (pc + eps)
                    if p < eps:
                        dce = zero
                    if p > ome:
                        dce = zero
                    grad[i, j] = af * (dmf * ce + mf * dce) * sc
            loss[i] = acc
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def sigmoid_focal_logits(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    use_alpha = alpha != zero
    use_gamma = gamma != zero
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE]
            for j in range(K):
                y = lit(zero, yt[i, j])
                x = yp[i, j]
                u = fexp(-abs(x))
                relu = x if x > zero else zero
                ce = relu - x * y + flog1p(u)
                s = one / (one + u)
                p = s if x >= zero else u * s
                q = u * s if x >= zero else s
                af, mf, dmf = _tfa_focal_factors(y, p, q, alpha, gamma, use_alpha, use_gamma)
                acc += af * mf * ce
                if want_grad:
                    # d ce/dx = p - y ; d prob/dx = p q
                    grad[i, j] = af * (dmf * (p * q) * ce + mf * (p - y)) * sc
            loss[i] = acc
    return np.zeros((nch, 2), np.int64)


# ----------------------------------------------------------------------------
# KL divergence (sum over the last axis) and Poisson (mean over the last axis)
# ----------------------------------------------------------------------------


@njit(**_JIT)
def kl_divergence(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE]
            for j in range(K):
                yc = _clip(lit(zero, yt[i, j]), eps, one)
                p = yp[i, j]
                pc = _clip(p, eps, one)
                acc += yc * flog(yc / pc)
                if want_grad:
                    g = -yc / pc
                    if p < eps:
                        g = zero
                    if p > one:
                        g = zero
                    grad[i, j] = g * sc
            loss[i] = acc
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def poisson(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    inv_k = one / lit(zero, K)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            acc = zero
            sc = w[i * ws] * prm[F_SCALE] * inv_k
            for j in range(K):
                y = lit(zero, yt[i, j])
                p = yp[i, j]
                acc += p - y * flog(p + eps)
                if want_grad:
                    grad[i, j] = (one - y / (p + eps)) * sc
            loss[i] = acc * inv_k
    return np.zeros((nch, 2), np.int64)


# ----------------------------------------------------------------------------
# Categorical cross-entropy, dense labels (sum over the class axis)
# ----------------------------------------------------------------------------


@njit(**_JIT)
def cce_logits(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """loss = sum(y') * logsumexp(x) - sum(y' x); grad = sum(y') softmax(x) - y'.

    TF's own gradient is softmax(x) - y', which is the derivative only when the
    labels of a row sum to 1; this is the exact derivative for any labels.
    """
    R, C = yp.shape
    zero = prm[0] - prm[0]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            x = yp[i]
            m = row_max(x)
            s = zero
            sy = zero
            syx = zero
            if want_grad:
                g = grad[i]
                for j in range(C):
                    e = fexp(x[j] - m)
                    g[j] = e
                    s += e
                    y = lit(zero, yt[i, j]) * a + b
                    sy += y
                    syx += y * (x[j] - m)
            else:
                for j in range(C):
                    s += fexp(x[j] - m)
                    y = lit(zero, yt[i, j]) * a + b
                    sy += y
                    syx += y * (x[j] - m)
            loss[i] = sy * flog(s) - syx
            if want_grad:
                sc = w[i * ws] * prm[F_SCALE]
                r = sc * sy / s
                for j in range(C):
                    g[j] = g[j] * r - (lit(zero, yt[i, j]) * a + b) * sc
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def cce_probs(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """Keras: q = p / sum(p); c = clip(q, eps, 1 - eps); loss = -sum(y' log c)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            p = yp[i]
            S = zero
            for j in range(C):
                S += p[j]
            acc = zero
            if want_grad:
                g = grad[i]
                dot = zero
                for j in range(C):
                    y = lit(zero, yt[i, j]) * a + b
                    q = p[j] / S
                    qc = _clip(q, eps, ome)
                    acc += y * flog(qc)
                    gq = -y / qc
                    if q < eps:
                        gq = zero
                    if q > ome:
                        gq = zero
                    g[j] = gq
                    dot += gq * q
                r = w[i * ws] * prm[F_SCALE] / S
                for j in range(C):
                    g[j] = (g[j] - dot) * r
            else:
                for j in range(C):
                    y = lit(zero, yt[i, j]) * a + b
                    acc += y * flog(_clip(p[j] / S, eps, ome))
            loss[i] = -acc
    return np.zeros((nch, 2), np.int64)


@njit(**_JIT)
def categorical_focal(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """Keras CategoricalFocalCrossentropy; prm[P_FLAG] != 0 means logits.

    softmax (logits) -> q = p / sum(p) -> c = clip(q) ->
    loss = sum_j alpha (1 - c_j)**gamma (-y'_j log c_j).
    """
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    alpha = prm[P_ALPHA]
    gamma = prm[P_GAMMA]
    logits = prm[P_FLAG] != zero
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        for i in range(lo, hi):
            x = yp[i]
            m = zero
            inv_s = one
            if logits:
                m = row_max(x)
                s = zero
                for j in range(C):
                    s += fexp(x[j] - m)
                inv_s = one / s
            S = zero
            for j in range(C):
                S += fexp(x[j] - m) * inv_s if logits else x[j]
            acc = zero
            dot = zero
            for j in range(C):
                pj = fexp(x[j] - m) * inv_s if logits else x[j]
                y = lit(zero, yt[i, j]) * a + b
                q = pj / S
                qc = _clip(q, eps, ome)
                lc = flog(qc)
                f = fpow(one - qc, gamma)
                acc += alpha * f * (-y * lc)
                if want_grad:
                    df = -gamma * fpow(one - qc, gamma - one)
                    gq = alpha * (df * (-y * lc) + f * (-y / qc))
                    if q < eps:
                        gq = zero
                    if q > ome:
                        gq = zero
                    grad[i, j] = gq
                    dot += gq * q
            loss[i] = acc
            if want_grad:
                g = grad[i]
                sc = w[i * ws] * prm[F_SCALE]
                if logits:
                    dotp = zero
                    for j in range(C):
                        dp = (g[j] - dot) / S
                        g[j] = dp
                        dotp += dp * (fexp(x[j] - m) * inv_s)
                    for j in range(C):
                        g[j] = (fexp(x[j] - m) * inv_s) * (g[j] - dotp) * sc
                else:
                    r = sc / S
                    for j in range(C):
                        g[j] = (g[j] - dot) * r
    return np.zeros((nch, 2), np.int64)


# ----------------------------------------------------------------------------
# Sparse categorical cross-entropy (integer labels)
# ----------------------------------------------------------------------------


@njit(fastmath=FASTMATH, cache=True)
def _label(v, C, ignore, has_ignore):
    """-2: ignored row, -1: bad label, else the class index."""
    if has_ignore and v == ignore:
        return -2
    if not (v >= 0 and v < C):
        return -1
    k = np.int64(v)
    if k != v:
        return -1
    return k


@njit(**_JIT)
def scce_logits(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    R, C = yp.shape
    zero = prm[0] - prm[0]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    info = np.zeros((nch, 2), np.int64)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        nbad = 0
        first = -1
        for i in range(lo, hi):
            k = _label(yt[i], C, ignore, has_ignore)
            if k < 0:
                if k == -1:
                    nbad += 1
                    if first < 0:
                        first = i
                loss[i] = zero
                if want_grad:
                    for j in range(C):
                        grad[i, j] = zero
                continue
            x = yp[i]
            m = row_max(x)
            s = zero
            if want_grad:
                g = grad[i]
                for j in range(C):
                    e = fexp(x[j] - m)
                    g[j] = e
                    s += e
                sc = w[i * ws] * prm[F_SCALE]
                r = sc / s
                for j in range(C):
                    g[j] = g[j] * r
                g[k] -= sc
            else:
                for j in range(C):
                    s += fexp(x[j] - m)
            loss[i] = flog(s) - (x[k] - m)
        info[c, 0] = nbad
        info[c, 1] = first
    return info


@njit(**_JIT)
def scce_probs(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """TF backend: log(clip(p)) fed to the logits path, i.e.
    loss = log(sum(c)) - log(c_y), c = clip(p, eps, 1 - eps)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    info = np.zeros((nch, 2), np.int64)
    for c in prange(nch):
        lo, hi = _chunk(c, nch, R)
        nbad = 0
        first = -1
        for i in range(lo, hi):
            k = _label(yt[i], C, ignore, has_ignore)
            if k < 0:
                if k == -1:
                    nbad += 1
                    if first < 0:
                        first = i
                loss[i] = zero
                if want_grad:
                    for j in range(C):
                        grad[i, j] = zero
                continue
            p = yp[i]
            S = zero
            for j in range(C):
                S += _clip(p[j], eps, ome)
            ck = _clip(p[k], eps, ome)
            loss[i] = flog(S) - flog(ck)
            if want_grad:
                g = grad[i]
                sc = w[i * ws] * prm[F_SCALE]
                r = sc / S
                for j in range(C):
                    v = r
                    if p[j] < eps:
                        v = zero
                    if p[j] > ome:
                        v = zero
                    g[j] = v
                if not (p[k] < eps or p[k] > ome):
                    g[k] -= sc / ck
    return info
