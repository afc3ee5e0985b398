"""Triplet losses on the Numba CPU backend: the mining runs inside the kernel.

Inputs are an ``(N, N)`` matrix ``M`` (the Gram matrix ``X X^T`` of the
embeddings, from BLAS, for the metrics computed here; the distance matrix
itself for ``"precomputed"``/callables), ``aux`` (squared norms for L2 and
squared-L2, ``1/sqrt(max(|x|^2, 1e-12))`` for angular), the embeddings ``X``
(``(N, D)``, read only to recompute near-duplicate distances exactly), int64
labels and the parameter vector ``prm`` (layout ``T_*`` below). Each anchor row
``a`` is handled by one thread, in its own scratch buffers (O(N) per thread;
nothing of size N^2 x N ever exists):

1. its distance row ``d[j]`` is built from ``M`` (TF Addons' formulas, see
   ``_dist_row``);
2. the row is mined (semi-hard, hard, or all triplets), the row's loss sum and
   count go to ``rowloss[a]``/``rowcnt[a]`` (float64);
3. with ``want_grad``, the row's gradient coefficients are written: for the
   dense modes (semi-hard, batch-all) the whole row ``W[a, :]``, for the hard
   mode the two selected columns ``sel[a] = (j_pos, j_neg)`` and their weight
   ``selc[a]`` (``+selc`` on the positive, ``-selc`` on the negative).

A coefficient ``c`` at ``(a, j)`` is ``dL/dD[a, j]`` (unnormalized: the mean's
divisor and the reduction scale are applied by the caller, once) times the
metric's factor, so that the gradient is, for L2 and squared-L2,
``g_a += c (x_a - x_j)``, ``g_j += c (x_j - x_a)``:
L2 ``1 / D`` (0 where ``D == 0``: the subgradient 0 of ``|x_a - x_j|`` at 0,
also what TF Addons' zero-distance mask gives), squared-L2 ``2`` (0 where the
distance is 0, TF Addons' mask again); angular: ``1`` where
``1 - cos >= 0`` (TF's ``maximum`` passes the gradient on a tie), else 0;
precomputed: ``1`` (the gradient is the coefficient matrix itself).

Mining rules (TF Addons 0.23 ``triplet.py``), for anchor ``a``; ``P`` its
positives (same label, ``j != a``), ``Q`` its negatives; ``rowmin``/``rowmax``
over the WHOLE row, diagonal included (TFA's ``_masked_minimum``/``_maximum``):

* semi-hard: for each ``p`` in P, ``neg = min{d[n]: n in Q, d[n] > d[p]}``
  (strict); if none, ``max{d[n]: n in Q}``, or ``rowmin`` when Q is empty;
  ``l = max(margin + d[p] - neg, 0)`` (soft: ``softplus(d[p] - neg)``).
* hard: ``hp = max{d[p]: p in P}`` (``rowmin`` when P is empty),
  ``hn = min{d[n]: n in Q}`` (``rowmax`` when Q is empty);
  ``l = max(hp - hn + margin, 0)`` (soft: ``softplus(hp - hn)``).
* batch-all: every ``(p, n)``: ``l = max(margin + d[p] - d[n], 0)``, counted
  when ``l > 0`` (soft: ``softplus(d[p] - d[n])``, all counted).

The hinge's gradient is 1 where its argument is ``>= 0`` (TF's ``maximum``);
softplus' is the sigmoid, both evaluated without overflow. Ties (two equal
distances competing for a selection) go to the lowest column index (TF splits
the gradient among them; either is a valid subgradient). A row holding NaN gets
``rowloss[a] = NaN`` (the caller makes the loss and gradient NaN).

Entry points (``nch``: 1 serial in the caller's thread, else row chunks in
prange), all with one signature so that C/CUDA twins can mirror them::

    semihard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch)
    hard(...), batch_all(...)          # same arguments
    symmetrize(W, M, aux, metric, r, q, nch)     # S = W + W^T in place, row sums (angular)
    hard_grad(X, M, aux, sel, selc, metric, scale, G)   # sparse assembly (serial)
    gram(X, M)                                   # X X^T, serial (small batches; BLAS above)
    dense_grad(W, X, scale, G)                   # L2 assembly skipping zeros, serial (small batches)
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ._common import INLINE, JIT, PJIT, chunk
from ._math import fexp, fkey, flog1p, funkey, lit


def _keybuf(like, n):
    return np.empty(n, np.int64)


def _kbounds(like):
    return None

# Indices into ``prm``.
T_MARGIN = 0
T_METRIC = 1  # 0 L2, 1 squared-L2, 2 angular, 3 precomputed matrix
T_SOFT = 2  # 1: softplus instead of the hinge
T_CUT = 3  # L2/squared-L2: recompute d2 exactly where d2 < cut * (|x_a|^2 + |x_j|^2)

# Above this many positives per anchor, semi-hard mining sorts the anchor's
# negatives once and binary-searches them (O(N log N)) instead of scanning
# them once per positive (O(P N)).
SORT_MIN_POSITIVES = 24

BLOCK = 64  # tile edge of the in-place symmetrization


@njit(**INLINE)
def _axpy(c, x, y):
    """y += c x (a call of its own so that LLVM sees one simple loop)."""
    for k in range(y.shape[0]):
        y[k] += c * x[k]


@njit(**INLINE)
def _softplus_sig(z):
    """``(log(1 + exp(z)), sigmoid(z))`` without overflow; NaN stays NaN."""
    one = lit(z, 1.0)
    e = fexp(-abs(z))
    sp = flog1p(e)
    if z > lit(z, 0.0):
        sp = sp + z
        s = one / (one + e)
    else:
        s = e / (one + e)
    return sp, s


@overload(_keybuf, inline="always")
def _ov_keybuf(like, n):
    """An int buffer for ``fkey`` of ``like``'s float type (int32 / int64)."""
    if like == types.float32:
        return lambda like, n: np.empty(n, np.int32)
    return lambda like, n: np.empty(n, np.int64)


@overload(_kbounds, inline="always")
def _ov_kbounds(like):
    """(lowest, highest) key of the type: no number maps to either (they are NaNs)."""
    if like == types.float32:
        return lambda like: (np.int32(-(2**31)), np.int32(2**31 - 1))
    return lambda like: (np.int64(-(2**63)), np.int64(2**63 - 1))


@njit(**INLINE)
def _dist_row(M, aux, X, a, metric, cut, d, key):
    """Distance row ``d[j] = D[a, j]`` and its order keys ``key[j] = fkey(d[j])``
    (integer compares vectorize; float min/max reductions need ``nnan``), TF
    Addons' formulas:

    L2/squared-L2: ``d2 = (|x_a|^2 + |x_j|^2) - 2 G[a, j]``, ``max(d2, 0)``,
    square root for L2, diagonal 0. Where ``d2`` is below ``cut`` times the sum
    of squared norms the Gram formula has lost most of its digits (duplicate
    embeddings give ~1e-4 instead of 0 in float32): ``d2`` is then recomputed
    as ``sum((x_a - x_j)**2)``, exactly 0 for duplicates.
    Angular: ``max(1 - G[a, j] / (|x_a| |x_j|), 0)`` (norms floored as TF's
    ``l2_normalize``), diagonal as computed (TFA does not zero it).
    Precomputed: ``M[a, j]``.

    Returns the row's float64 sum (NaN iff the row holds a NaN).
    """
    N = M.shape[0]
    zero = lit(M[a, a], 0.0)
    one = lit(M[a, a], 1.0)
    if metric == 3:
        for j in range(N):
            d[j] = M[a, j]
    elif metric == 2:
        ra = aux[a]
        for j in range(N):
            v = one - M[a, j] * ra * aux[j]
            d[j] = zero if v < zero else v
    else:
        sa = aux[a]
        two = lit(M[a, a], 2.0)
        hits = 0
        for j in range(N):
            v = (sa + aux[j]) - two * M[a, j]
            d[j] = v
            hits += v < cut * (sa + aux[j])
        if hits == 0 or (hits == 1 and d[a] < cut * (sa + aux[a])):
            # no near pair (the usual case): one fused pass for root, key and sum
            d[a] = zero
            s = 0.0
            for j in range(N):
                v = d[j]
                v = zero if v <= zero else v
                if metric == 0:
                    v = math.sqrt(v)
                d[j] = v
                s += np.float64(v)
                key[j] = fkey(v)
            return s
        if hits > 0:
            D = X.shape[1]
            for j in range(N):
                if d[j] < cut * (sa + aux[j]) and j != a:
                    acc = zero
                    for k in range(D):
                        t = X[a, k] - X[j, k]
                        acc += t * t
                    d[j] = acc
        if metric == 0:
            for j in range(N):
                v = d[j]
                d[j] = zero if v <= zero else math.sqrt(v)
        else:
            for j in range(N):
                v = d[j]
                d[j] = zero if v < zero else v
        d[a] = zero
    s = 0.0
    for j in range(N):
        v = d[j]
        s += np.float64(v)
        key[j] = fkey(v)
    return s


@njit(**INLINE)
def _scale_row(w, d, metric):
    """Turn ``dL/dD[a, :]`` into the assembly coefficients (module docstring).
    Angular is left as is: ``symmetrize`` zeroes the clipped entries."""
    N = d.shape[0]
    zero = lit(d[0], 0.0)
    if metric == 0:
        for j in range(N):
            dj = d[j]
            w[j] = w[j] / dj if dj > zero else zero
    elif metric == 1:
        two = lit(d[0], 2.0)
        for j in range(N):
            w[j] = w[j] * two if d[j] > zero else zero


@njit(**INLINE)
def _first(key, k, lo):
    """First index j >= lo with key[j] == k (k is known to occur): an integer
    min-reduction over the whole array (vectorizes; an early-exit loop does not)."""
    n = key.shape[0]
    best = n
    for j in range(lo, n):
        best = min(best, j if key[j] == k else n)
    return best


@njit(**INLINE)
def _split(d, key, lab, a, nd, nk, nidx, pidx):
    """Negatives' distances/keys/columns into ``nd``/``nk``/``nidx``, positives'
    columns into ``pidx``; returns their counts."""
    N = d.shape[0]
    la = lab[a]
    kn = 0
    kp = 0
    for j in range(N):
        if lab[j] != la:
            nd[kn] = d[j]
            nk[kn] = key[j]
            nidx[kn] = j
            kn += 1
        elif j != a:
            pidx[kp] = j
            kp += 1
    return kn, kp


@njit(**INLINE)
def _hinge_or_soft(z_hinge, z_soft, soft):
    """(loss, dloss/dz): hinge ``max(z, 0)`` with gradient 1 where ``z >= 0``
    (TF's maximum), or softplus with the sigmoid."""
    zero = lit(z_hinge, 0.0)
    if soft:
        return _softplus_sig(z_soft)
    if z_hinge >= zero:
        return z_hinge, lit(z_hinge, 1.0)
    return zero, zero


@njit(**INLINE)
def _semihard_row(d, key, lab, a, margin, soft, w, want_grad, nd, nk, nidx, pidx, sk, order):
    N = d.shape[0]
    KLO, KHI = _kbounds(d[0])
    kn, kp = _split(d, key, lab, a, nd, nk, nidx, pidx)
    if kp == 0:
        return 0.0, 0.0
    nkk = nk[:kn]
    # negatives_inside: the largest negative distance; with no negative, TFA's
    # masked maximum gives the row's minimum (diagonal included)
    if kn > 0:
        m = KLO
        for k in range(kn):
            m = max(m, nkk[k])
        kin = m
        iin = nidx[_first(nkk, m, 0)]
    else:
        m = KHI
        for j in range(N):
            m = min(m, key[j])
        kin = m
        iin = _first(key, m, 0)
    inside = funkey(kin, d[0])
    # many positives: sort the negatives once and binary-search each positive
    use_sort = kn > 1 and kp > 128 * math.log2(kn)
    if use_sort:
        o = np.argsort(nkk, kind="mergesort")
        for k in range(kn):
            order[k] = o[k]
            sk[k] = nkk[o[k]]
    total = 0.0
    for t in range(kp):
        p = pidx[t]
        kap = key[p]
        dap = d[p]
        neg = inside
        ineg = iin
        if use_sort:
            lo = 0
            hi = kn
            while lo < hi:  # first sorted position with key > kap
                mid = (lo + hi) >> 1
                if sk[mid] > kap:
                    hi = mid
                else:
                    lo = mid + 1
            if lo < kn:
                neg = funkey(sk[lo], dap)
                ineg = nidx[order[lo]]
        elif kn > 0:
            # smallest negative key above kap: an integer select-reduction (vectorizes)
            m = KHI
            for k in range(kn):
                v = nkk[k]
                # a plain integer min of selected values: vectorizes (a
                # conditional float min would need nnan)
                m = min(m, v if v > kap else KHI)
            if m != KHI:
                neg = funkey(m, dap)
                if want_grad:
                    ineg = nidx[_first(nkk, m, 0)]
        l, g = _hinge_or_soft(margin + dap - neg, dap - neg, soft)
        total += np.float64(l)
        if want_grad:
            w[p] += g
            w[ineg] -= g
    return total, np.float64(kp)


@njit(**INLINE)
def _hard_row(d, key, lab, a, margin, soft):
    """-> (loss, j_pos, j_neg, dloss/dhp); TFA's fallbacks: no positive ->
    the row minimum, no negative -> the row maximum (diagonal included)."""
    N = d.shape[0]
    KLO, KHI = _kbounds(d[0])
    la = lab[a]
    pmax = KLO
    nmin = KHI
    rmin = KHI
    rmax = KLO
    npos = 0
    nneg = 0
    for j in range(N):
        v = key[j]
        same = lab[j] == la
        pos = same & (j != a)
        npos += pos
        nneg += not same
        pmax = max(pmax, v if pos else KLO)
        nmin = min(nmin, KHI if same else v)
        rmin = min(rmin, v)
        rmax = max(rmax, v)
    # the first column holding each selected value: integer min-reductions
    # (vectorize; an early-exit search does not)
    if npos > 0:
        ip = N
        for j in range(N):
            hit = (key[j] == pmax) & (lab[j] == la) & (j != a)
            ip = min(ip, j if hit else N)
    else:
        pmax = rmin
        ip = _first(key, rmin, 0)
    if nneg > 0:
        ineg = N
        for j in range(N):
            hit = (key[j] == nmin) & (lab[j] != la)
            ineg = min(ineg, j if hit else N)
    else:
        nmin = rmax
        ineg = _first(key, rmax, 0)
    hp = funkey(pmax, d[0])
    hn = funkey(nmin, d[0])
    l, g = _hinge_or_soft(hp - hn + margin, hp - hn, soft)
    return np.float64(l), ip, ineg, g


@njit(**INLINE)
def _batch_all_row(d, key, lab, a, margin, soft, w, want_grad, nd, nk, nidx, pidx, wn):
    zero = lit(d[0], 0.0)
    kn, kp = _split(d, key, lab, a, nd, nk, nidx, pidx)
    if kp == 0 or kn == 0:
        return 0.0, 0.0
    ndk = nd[:kn]
    wnk = wn[:kn]
    if want_grad:
        for k in range(kn):
            wnk[k] = zero
    total = 0.0
    count = 0.0
    for t in range(kp):
        p = pidx[t]
        dap = d[p]
        acc = zero
        if soft:
            gp = zero
            for k in range(kn):
                l, g = _softplus_sig(dap - ndk[k])
                acc += l
                gp += g
                if want_grad:
                    wnk[k] += g
            count += kn
            if want_grad:
                w[p] += gp
        else:
            base = margin + dap
            c = 0
            if want_grad:
                for k in range(kn):
                    z = base - ndk[k]
                    on = z > zero
                    acc += z if on else zero
                    c += on
                    wnk[k] += lit(z, 1.0) if on else zero
            else:
                for k in range(kn):
                    z = base - ndk[k]
                    on = z > zero
                    acc += z if on else zero
                    c += on
            count += c
            if want_grad:
                w[p] += lit(base, c)
        total += np.float64(acc)
    if want_grad:
        for k in range(kn):
            w[nidx[k]] -= wnk[k]
    return total, count


@njit(**INLINE)
def _dense_rows(mode, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi):
    N = M.shape[0]
    margin = prm[T_MARGIN]
    metric = int(prm[T_METRIC])
    soft = prm[T_SOFT] != 0
    cut = prm[T_CUT]
    d = np.empty(N, M.dtype)
    nd = np.empty(N, M.dtype)
    wn = np.empty(N if mode == 2 else 0, M.dtype)
    key = _keybuf(M[0, 0], N)
    nk = _keybuf(M[0, 0], N)
    sk = _keybuf(M[0, 0], N)
    nidx = np.empty(N, np.int64)
    pidx = np.empty(N, np.int64)
    order = np.empty(N, np.int64)
    zero = lit(M[0, 0], 0.0)
    for a in range(lo, hi):
        s = _dist_row(M, aux, X, a, metric, cut, d, key)
        w = W[a]
        if want_grad:
            for j in range(N):
                w[j] = zero
        if s != s:
            rowloss[a] = np.nan
            rowcnt[a] = 0.0
            continue
        if mode == 0:
            tot, cnt = _semihard_row(d, key, lab, a, margin, soft, w, want_grad, nd, nk, nidx, pidx, sk, order)
        else:
            tot, cnt = _batch_all_row(d, key, lab, a, margin, soft, w, want_grad, nd, nk, nidx, pidx, wn)
        rowloss[a] = tot
        rowcnt[a] = cnt
        if want_grad:
            _scale_row(w, d, metric)
    return 0


@njit(**JIT)
def semihard_rows(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi):
    return _dense_rows(0, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi)


@njit(**PJIT)
def semihard_par(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, nch):
    for c in prange(nch):
        lo, hi = chunk(c, nch, M.shape[0])
        _dense_rows(0, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi)
    return 0


@njit(**JIT)
def batch_all_rows(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi):
    return _dense_rows(2, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi)


@njit(**PJIT)
def batch_all_par(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, nch):
    for c in prange(nch):
        lo, hi = chunk(c, nch, M.shape[0])
        _dense_rows(2, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, lo, hi)
    return 0


@njit(**INLINE)
def _hard_rows_impl(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, lo, hi):
    N = M.shape[0]
    margin = prm[T_MARGIN]
    metric = int(prm[T_METRIC])
    soft = prm[T_SOFT] != 0
    cut = prm[T_CUT]
    d = np.empty(N, M.dtype)
    key = _keybuf(M[0, 0], N)
    zero = lit(M[0, 0], 0.0)
    two = lit(M[0, 0], 2.0)
    for a in range(lo, hi):
        s = _dist_row(M, aux, X, a, metric, cut, d, key)
        rowcnt[a] = 1.0
        if s != s:
            rowloss[a] = np.nan
            sel[a, 0] = a
            sel[a, 1] = a
            selc[a, 0] = zero
            selc[a, 1] = zero
            continue
        tot, ip, ineg, g = _hard_row(d, key, lab, a, margin, soft)
        rowloss[a] = tot
        sel[a, 0] = ip
        sel[a, 1] = ineg
        # the metric factor of each selected entry (see _scale_row)
        gp = g
        gn = g
        if metric == 0:
            gp = g / d[ip] if d[ip] > zero else zero
            gn = g / d[ineg] if d[ineg] > zero else zero
        elif metric == 1:
            gp = g * two if d[ip] > zero else zero
            gn = g * two if d[ineg] > zero else zero
        if ip == ineg:  # both fallbacks on one entry: the terms cancel exactly
            gp = zero
            gn = zero
        selc[a, 0] = gp
        selc[a, 1] = gn
    return 0


@njit(**JIT)
def hard_rows(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, lo, hi):
    return _hard_rows_impl(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, lo, hi)


@njit(**PJIT)
def hard_par(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, nch):
    for c in prange(nch):
        lo, hi = chunk(c, nch, M.shape[0])
        _hard_rows_impl(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, lo, hi)
    return 0


def semihard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch):
    """Semi-hard mining, rows of ``W`` written (module docstring)."""
    if nch == 1:
        return semihard_rows(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, 0, M.shape[0])
    return semihard_par(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, nch)


def batch_all(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch):
    """All valid triplets, rows of ``W`` written (module docstring)."""
    if nch == 1:
        return batch_all_rows(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, 0, M.shape[0])
    return batch_all_par(M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, nch)


def hard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch):
    """Hard mining: ``sel``/``selc`` written (``W`` unused)."""
    if nch == 1:
        return hard_rows(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, 0, M.shape[0])
    return hard_par(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, nch)


# ----------------------------------------------------------------------------
# Gradient assembly
# ----------------------------------------------------------------------------


@njit(**INLINE)
def _sym_tiles(W, bi, nb, N):
    i0 = bi * BLOCK
    i1 = min(N, i0 + BLOCK)
    for bj in range(bi, nb):
        j0 = bj * BLOCK
        j1 = min(N, j0 + BLOCK)
        for i in range(i0, i1):
            js = max(j0, i)
            for j in range(js, j1):
                s = W[i, j] + W[j, i]
                W[i, j] = s
                W[j, i] = s


@njit(**INLINE)
def _row_sums(W, M, aux, metric, r, q, i):
    """r[i] = sum_j S[i, j]; angular: S[i, j] zeroed where 1 - cos < 0 (clipped,
    TF's maximum gives those no gradient) and q[i] = sum_j S[i, j] cos[i, j]."""
    N = W.shape[0]
    zero = lit(W[0, 0], 0.0)
    one = lit(W[0, 0], 1.0)
    if metric == 2:
        ai = aux[i]
        acc = 0.0
        accq = 0.0
        for j in range(N):
            c = M[i, j] * ai * aux[j]
            s = W[i, j] if one - c >= zero else zero
            W[i, j] = s
            acc += np.float64(s)
            accq += np.float64(s * c)
        r[i] = acc
        q[i] = accq
    else:
        acc = 0.0
        for j in range(N):
            acc += np.float64(W[i, j])
        r[i] = acc


@njit(**JIT)
def symmetrize_serial(W, M, aux, metric, r, q):
    N = W.shape[0]
    nb = (N + BLOCK - 1) // BLOCK
    for bi in range(nb):
        _sym_tiles(W, bi, nb, N)
    for i in range(N):
        _row_sums(W, M, aux, metric, r, q, i)
    return 0


@njit(**PJIT)
def symmetrize_par(W, M, aux, metric, r, q):
    N = W.shape[0]
    nb = (N + BLOCK - 1) // BLOCK
    # tile rows in a zig-zag order so that both threads get similar work
    for t in prange(nb):
        bi = t // 2 if t % 2 == 0 else nb - 1 - t // 2
        _sym_tiles(W, bi, nb, N)
    for i in prange(N):
        _row_sums(W, M, aux, metric, r, q, i)
    return 0


def symmetrize(W, M, aux, metric, r, q, nch):
    """``W <- W + W^T`` in place (angular: entries of clipped distances zeroed),
    ``r`` its row sums, ``q`` (angular) ``sum_j S[i, j] cos[i, j]``; float64."""
    if nch == 1:
        return symmetrize_serial(W, M, aux, metric, r, q)
    return symmetrize_par(W, M, aux, metric, r, q)


@njit(**JIT)
def hard_grad(X, M, aux, sel, selc, metric, scale, G):
    """Sparse assembly for hard mining (serial: 2 entries per anchor, O(N D)).

    L2/squared-L2: ``G`` (N, D) = sum over entries ``c (x_a - x_j)`` into row
    a and its negative into row j, times ``scale``. Angular: ``G`` first holds
    dL/dn (n the normalized rows, ``-c n_j`` into row a, ``-c n_a`` into row
    j), then the Jacobian of the normalization is applied per row. Precomputed:
    ``G`` is (N, N), ``+c`` at (a, j_pos), ``-c`` at (a, j_neg).
    """
    N = sel.shape[0]
    zero = lit(scale, 0.0)
    for i in range(G.shape[0]):
        for k in range(G.shape[1]):
            G[i, k] = zero
    if metric == 3:
        for a in range(N):
            G[a, sel[a, 0]] += selc[a, 0] * scale
            G[a, sel[a, 1]] -= selc[a, 1] * scale
        return 0
    for a in range(N):
        xa = X[a]
        ga = G[a]
        for e in range(2):
            j = sel[a, e]
            c = selc[a, e] * scale
            if e == 1:
                c = -c
            if c == zero or j == a:
                continue
            xj = X[j]
            gj = G[j]
            if metric == 2:
                ra = aux[a]
                rj = aux[j]
                cos = M[a, j] * ra * rj
                if lit(scale, 1.0) - cos < zero:
                    continue
                _axpy(-c * rj, xj, ga)
                _axpy(-c * ra, xa, gj)
            else:
                _axpy(c, xa, ga)
                _axpy(-c, xj, ga)
                _axpy(c, xj, gj)
                _axpy(-c, xa, gj)
    if metric == 2:
        _normalize_jacobian(X, aux, G)
    return 0


@njit(**INLINE)
def _normalize_jacobian(X, aux, G):
    """G[i] (dL/dn_i) -> dL/dx_i = r_i (u - n_i (n_i . u)), n_i = r_i x_i; the
    projection only where |x_i|^2 >= 1e-12 (TF's l2_normalize floors the norm)."""
    N, D = G.shape
    for i in range(N):
        ri = aux[i]
        proj = ri <= lit(ri, 1e6)
        dot = lit(ri, 0.0)
        if proj:
            for k in range(D):
                dot += X[i, k] * ri * G[i, k]
        for k in range(D):
            if proj:
                G[i, k] = ri * (G[i, k] - dot * X[i, k] * ri)
            else:
                G[i, k] = ri * G[i, k]


@njit(**JIT)
def normalize_jacobian(X, aux, G):
    _normalize_jacobian(X, aux, G)
    return 0


# ----------------------------------------------------------------------------
# Small batches: everything serial in the calling thread. A BLAS product of
# 256 x 128 wakes OpenBLAS' thread pool, and when the cores are busy (other
# processes, TF's spinning pools) that wait costs milliseconds for ~0.1 ms of work.
# ----------------------------------------------------------------------------


@njit(**JIT)
def gram(X, M):
    """``M = X X^T`` (serial; the upper triangle is computed and mirrored, so
    ``M`` is exactly symmetric). Four columns at a time share the loads of x_i."""
    N, D = X.shape
    zero = lit(M[0, 0], 0.0)
    for i in range(N):
        xi = X[i]
        j = i
        while j + 4 <= N:
            x0 = X[j]
            x1 = X[j + 1]
            x2 = X[j + 2]
            x3 = X[j + 3]
            a0 = zero
            a1 = zero
            a2 = zero
            a3 = zero
            for k in range(D):
                v = xi[k]
                a0 += v * x0[k]
                a1 += v * x1[k]
                a2 += v * x2[k]
                a3 += v * x3[k]
            M[i, j] = a0
            M[i, j + 1] = a1
            M[i, j + 2] = a2
            M[i, j + 3] = a3
            j += 4
        while j < N:
            xj = X[j]
            acc = zero
            for k in range(D):
                acc += xi[k] * xj[k]
            M[i, j] = acc
            j += 1
        for j in range(i):
            M[i, j] = M[j, i]
    return 0


@njit(**JIT)
def dense_grad(W, X, scale, G):
    """L2/squared-L2 assembly from the coefficient matrix (serial), reading W
    row by row and skipping its zeros (semi-hard rows hold ~2 entries per
    positive): ``g_a += c (x_a - x_j)``, ``g_j += c (x_j - x_a)`` for each
    entry ``c = scale W[a, j]``; written as ``g_a += (sum c) x_a - sum c x_j``
    plus ``g_j += c x_j - c x_a`` (axpy loops, which vectorize)."""
    N, D = X.shape
    zero = lit(scale, 0.0)
    idx = np.empty(N, np.int64)
    for i in range(N):
        for k in range(D):
            G[i, k] = zero
    for a in range(N):
        wa = W[a]
        m = 0
        for j in range(N):
            if wa[j] != zero:
                idx[m] = j
                m += 1
        rs = zero
        ga = G[a]
        xa = X[a]
        for t in range(m):
            j = idx[t]
            if j == a:
                continue
            c = wa[j] * scale
            rs += c
            _axpy(-c, X[j], ga)
            gj = G[j]
            _axpy(c, X[j], gj)
            _axpy(-c, xa, gj)
        _axpy(rs, xa, ga)
    return 0
