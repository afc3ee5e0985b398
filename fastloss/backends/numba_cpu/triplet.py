"""Triplet losses on the Numba CPU backend: the mining runs inside the kernel.

Inputs are an ``(N, N)`` matrix ``M`` (the Gram matrix ``X X^T`` of the
embeddings, from ``gram``, for the metrics computed here; the distance matrix
itself for ``"precomputed"``/callables), ``aux`` (squared norms for L2 and
squared-L2, ``1/sqrt(max(|x|^2, 1e-12))`` for angular), the embeddings ``X``
(``(N, D)``, read only to recompute near-duplicate distances exactly), int64
labels (compared as int32, ``_labels32``) and the parameter vector ``prm``
(layout ``T_*`` below). Each anchor row
``a`` is handled by one thread, in its own scratch buffers (O(N) per thread;
nothing of size N^2 x N ever exists):

1. its distance row ``d[j]`` is built from ``M`` (TF Addons' formulas, see
   ``_dist_row``);
2. the row is mined (semi-hard: each positive's semi-hard negative by one
   integer pass over the row's negative keys, or a binary search of them
   sorted when the positives are many; hard; or all triplets), the row's loss
   sum and count go to ``rowloss[a]``/``rowcnt[a]`` (float64);
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
``rowloss[a] = NaN`` (the caller makes the loss and gradient NaN). Serial and
parallel runs give identical results (rows are independent; the Gram tiles are
the same computations in either order).

Entry points (``nch``: 1 serial in the caller's thread, else row chunks in
prange), all with one signature so that C/CUDA twins can mirror them::

    semihard(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, want_grad, nch)
    hard(...), batch_all(...)          # same arguments
    symmetrize(W, M, aux, metric, r, q, nch)     # S = W + W^T in place, row sums (angular)
    hard_grad(X, M, aux, sel, selc, metric, scale, G)   # sparse assembly (serial; L2 gathered per row)
    gram(X, M, nch)                              # X X^T: 4 x 4 tiles, serial or bands in parallel
    dense_grad(W, X, scale, G)                   # L2 assembly from W's nonzero entries (serial)
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..._config import FASTMATH
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
def _d2_pass(M, aux, a, sa, cut, d, key, root):
    """The fused pass of ``_dist_row`` (``root`` a compile-time constant at
    each call: one straight loop per metric)."""
    N = M.shape[0]
    zero = lit(sa, 0.0)
    one = lit(sa, 1.0)
    two = lit(sa, 2.0)
    hits = zero
    bad = False
    for j in range(N):
        t = sa + aux[j]
        v = t - two * M[a, j]
        hits += one if v < cut * t else zero
        v = zero if v <= zero else v
        if root:
            v = math.sqrt(v)
        d[j] = v
        key[j] = fkey(v)
        bad |= v != v
    return hits, bad


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

    Returns True iff the row holds a NaN.
    """
    N = M.shape[0]
    zero = lit(M[a, a], 0.0)
    one = lit(M[a, a], 1.0)
    bad = False
    if metric == 3:
        for j in range(N):
            v = M[a, j]
            d[j] = v
            key[j] = fkey(v)
            bad |= v != v
        return bad
    if metric == 2:
        ra = aux[a]
        for j in range(N):
            v = one - M[a, j] * ra * aux[j]
            v = zero if v < zero else v
            d[j] = v
            key[j] = fkey(v)
            bad |= v != v
        return bad
    sa = aux[a]
    two = lit(M[a, a], 2.0)
    # one fused pass (the usual case: no near pair but the diagonal), counting
    # the near pairs on the way (in a float of M's width: same-width lanes
    # vectorize; an int64 count here doubled the pass' time)
    if metric == 0:
        hits, bad = _d2_pass(M, aux, a, sa, cut, d, key, True)
    else:
        hits, bad = _d2_pass(M, aux, a, sa, cut, d, key, False)
    own = ((sa + sa) - two * M[a, a]) < cut * (sa + sa)
    if hits == (one if own else zero):
        d[a] = zero
        key[a] = fkey(zero)
        return bad
    return _dist_near(M, aux, X, a, metric, cut, d, key)


@njit(fastmath=FASTMATH, error_model="numpy", nogil=True)
def _dist_near(M, aux, X, a, metric, cut, d, key):
    """``_dist_row`` for a row with near pairs: their d2 recomputed exactly from
    the embeddings, then the root and keys again. A function of its own (not
    inlined): with this loop nest inlined beside it, LLVM's code for the fused
    pass ran 3x slower."""
    N = M.shape[0]
    zero = lit(M[a, a], 0.0)
    two = lit(M[a, a], 2.0)
    sa = aux[a]
    D = X.shape[1]
    for j in range(N):
        t = sa + aux[j]
        v = t - two * M[a, j]
        if v < cut * t and j != a:
            acc = zero
            for k in range(D):
                u = X[a, k] - X[j, k]
                acc += u * u
            v = acc
        v = zero if v <= zero else v
        if metric == 0:
            v = math.sqrt(v)
        d[j] = v
    d[a] = zero
    bad = False
    for j in range(N):
        v = d[j]
        key[j] = fkey(v)
        bad |= v != v
    return bad


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
def _factor(dj, metric):
    """The metric's factor of one entry (see ``_scale_row``)."""
    zero = lit(dj, 0.0)
    if metric == 0:
        return lit(dj, 1.0) / dj if dj > zero else zero
    if metric == 1:
        return lit(dj, 2.0) if dj > zero else zero
    return lit(dj, 1.0)


@njit(**INLINE)
def _first(key, k, lo):
    """First index j >= lo with key[j] == k (k is known to occur): an integer
    min-reduction over the whole array (vectorizes; an early-exit loop does not)
    in int32 lanes (twice as many per vector as int64; N < 2**31 always: the
    (N, N) matrix would not fit in memory otherwise)."""
    n = key.shape[0]
    n32 = np.int32(n)
    best = n32
    for j in range(lo, n):
        best = min(best, np.int32(j) if key[j] == k else n32)
    return np.int64(best)


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
def _labels32(lab):
    """The labels as int32 with the same equalities (their own values when
    they fit, else their ranks): label compares then run in 32-bit lanes
    beside the float32 keys instead of 64-bit ones."""
    N = lab.shape[0]
    out = np.empty(N, np.int32)
    if N == 0:
        return out
    lo = lab[0]
    hi = lab[0]
    for j in range(N):
        lo = min(lo, lab[j])
        hi = max(hi, lab[j])
    if lo >= -(2**31) and hi < 2**31:
        for j in range(N):
            out[j] = np.int32(lab[j])
        return out
    o = np.argsort(lab, kind="mergesort")
    r = 0
    out[o[0]] = 0
    for t in range(1, N):
        if lab[o[t]] != lab[o[t - 1]]:
            r += 1
        out[o[t]] = np.int32(r)
    return out


@njit(**INLINE)
def _classes(lab, perm, cstart, cend):
    """Members of each anchor's class: ``perm`` the columns sorted by label
    (stable: ascending column within a class), ``perm[cstart[a]:cend[a]]`` the
    columns labelled ``lab[a]`` (once per call: O(N log N), instead of a scan
    of the whole label row per anchor)."""
    N = lab.shape[0]
    o = np.argsort(lab, kind="mergesort")
    t = 0
    while t < N:
        u = t + 1
        while u < N and lab[o[u]] == lab[o[t]]:
            u += 1
        for v in range(t, u):
            perm[v] = o[v]
            cstart[o[v]] = t
            cend[o[v]] = u
        t = u


@njit(**INLINE)
def _semihard_row(d, key, lab, a, margin, soft, metric, w, want_grad, nk, sk, order, perm, cs, ce):
    N = d.shape[0]
    KLO, KHI = _kbounds(d[0])
    la = lab[a]
    kp = ce - cs - 1  # positives: the anchor's class but itself
    if kp == 0:
        return 0.0, 0.0
    # the negatives' keys in place, KHI elsewhere (no negative has that key: it
    # is a NaN's); the number of negatives and the largest negative key
    kn = 0
    m = KLO
    for j in range(N):
        v = key[j]
        neg = lab[j] != la
        nk[j] = v if neg else KHI
        kn += 1 if neg else 0
        m = max(m, v if neg else KLO)
    # negatives_inside: the largest negative distance; with no negative, TFA's
    # masked maximum gives the row's minimum (diagonal included)
    if kn > 0:
        kin = m
        iin = _first(nk, m, 0)
    else:
        m = KHI
        for j in range(N):
            m = min(m, key[j])
        kin = m
        iin = _first(key, m, 0)
    inside = funkey(kin, d[0])
    # many positives (more than 128 log2 of the negatives): sort the row's
    # negative keys once and binary-search each positive, O(N log N) instead of
    # O(P N) (the KHI entries sort last and count as "none above")
    use_sort = kn > 1 and kp > 128 * math.log2(kn)
    if use_sort:
        o = np.argsort(nk, kind="mergesort")
        for k in range(N):
            order[k] = o[k]
            sk[k] = nk[o[k]]
    total = 0.0
    for t in range(cs, ce):
        p = perm[t]
        if p == a:
            continue
        kap = key[p]
        dap = d[p]
        neg = inside
        ineg = iin
        if use_sort:
            lo = 0
            hi = N
            while lo < hi:  # first sorted position with key > kap
                mid = (lo + hi) >> 1
                if sk[mid] > kap:
                    hi = mid
                else:
                    lo = mid + 1
            if lo < N and sk[lo] != KHI:
                neg = funkey(sk[lo], dap)
                ineg = order[lo]
        elif kn > 0:
            # smallest negative key above kap: a plain integer min of selected
            # values over the whole row (vectorizes; a conditional float min
            # would need nnan)
            m = KHI
            for j in range(N):
                v = nk[j]
                m = min(m, v if v > kap else KHI)
            if m != KHI:
                neg = funkey(m, dap)
                if want_grad:
                    ineg = _first(nk, m, 0)
        l, g = _hinge_or_soft(margin + dap - neg, dap - neg, soft)
        total += np.float64(l)
        if want_grad:
            # the metric's factor applied per entry (what _scale_row does for a
            # whole row): only ~2 kp entries of the row are touched
            w[p] += g * _factor(dap, metric)
            w[ineg] -= g * _factor(d[ineg], metric)
    return total, np.float64(kp)


@njit(**INLINE)
def _hard_row(d, key, lab, a, margin, soft):
    """-> (loss, j_pos, j_neg, dloss/dhp); TFA's fallbacks: no positive ->
    the row minimum, no negative -> the row maximum (diagonal included).
    ``lab`` int32 (``_labels32``): every lane of the passes is 32 bits wide."""
    N = d.shape[0]
    KLO, KHI = _kbounds(d[0])
    la = lab[a]
    # the anchor's own entry out of the positives' maximum: its key set to KLO
    # (a NaN's key: no distance has it) for the two passes below
    ka = key[a]
    key[a] = KLO
    pmax = KLO
    nmin = KHI
    for j in range(N):
        v = key[j]
        same = lab[j] == la
        pmax = max(pmax, v if same else KLO)
        nmin = min(nmin, KHI if same else v)
    # no count needed: no distance has the key KLO or KHI (NaNs' keys; a NaN
    # row never gets here), so they stay exactly when there is no positive /
    # no negative
    npos = 0 if pmax == KLO else 1
    nneg = 0 if nmin == KHI else 1
    # the first column holding each selected value: integer min-reductions
    # (vectorize; an early-exit search does not)
    n32 = np.int32(N)
    ip = N
    if npos > 0:
        ip32 = n32
        for j in range(N):
            hit = (key[j] == pmax) & (lab[j] == la)
            ip32 = min(ip32, np.int32(j) if hit else n32)
        ip = np.int64(ip32)
    key[a] = ka
    if npos == 0:
        m = KHI
        for j in range(N):
            m = min(m, key[j])
        pmax = m
        ip = _first(key, m, 0)
    if nneg > 0:
        in32 = n32
        for j in range(N):
            hit = (key[j] == nmin) & (lab[j] != la)
            in32 = min(in32, np.int32(j) if hit else n32)
        ineg = np.int64(in32)
    else:
        m = KLO
        for j in range(N):
            m = max(m, key[j])
        nmin = m
        ineg = _first(key, m, 0)
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
    key = _keybuf(M[0, 0], N)
    nk = _keybuf(M[0, 0], N)
    lab32 = _labels32(lab)
    if mode == 0:
        sk = _keybuf(M[0, 0], N)
        order = np.empty(N, np.int64)
        perm = np.empty(N, np.int64)
        cstart = np.empty(N, np.int64)
        cend = np.empty(N, np.int64)
        _classes(lab32, perm, cstart, cend)
    else:
        nd = np.empty(N, M.dtype)
        wn = np.empty(N, M.dtype)
        nidx = np.empty(N, np.int64)
        pidx = np.empty(N, np.int64)
    zero = lit(M[0, 0], 0.0)
    for a in range(lo, hi):
        bad = _dist_row(M, aux, X, a, metric, cut, d, key)
        w = W[a]
        if want_grad:
            for j in range(N):
                w[j] = zero
        if bad:
            rowloss[a] = np.nan
            rowcnt[a] = 0.0
            continue
        if mode == 0:
            tot, cnt = _semihard_row(
                d, key, lab32, a, margin, soft, metric, w, want_grad, nk, sk, order, perm, cstart[a], cend[a]
            )
        else:
            tot, cnt = _batch_all_row(d, key, lab32, a, margin, soft, w, want_grad, nd, nk, nidx, pidx, wn)
        rowloss[a] = tot
        rowcnt[a] = cnt
        if want_grad and mode != 0:
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
    lab32 = _labels32(lab)
    zero = lit(M[0, 0], 0.0)
    two = lit(M[0, 0], 2.0)
    for a in range(lo, hi):
        bad = _dist_row(M, aux, X, a, metric, cut, d, key)
        rowcnt[a] = 1.0
        if bad:
            rowloss[a] = np.nan
            sel[a, 0] = a
            sel[a, 1] = a
            selc[a, 0] = zero
            selc[a, 1] = zero
            continue
        tot, ip, ineg, g = _hard_row(d, key, lab32, a, margin, soft)
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
    if metric < 2:
        _hard_grad_l2(X, sel, selc, scale, G)
        return 0
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
def _hard_grad_l2(X, sel, selc, scale, G):
    """L2/squared-L2 assembly of hard mining, gathered per row: with the
    entries ``(a, j, c)`` (``+selc`` at the positive, ``-selc`` at the
    negative, times ``scale``; none where ``c == 0`` or ``j == a``),
    ``g_i = (sum of the c touching row i) x_i - sum_{a == i} c x_j -
    sum_{j == i} c x_a``. The entries pointing at row i are listed first
    (a counting sort by column); each row of G is then written once, in cache,
    instead of four scattered row updates per entry."""
    N, D = X.shape
    zero = lit(scale, 0.0)
    cnt = np.zeros(N + 1, np.int64)
    for a in range(N):
        for e in range(2):
            j = sel[a, e]
            if selc[a, e] != zero and j != a:
                cnt[j + 1] += 1
    for i in range(N):
        cnt[i + 1] += cnt[i]
    src = np.empty(cnt[N], np.int64)
    val = np.empty(cnt[N], X.dtype)
    pos = cnt[:N].copy()
    for a in range(N):
        for e in range(2):
            j = sel[a, e]
            c = selc[a, e] * scale
            if c != zero and j != a:
                src[pos[j]] = a
                val[pos[j]] = c if e == 0 else -c
                pos[j] += 1
    for i in range(N):
        gi = G[i]
        r = zero
        for e in range(2):
            j = sel[i, e]
            c = selc[i, e] * scale
            if c != zero and j != i:
                r += c if e == 0 else -c
        for t in range(cnt[i], cnt[i + 1]):
            r += val[t]
        xi = X[i]
        for k in range(D):
            gi[k] = r * xi[k]
        for e in range(2):
            j = sel[i, e]
            c = selc[i, e] * scale
            if c != zero and j != i:
                _axpy(-c if e == 0 else c, X[j], gi)
        for t in range(cnt[i], cnt[i + 1]):
            _axpy(-val[t], X[src[t]], gi)


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


@njit(**INLINE)
def _gram_band(X, M, i, n4):
    """Rows i..i+3 of ``M = X X^T`` from the diagonal on (and their mirror
    image): tiles of 4 rows x 4 columns, 16 independent dot products whose
    loads of the 8 rows are shared (0.5 loads per multiply-add instead of
    1.25 for one row against four columns)."""
    N, D = X.shape
    zero = lit(M[0, 0], 0.0)
    x0 = X[i]
    x1 = X[i + 1]
    x2 = X[i + 2]
    x3 = X[i + 3]
    for j in range(i, n4, 4):
        y0 = X[j]
        y1 = X[j + 1]
        y2 = X[j + 2]
        y3 = X[j + 3]
        a00 = a01 = a02 = a03 = zero
        a10 = a11 = a12 = a13 = zero
        a20 = a21 = a22 = a23 = zero
        a30 = a31 = a32 = a33 = zero
        for k in range(D):
            u0 = x0[k]
            u1 = x1[k]
            u2 = x2[k]
            u3 = x3[k]
            v0 = y0[k]
            v1 = y1[k]
            v2 = y2[k]
            v3 = y3[k]
            a00 += u0 * v0
            a01 += u0 * v1
            a02 += u0 * v2
            a03 += u0 * v3
            a10 += u1 * v0
            a11 += u1 * v1
            a12 += u1 * v2
            a13 += u1 * v3
            a20 += u2 * v0
            a21 += u2 * v1
            a22 += u2 * v2
            a23 += u2 * v3
            a30 += u3 * v0
            a31 += u3 * v1
            a32 += u3 * v2
            a33 += u3 * v3
        # upper triangle and its mirror image (M exactly symmetric); on a
        # diagonal tile (j == i) only the entries on and above the diagonal
        M[i, j] = a00
        M[i, j + 1] = a01
        M[i, j + 2] = a02
        M[i, j + 3] = a03
        M[i + 1, j + 1] = a11
        M[i + 1, j + 2] = a12
        M[i + 1, j + 3] = a13
        M[i + 2, j + 2] = a22
        M[i + 2, j + 3] = a23
        M[i + 3, j + 3] = a33
        M[j + 1, i] = a01
        M[j + 2, i] = a02
        M[j + 3, i] = a03
        M[j + 2, i + 1] = a12
        M[j + 3, i + 1] = a13
        M[j + 3, i + 2] = a23
        if j > i:
            M[i + 1, j] = a10
            M[i + 2, j] = a20
            M[i + 2, j + 1] = a21
            M[i + 3, j] = a30
            M[i + 3, j + 1] = a31
            M[i + 3, j + 2] = a32
            M[j, i] = a00
            M[j, i + 1] = a10
            M[j, i + 2] = a20
            M[j, i + 3] = a30
            M[j + 1, i + 1] = a11
            M[j + 1, i + 2] = a21
            M[j + 1, i + 3] = a31
            M[j + 2, i + 2] = a22
            M[j + 2, i + 3] = a32
            M[j + 3, i + 3] = a33
    # the last N % 4 columns against these four rows
    for j in range(n4, N):
        y = X[j]
        a0 = a1 = a2 = a3 = zero
        for k in range(D):
            v = y[k]
            a0 += x0[k] * v
            a1 += x1[k] * v
            a2 += x2[k] * v
            a3 += x3[k] * v
        M[i, j] = a0
        M[i + 1, j] = a1
        M[i + 2, j] = a2
        M[i + 3, j] = a3
        M[j, i] = a0
        M[j, i + 1] = a1
        M[j, i + 2] = a2
        M[j, i + 3] = a3


@njit(**INLINE)
def _gram_tail(X, M, n4):
    N, D = X.shape
    zero = lit(M[0, 0], 0.0)
    for i in range(n4, N):  # the last N % 4 rows: their upper triangle
        xi = X[i]
        for j in range(i, N):
            xj = X[j]
            acc = zero
            for k in range(D):
                acc += xi[k] * xj[k]
            M[i, j] = acc
            M[j, i] = acc


@njit(**JIT)
def gram_serial(X, M):
    N = X.shape[0]
    n4 = N - N % 4
    for i in range(0, n4, 4):
        _gram_band(X, M, i, n4)
    _gram_tail(X, M, n4)
    return 0


@njit(**PJIT)
def gram_par(X, M):
    N = X.shape[0]
    n4 = N - N % 4
    nb = n4 // 4
    # bands in a zig-zag order (band b has nb - b tiles): prange's contiguous
    # chunks then get similar work
    for t in prange(nb):
        b = t // 2 if t % 2 == 0 else nb - 1 - t // 2
        _gram_band(X, M, 4 * b, n4)
    _gram_tail(X, M, n4)
    return 0


def gram(X, M, nch):
    """``M = X X^T``: each entry of the upper triangle computed once and written
    to both places (``M`` exactly symmetric); ``nch`` 1: serial, else bands of
    four rows in parallel."""
    if nch == 1:
        return gram_serial(X, M)
    return gram_par(X, M)


@njit(**INLINE)
def _pair(c, X, G, a, j):
    """One coefficient's two terms: ``g_a += c (x_a - x_j)``, ``g_j -= c (x_a - x_j)``
    (one loop: the four rows are read once)."""
    for k in range(G.shape[1]):
        u = c * (X[a, k] - X[j, k])
        G[a, k] += u
        G[j, k] -= u


@njit(**JIT)
def dense_grad(W, X, scale, G):
    """L2/squared-L2 assembly from the coefficient matrix (serial), reading W
    row by row and skipping its zeros (semi-hard rows hold ~2 entries per
    positive): ``g_a += c (x_a - x_j)``, ``g_j -= c (x_a - x_j)`` for each
    entry ``c = scale W[a, j]``."""
    N, D = X.shape
    zero = lit(scale, 0.0)
    idx = np.empty(N, np.int64)
    for i in range(N):
        for k in range(D):
            G[i, k] = zero
    for a in range(N):
        wa = W[a]
        m = 0
        for j in range(N):  # the nonzero columns, branch-free
            idx[m] = j
            m += wa[j] != zero
        for t in range(m):
            j = idx[t]
            if j != a:
                _pair(wa[j] * scale, X, G, a, j)
    return 0
