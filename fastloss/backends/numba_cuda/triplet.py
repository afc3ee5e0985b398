"""Triplet losses on Numba CUDA: Gram product, distances, mining and gradient
on the device (the semantics of ``backends/numba_cpu/triplet.py``, whose
docstring states the TF Addons rules; the host path is ``fastloss/_triplet.py``).

Per call (device arrays throughout; NumPy inputs under ``use_backend("cuda")``
are copied in, and the gradient back):

1. ``M = X X^T`` by a register-tiled product (``_make_gram``: a block of
   ``TT x TT`` threads computes a ``TT*RR`` square tile, each thread ``RR x
   RR`` entries, ``BK`` columns of X staged in shared memory at a time), from
   the tiles on and above the diagonal only, each written to both places: M
   is exactly symmetric.
2. squared norms (or angular's reciprocal norms) from M's diagonal, then the
   distances (TF Addons' formulas, ``_dist``; near-duplicate pairs, whose Gram
   distance has lost its digits, recomputed from the embeddings; diagonal 0).
   Hard mining reads each distance once and computes it as it goes; the dense
   modes read rows many times and get the matrix ``D`` first (L2 and
   squared-L2 over M; angular keeps M for its gradient). "precomputed" reads
   the caller's matrix (never written).
3. mining, one block per anchor row (grid-stride over rows), ``TPB`` threads
   over the row's columns, arg-min/max reductions in shared memory (ties to the
   lowest column, as on the CPU): ``rowloss``/``rowcnt`` (float64) and either
   the coefficient row ``W[a, :]`` (semi-hard, batch-all) or ``sel``/``selc``
   (hard).
4. the loss: ``rowloss``/``rowcnt`` summed on the device and the two sums
   copied back (the one synchronization the result needs: the gradient's scale
   is the mean's divisor).
5. gradient: hard mining scatters its two entries per anchor with atomics
   (O(N D)); the dense modes form ``S = W + W^T`` (over D's buffer, no longer
   needed), its row sums, and ``G = scale (r X - S X)`` by the same tiled
   product (angular: on the normalized rows, then the normalization's Jacobian).

Threads per block (``TPB``) and the product's tile (``TT``, ``RR``, ``BK``)
are module settings; the tests shrink them so that tiny inputs span many
blocks and tiles in the CUDA simulator.
"""

import math

import numpy as np
from numba import config as _config
from numba import cuda, float32, float64, from_dtype, int32, int64, uint32, uint64

from . import _streams
from ._launch import launch
from .elementwise import _block_sum  # the block-wide sum every CUDA module uses

TPB = 256  # threads per block of the row kernels (a power of two <= RT)
RT = 256  # size of the row kernels' shared reduction buffers
MAX_BLOCKS = 1 << 16  # tests shrink it to exercise the grid-stride loops
TT, RR, BK = 16, 8, 8  # product tile: TT x TT threads, RR x RR entries each, BK-deep stages
# The fused batch-hard kernel's tile: its per-entry epilogue (distance, keys)
# over 8 x 8 entries is more than the compiler unrolls, and the accumulators
# then live on the stack (ptxas -v, sm_90: 256-byte stack frame); 4 x 4
# unrolls (78 registers, no stack). Tests shrink both tiles.
FTT, FRR, FBK = 16, 4, 8
# float32 batch-hard (L2, squared-L2, angular) mines inside the Gram kernel, no
# N x N matrix (``_make_fused_hard``); False: Gram matrix, then ``_mine_hard``
FUSED_HARD = True

NONE = 1 << 62  # "no candidate" column in the arg reductions
_SIM = bool(_config.ENABLE_CUDASIM)

# prm layout (dtype of the embeddings): margin, soft, metric, cut, 0, 1, 2
P_MARGIN, P_SOFT, P_METRIC, P_CUT, P_ZERO, P_ONE, P_TWO = range(7)


# ---------------------------------------------------------------------------
# block reductions (shared memory trees: they also run in the simulator)
# ---------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _better(v1, j1, v2, j2, want_max):
    """Whether candidate (v1, j1) beats (v2, j2); j == NONE: no candidate."""
    if j1 == NONE:
        return False
    if j2 == NONE:
        return True
    if want_max:
        return v1 > v2 or (v1 == v2 and j1 < j2)
    return v1 < v2 or (v1 == v2 and j1 < j2)


@cuda.jit(device=True, inline=True)
def _block_arg(v, j, want_max, sv, sj):
    """The block's best (value, column) pair (arg-max or arg-min, lowest column
    on ties); every thread gets it."""
    t = cuda.threadIdx.x
    sv[t] = v
    sj[t] = j
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if t < h and _better(sv[t + h], sj[t + h], sv[t], sj[t], want_max):
            sv[t] = sv[t + h]
            sj[t] = sj[t + h]
        cuda.syncthreads()
        h >>= 1
    v = sv[0]
    j = sj[0]
    cuda.syncthreads()
    return v, j


@cuda.jit(device=True, inline=True)
def _softplus_sig(z, one):
    """(log(1 + exp(z)), sigmoid(z)) without overflow (the CPU kernel's)."""
    e = math.exp(-abs(z))
    sp = math.log1p(e)
    if z > 0:
        return sp + z, one / (one + e)
    return sp, e / (one + e)


@cuda.jit(device=True, inline=True)
def _hinge_or_soft(zh, zs, soft, zero, one):
    if soft:
        return _softplus_sig(zs, one)
    if zh >= zero:
        return zh, one
    return zero, zero


@cuda.jit(device=True, inline=True)
def _factor(d, metric, zero, one, two):
    """The metric's factor of dL/dD (CPU ``_factor``): L2 1/D, squared-L2 2
    (0 where D == 0), angular and precomputed 1."""
    if metric == 0:
        return one / d if d > zero else zero
    if metric == 1:
        return two if d > zero else zero
    return one


# ---------------------------------------------------------------------------
# the tiled product C = A B (B given as rows of B^T when trans_b)
# ---------------------------------------------------------------------------
_MM = {}


def _mm(dt, trans_b):
    key = (TT, RR, BK, bool(trans_b), np.dtype(dt).char)
    k = _MM.get(key)
    if k is None:
        k = _MM[key] = _make_mm(TT, RR, BK, bool(trans_b), from_dtype(np.dtype(dt)))
    return k


def _make_mm(tt, rr, bk, trans_b, nbt):
    tile = tt * rr
    nthreads = tt * tt
    pad = tile + 1  # shared-array shapes must be plain constants

    @cuda.jit
    def mm(A, B, C):
        n_rows = A.shape[0]
        kd = A.shape[1]
        n_cols = B.shape[0] if trans_b else B.shape[1]
        sa = cuda.shared.array((bk, pad), nbt)  # tile + 1: the staging stores hit distinct banks
        sb = cuda.shared.array((bk, pad), nbt)
        acc = cuda.local.array((rr, rr), nbt)
        ar = cuda.local.array(rr, nbt)
        br = cuda.local.array(rr, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * tt + tx
        i0 = cuda.blockIdx.y * tile
        j0 = cuda.blockIdx.x * tile
        for r in range(rr):
            for s in range(rr):
                acc[r, s] = 0
        for k0 in range(0, kd, bk):
            # stage A[i0:i0+tile, k0:k0+bk] transposed (reads run along A's rows)
            for e in range(tid, tile * bk, nthreads):
                ii = e // bk
                kk = e - ii * bk
                i = i0 + ii
                kg = k0 + kk
                sa[kk, ii] = A[i, kg] if (i < n_rows and kg < kd) else 0
            if trans_b:
                for e in range(tid, tile * bk, nthreads):
                    jj = e // bk
                    kk = e - jj * bk
                    j = j0 + jj
                    kg = k0 + kk
                    sb[kk, jj] = B[j, kg] if (j < n_cols and kg < kd) else 0
            else:
                for e in range(tid, tile * bk, nthreads):
                    kk = e // tile
                    jj = e - kk * tile
                    j = j0 + jj
                    kg = k0 + kk
                    sb[kk, jj] = B[kg, j] if (j < n_cols and kg < kd) else 0
            cuda.syncthreads()
            for kk in range(bk):
                for r in range(rr):
                    ar[r] = sa[kk, ty + r * tt]
                for s in range(rr):
                    br[s] = sb[kk, tx + s * tt]
                for r in range(rr):
                    for s in range(rr):
                        acc[r, s] += ar[r] * br[s]
            cuda.syncthreads()
        for r in range(rr):
            i = i0 + ty + r * tt
            if i < n_rows:
                for s in range(rr):
                    j = j0 + tx + s * tt
                    if j < n_cols:
                        C[i, j] = acc[r, s]

    return mm


_GRAM = {}


def _gram(dt):
    key = (TT, RR, BK, np.dtype(dt).char)
    k = _GRAM.get(key)
    if k is None:
        k = _GRAM[key] = _make_gram(TT, RR, BK, from_dtype(np.dtype(dt)))
    return k


def _make_upper_tile(tt, rr, bk):
    """The device function both upper-triangle kernels start with: block
    ``blockIdx.x`` -> tile (bi, bj), bi <= bj (row-major over the upper
    triangle of ``nb x nb`` tiles), and ``acc[r, s] = x_i . x_j`` for
    ``i = bi*tile + ty + r*tt``, ``j = bj*tile + tx + s*tt`` (zero-padded past
    the edges), ``bk`` columns of X staged in shared memory at a time. Every
    entry is the same sequence of multiply-adds as its mirror image."""
    tile = tt * rr
    nthreads = tt * tt

    @cuda.jit(device=True, inline=True)
    def upper_tile(X, nb, sa, sb, acc, ar, br):
        n = X.shape[0]
        kd = X.shape[1]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * tt + tx
        rem = cuda.blockIdx.x
        bi = 0
        while rem >= nb - bi:
            rem -= nb - bi
            bi += 1
        bj = bi + rem
        i0 = bi * tile
        j0 = bj * tile
        for r in range(rr):
            for s in range(rr):
                acc[r, s] = 0
        for k0 in range(0, kd, bk):
            for e in range(tid, tile * bk, nthreads):
                ii = e // bk
                kk = e - ii * bk
                kg = k0 + kk
                i = i0 + ii
                j = j0 + ii
                sa[kk, ii] = X[i, kg] if (i < n and kg < kd) else 0
                sb[kk, ii] = X[j, kg] if (j < n and kg < kd) else 0
            cuda.syncthreads()
            for kk in range(bk):
                for r in range(rr):
                    ar[r] = sa[kk, ty + r * tt]
                for s in range(rr):
                    br[s] = sb[kk, tx + s * tt]
                for r in range(rr):
                    for s in range(rr):
                        acc[r, s] += ar[r] * br[s]
            cuda.syncthreads()
        return bi, bj

    return upper_tile


def _make_gram(tt, rr, bk, nbt):
    """``M = X X^T`` from the tiles on and above the diagonal only (half the
    multiply-adds of ``_mm``): block ``b`` computes tile (bi, bj), bi <= bj,
    writes it, and writes its mirror image (bi < bj). Mirror entries are the
    same numbers: M is exactly symmetric."""
    tile = tt * rr
    pad = tile + 1  # shared-array shapes must be plain constants
    upper_tile = _make_upper_tile(tt, rr, bk)

    @cuda.jit
    def gram(X, M, nb):
        n = X.shape[0]
        sa = cuda.shared.array((bk, pad), nbt)
        sb = cuda.shared.array((bk, pad), nbt)
        acc = cuda.local.array((rr, rr), nbt)
        ar = cuda.local.array(rr, nbt)
        br = cuda.local.array(rr, nbt)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        bi, bj = upper_tile(X, nb, sa, sb, acc, ar, br)
        i0 = bi * tile
        j0 = bj * tile
        for r in range(rr):
            i = i0 + ty + r * tt
            if i < n:
                for s in range(rr):
                    j = j0 + tx + s * tt
                    if j < n:
                        M[i, j] = acc[r, s]
        if bi == bj:
            return
        # the mirror image, straight from the registers (loops the compiler
        # unrolls: acc stays in registers; a shared-memory slab staged per r
        # kept acc on the stack)
        for r in range(rr):
            i = i0 + ty + r * tt
            if i < n:
                for s in range(rr):
                    j = j0 + tx + s * tt
                    if j < n:
                        M[j, i] = acc[r, s]

    return gram


def _launch_gram(X, M, stream):
    n = X.shape[0]
    if n == 0:
        return
    tile = TT * RR
    nb = (n + tile - 1) // tile
    launch(_gram(X.dtype), nb * (nb + 1) // 2, (TT, TT), stream, X, M, nb)


def _launch_mm(A, B, C, trans_b, stream):
    tile = TT * RR
    n_rows = A.shape[0]
    n_cols = B.shape[0] if trans_b else B.shape[1]
    if n_rows == 0 or n_cols == 0:
        return
    grid = ((n_cols + tile - 1) // tile, (n_rows + tile - 1) // tile)
    launch(_mm(A.dtype, trans_b), grid, (TT, TT), stream, A, B, C)


# ---------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------
@cuda.jit
def _norms(M, metric, floor, aux):
    """aux[i]: |x_i|^2 (L2, squared-L2) or 1/sqrt(max(|x_i|^2, floor)) (angular)."""
    i = cuda.grid(1)
    if i < M.shape[0]:
        v = M[i, i]
        if metric == 2:
            aux[i] = 1 / math.sqrt(max(v, floor))
        else:
            aux[i] = v


@cuda.jit(device=True, inline=True)
def _dist_g(g, aux, X, a, j, metric, cut, zero, one, two):
    """D[a, j] from the Gram entry ``g = x_a . x_j`` (``_dist_row`` of the CPU
    kernel): L2 / squared-L2 ``max(|x_a|^2 + |x_j|^2 - 2 g, 0)`` (its root for
    L2), recomputed as ``sum((x_a - x_j)**2)`` where the formula has lost its
    digits, diagonal 0; angular ``max(1 - cos, 0)``; precomputed ``g`` itself."""
    if metric == 3:
        return g
    if metric == 2:
        v = one - g * aux[a] * aux[j]
        return zero if v < zero else v
    if j == a:
        return zero
    t = aux[a] + aux[j]
    v = t - two * g
    if v < cut * t:  # near pair
        acc = zero
        for k in range(X.shape[1]):
            u = X[a, k] - X[j, k]
            acc += u * u
        v = acc
    v = zero if v <= zero else v
    if metric == 0:
        v = math.sqrt(v)
    return v


@cuda.jit(device=True, inline=True)
def _dist(M, aux, X, a, j, metric, cut, zero, one, two):
    return _dist_g(M[a, j], aux, X, a, j, metric, cut, zero, one, two)


@cuda.jit(device=True, inline=True)
def _dist_gram(g, aux, a, j, metric, cut, zero, one, two):
    """``_dist_g`` without the exact recompute (no loop: the fused kernel's
    unrolled epilogue keeps its accumulators in registers only without one):
    ``(d, near)``, ``near`` where the recompute would apply (then ``d`` is not
    to be used)."""
    if metric == 2:
        v = one - g * aux[a] * aux[j]
        return (zero if v < zero else v), False
    if j == a:
        return zero, False
    t = aux[a] + aux[j]
    v = t - two * g
    near = v < cut * t
    v = zero if v <= zero else v
    if metric == 0:
        v = math.sqrt(v)
    return v, near


@cuda.jit(device=True, inline=True)
def _dot(X, a, j, zero):
    """x_a . x_j, the multiply-adds in the order of the Gram kernels (k ascending)."""
    acc = zero
    for k in range(X.shape[1]):
        acc += X[a, k] * X[j, k]
    return acc


@cuda.jit
def _distances(M, aux, X, prm, Dm):
    """Dm = D from the Gram matrix; Dm may be M itself (each entry reads only
    its own M entry)."""
    N = M.shape[0]
    metric = int(prm[P_METRIC])
    cut = prm[P_CUT]
    zero = prm[P_ZERO]
    one = prm[P_ONE]
    two = prm[P_TWO]
    for e in range(cuda.grid(1), N * N, cuda.gridsize(1)):
        a = e // N
        j = e - a * N
        Dm[a, j] = _dist(M, aux, X, a, j, metric, cut, zero, one, two)


# ---------------------------------------------------------------------------
# batch-hard without a distance matrix (float32): Gram tiles reduced in place
# ---------------------------------------------------------------------------
NOKEY = (1 << 64) - 1  # "no negative" key (no candidate reaches it)


if _SIM:  # the simulator runs Python: a float's bits through a local array's view

    @cuda.jit(device=True, inline=True)
    def _fbits(v):
        """The bits of float32 ``v`` (for v >= 0 their order is v's order)."""
        a = cuda.local.array(1, float32)
        a[0] = v
        return a.view(np.uint32)[0]

    @cuda.jit(device=True, inline=True)
    def _bitsf(b):
        a = cuda.local.array(1, uint32)
        a[0] = b
        return a.view(np.float32)[0]

else:  # libdevice's bit casts (a local array's view needs a device to compile)
    from numba.cuda import libdevice as _libdevice

    @cuda.jit(device=True, inline=True)
    def _fbits(v):
        """The bits of float32 ``v`` (for v >= 0 their order is v's order)."""
        return uint32(_libdevice.float_as_int(v))

    @cuda.jit(device=True, inline=True)
    def _bitsf(b):
        return _libdevice.int_as_float(int32(b))


@cuda.jit(device=True, inline=True)
def _pkey(d, j):
    """Key of a positive candidate: atomic max picks the largest distance, then
    the lowest column."""
    return (uint64(_fbits(d)) << uint64(32)) | uint64(0xFFFFFFFF - j)


@cuda.jit(device=True, inline=True)
def _nkey(d, j):
    """Key of a negative candidate: atomic min picks the smallest distance, then
    the lowest column."""
    return (uint64(_fbits(d)) << uint64(32)) | uint64(j)


@cuda.jit(device=True, inline=True)
def _offer(d, nr, same, j, a, bp, bq, nanf, nearf):
    """Entry (a, j) of the fused kernel offered to anchor a's thread-local keys
    ``(bp, bq)``: NaN and near-duplicate entries flag the row instead."""
    if d != d:
        nanf[a] = 1
    elif nr:
        nearf[a] = 1
    elif same:
        if j != a:
            bp = max(bp, _pkey(d, j))
    else:
        bq = min(bq, _nkey(d, j))
    return bp, bq


@cuda.jit
def _reset_keys(kp, kn, nanf, nearf):
    """The fused kernel's per-anchor keys and flags before it runs (one launch)."""
    for a in range(cuda.grid(1), kp.shape[0], cuda.gridsize(1)):
        kp[a] = 0
        kn[a] = NOKEY
        nanf[a] = 0
        nearf[a] = 0


@cuda.jit
def _row_norms(X, metric, floor, zero, aux):
    """aux[i] from the rows directly (the Gram diagonal's multiply-adds)."""
    i = cuda.grid(1)
    if i < X.shape[0]:
        v = _dot(X, i, i, zero)
        if metric == 2:
            aux[i] = 1 / math.sqrt(max(v, floor))
        else:
            aux[i] = v


_FUSED = {}


def _fused_hard(dt):
    key = (FTT, FRR, FBK, np.dtype(dt).char)
    k = _FUSED.get(key)
    if k is None:
        k = _FUSED[key] = _make_fused_hard(FTT, FRR, FBK)
    return k


def _make_fused_hard(tt, rr, bk):
    """Batch-hard mining fused into the Gram product (float32): the tiles on
    and above the diagonal as in ``_make_gram``, each entry turned into its
    distance in registers and offered as a candidate to its row's anchor (and,
    off the diagonal, to its column's anchor), reduced over the tile in shared
    memory and merged into per-anchor keys by one 64-bit atomic per anchor and
    tile: ``kp`` (hardest positive: distance bits, then the inverted column),
    ``kn`` (hardest negative); ``nanf`` flags rows holding a NaN, ``nearf``
    rows with a near-duplicate pair (its distance needs the exact recompute:
    ``_hard_finish`` mines those rows again, exactly). No N x N array exists."""
    tile = tt * rr
    nthreads = tt * tt
    pad = tile + 1  # shared-array shapes must be plain constants
    upper_tile = _make_upper_tile(tt, rr, bk)

    @cuda.jit(device=True, inline=True)
    def keys_out(rk, rq, base, n, tid, kp, kn):
        """The tile's per-anchor keys (rows base .. base + tile of rk / rq, one
        column per contributing thread) merged, then into kp / kn by one atomic each."""
        for e in range(tid, tile, nthreads):
            a = base + e
            if a < n:
                bp = rk[e, 0]
                bq = rq[e, 0]
                for c in range(1, tt):
                    bp = max(bp, rk[e, c])
                    bq = min(bq, rq[e, c])
                if bp != 0:
                    cuda.atomic.max(kp, a, bp)
                if bq != NOKEY:
                    cuda.atomic.min(kn, a, bq)

    @cuda.jit
    def fused(X, aux, lab, prm, kp, kn, nanf, nearf, nb):
        n = X.shape[0]
        sa = cuda.shared.array((bk, pad), float32)
        sb = cuda.shared.array((bk, pad), float32)
        rk = cuda.shared.array((tile, tt), uint64)
        rq = cuda.shared.array((tile, tt), uint64)
        acc = cuda.local.array((rr, rr), float32)
        ar = cuda.local.array(rr, float32)
        br = cuda.local.array(rr, float32)
        metric = int(prm[P_METRIC])
        cut = prm[P_CUT]
        zero = prm[P_ZERO]
        one = prm[P_ONE]
        two = prm[P_TWO]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * tt + tx
        bi, bj = upper_tile(X, nb, sa, sb, acc, ar, br)
        i0 = bi * tile
        j0 = bj * tile
        # anchors i (the tile's rows) against the columns j
        for r in range(rr):
            i = i0 + ty + r * tt
            bp = uint64(0)
            bq = uint64(NOKEY)
            if i < n:
                li = lab[i]
                for s in range(rr):
                    j = j0 + tx + s * tt
                    if j < n:
                        d, nr = _dist_gram(acc[r, s], aux, i, j, metric, cut, zero, one, two)
                        bp, bq = _offer(d, nr, lab[j] == li, j, i, bp, bq, nanf, nearf)
            rk[ty + r * tt, tx] = bp
            rq[ty + r * tt, tx] = bq
        cuda.syncthreads()
        keys_out(rk, rq, i0, n, tid, kp, kn)
        if bi == bj:  # a diagonal tile holds both (i, j) and (j, i)
            return
        cuda.syncthreads()
        # anchors j (the tile's columns) against the rows i: the mirror entries
        for s in range(rr):
            j = j0 + tx + s * tt
            bp = uint64(0)
            bq = uint64(NOKEY)
            if j < n:
                lj = lab[j]
                for r in range(rr):
                    i = i0 + ty + r * tt
                    if i < n:
                        d, nr = _dist_gram(acc[r, s], aux, j, i, metric, cut, zero, one, two)
                        bp, bq = _offer(d, nr, lab[i] == lj, i, j, bp, bq, nanf, nearf)
            rk[tx + s * tt, ty] = bp
            rq[tx + s * tt, ty] = bq
        cuda.syncthreads()
        keys_out(rk, rq, j0, n, tid, kp, kn)

    return fused


@cuda.jit
def _hard_finish(X, aux, lab, prm, kp, kn, nanf, nearf, rowloss, rowcnt, sel, selc):
    """Per anchor (one block each): the keys decoded into the hardest positive
    and negative. A row with a near-duplicate pair, or without a positive or a
    negative (TFA's row minimum / maximum fallbacks), is mined again from its
    distances computed here, exactly (rare: O(N D) per such row). Then the
    loss and the selection as in ``_mine_hard``."""
    sv = cuda.shared.array(RT, float64)
    sj = cuda.shared.array(RT, int64)
    N = X.shape[0]
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    margin = prm[P_MARGIN]
    soft = prm[P_SOFT] != 0
    metric = int(prm[P_METRIC])
    cut = prm[P_CUT]
    zero = prm[P_ZERO]
    one = prm[P_ONE]
    two = prm[P_TWO]
    for a in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        if nanf[a] != 0:
            if t == 0:
                _write_nan_row(a, zero, rowloss, rowcnt, sel, selc)
            continue
        p = kp[a]
        q = kn[a]
        if nearf[a] != 0 or p == 0 or q == NOKEY:
            la = lab[a]
            pv = 0.0
            pj = NONE
            nv = 0.0
            nj = NONE
            lov = 0.0
            loj = NONE
            hiv = 0.0
            hij = NONE
            for j in range(t, N, nt):
                v = _dist_g(_dot(X, a, j, zero), aux, X, a, j, metric, cut, zero, one, two)
                pv, pj, nv, nj, lov, loj, hiv, hij = _hard_candidates(
                    v, j, lab[j] == la, a, pv, pj, nv, nj, lov, loj, hiv, hij)
            pj, nj = _hard_pick(pv, pj, nv, nj, lov, loj, hiv, hij, sv, sj)
            hp = _dist_g(_dot(X, a, pj, zero), aux, X, a, pj, metric, cut, zero, one, two)
            hn = _dist_g(_dot(X, a, nj, zero), aux, X, a, nj, metric, cut, zero, one, two)
        else:
            hp = _bitsf(uint32(p >> uint64(32)))
            pj = int64(uint64(0xFFFFFFFF) - (p & uint64(0xFFFFFFFF)))
            hn = _bitsf(uint32(q >> uint64(32)))
            nj = int64(q & uint64(0xFFFFFFFF))
        if t == 0:
            _write_hard(a, hp, hn, pj, nj, margin, soft, metric, zero, one, rowloss, rowcnt, sel, selc)


# ---------------------------------------------------------------------------
# mining: one block per anchor row
# ---------------------------------------------------------------------------
@cuda.jit(device=True, inline=True)
def _hard_candidates(v, j, same, a, pv, pj, nv, nj, lov, loj, hiv, hij):
    """Column j (distance v, ``same``: its label is the anchor's) offered to a
    thread's running hard-mining candidates: the farthest positive, the nearest
    negative, the row's minimum and maximum (lowest column on ties)."""
    if same:
        if j != a and (pj == NONE or v > pv):
            pv = v
            pj = j
    elif nj == NONE or v < nv:
        nv = v
        nj = j
    if loj == NONE or v < lov:
        lov = v
        loj = j
    if hij == NONE or v > hiv:
        hiv = v
        hij = j
    return pv, pj, nv, nj, lov, loj, hiv, hij


@cuda.jit(device=True, inline=True)
def _hard_pick(pv, pj, nv, nj, lov, loj, hiv, hij, sv, sj):
    """The block's (positive column, negative column); TFA's masked maximum
    gives the row minimum without a positive, its masked minimum the row
    maximum without a negative."""
    pv, pj = _block_arg(pv, pj, True, sv, sj)
    nv, nj = _block_arg(nv, nj, False, sv, sj)
    if pj == NONE:
        lov, pj = _block_arg(lov, loj, False, sv, sj)
    if nj == NONE:
        hiv, nj = _block_arg(hiv, hij, True, sv, sj)
    return pj, nj


@cuda.jit(device=True, inline=True)
def _write_hard(a, hp, hn, pj, nj, margin, soft, metric, zero, one, rowloss, rowcnt, sel, selc):
    """Anchor a's loss and selection (one thread): ``+selc`` on the positive,
    ``-selc`` on the negative, each with its metric factor."""
    two = one + one
    l, g = _hinge_or_soft(hp - hn + margin, hp - hn, soft, zero, one)
    rowloss[a] = l
    rowcnt[a] = 1.0
    sel[a, 0] = pj
    sel[a, 1] = nj
    gp = g * _factor(hp, metric, zero, one, two)
    gn = g * _factor(hn, metric, zero, one, two)
    if pj == nj:  # both fallbacks on one entry: the terms cancel
        gp = zero
        gn = zero
    selc[a, 0] = gp
    selc[a, 1] = gn


@cuda.jit(device=True, inline=True)
def _write_nan_row(a, zero, rowloss, rowcnt, sel, selc):
    rowloss[a] = math.nan
    rowcnt[a] = 1.0
    sel[a, 0] = a
    sel[a, 1] = a
    selc[a, 0] = zero
    selc[a, 1] = zero


@cuda.jit
def _mine_hard(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc):
    """Hard mining reads each distance once: computed here from the Gram
    matrix (no distance matrix is written)."""
    sv = cuda.shared.array(RT, float64)
    sj = cuda.shared.array(RT, int64)
    N = M.shape[0]
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    margin = prm[P_MARGIN]
    soft = prm[P_SOFT] != 0
    metric = int(prm[P_METRIC])
    zero = prm[P_ZERO]
    one = prm[P_ONE]
    two = prm[P_TWO]
    cut = prm[P_CUT]
    for a in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        la = lab[a]
        pv = 0.0
        pj = NONE
        nv = 0.0
        nj = NONE
        lov = 0.0
        loj = NONE
        hiv = 0.0
        hij = NONE
        nan = 0.0
        for j in range(t, N, nt):
            v = _dist(M, aux, X, a, j, metric, cut, zero, one, two)
            if v != v:
                nan += 1.0
                continue
            pv, pj, nv, nj, lov, loj, hiv, hij = _hard_candidates(
                v, j, lab[j] == la, a, pv, pj, nv, nj, lov, loj, hiv, hij)
        nan = _block_sum(nan, sv)
        if nan > 0:
            if t == 0:
                _write_nan_row(a, zero, rowloss, rowcnt, sel, selc)
            continue
        pj, nj = _hard_pick(pv, pj, nv, nj, lov, loj, hiv, hij, sv, sj)
        if t == 0:
            hp = _dist(M, aux, X, a, pj, metric, cut, zero, one, two)
            hn = _dist(M, aux, X, a, nj, metric, cut, zero, one, two)
            _write_hard(a, hp, hn, pj, nj, margin, soft, metric, zero, one, rowloss, rowcnt, sel, selc)


@cuda.jit
def _mine_semihard(Dm, lab, prm, rowloss, rowcnt, W, want_grad):
    sv = cuda.shared.array(RT, float64)
    sj = cuda.shared.array(RT, int64)
    N = Dm.shape[0]
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    margin = prm[P_MARGIN]
    soft = prm[P_SOFT] != 0
    metric = int(prm[P_METRIC])
    zero = prm[P_ZERO]
    one = prm[P_ONE]
    two = prm[P_TWO]
    for a in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        la = lab[a]
        nan = 0.0
        kp = 0.0
        iv = 0.0
        ij = NONE
        lov = 0.0
        loj = NONE
        for j in range(t, N, nt):
            if want_grad:
                W[a, j] = zero
            v = Dm[a, j]
            if v != v:
                nan += 1.0
                continue
            if lab[j] == la:
                if j != a:
                    kp += 1.0
            elif ij == NONE or v > iv:
                iv = v
                ij = j
            if loj == NONE or v < lov:
                lov = v
                loj = j
        nan = _block_sum(nan, sv)
        if nan > 0:
            if t == 0:
                rowloss[a] = math.nan
                rowcnt[a] = 0.0
            continue
        kp = _block_sum(kp, sv)
        if kp == 0:
            if t == 0:
                rowloss[a] = 0.0
                rowcnt[a] = 0.0
            continue
        # negatives_inside: the largest negative distance, or with no negative
        # the row minimum (TFA's masked maximum)
        iv, ij = _block_arg(iv, ij, True, sv, sj)
        if ij == NONE:
            lov, ij = _block_arg(lov, loj, False, sv, sj)
        total = 0.0
        for p in range(N):  # the same positive in every thread of the block
            if p == a or lab[p] != la:
                continue
            dap = Dm[a, p]
            mv = 0.0
            mj = NONE
            for j in range(t, N, nt):
                if lab[j] != la:
                    v = Dm[a, j]
                    if v > dap and (mj == NONE or v < mv):
                        mv = v
                        mj = j
            mv, mj = _block_arg(mv, mj, False, sv, sj)
            if t == 0:
                ineg = ij if mj == NONE else mj
                neg = Dm[a, ineg]
                l, g = _hinge_or_soft(margin + dap - neg, dap - neg, soft, zero, one)
                total += l
                if want_grad:
                    W[a, p] += g * _factor(dap, metric, zero, one, two)
                    W[a, ineg] -= g * _factor(neg, metric, zero, one, two)
        if t == 0:
            rowloss[a] = total
            rowcnt[a] = kp
        cuda.syncthreads()


@cuda.jit
def _mine_batch_all(Dm, lab, prm, rowloss, rowcnt, W, want_grad):
    sv = cuda.shared.array(RT, float64)
    N = Dm.shape[0]
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    margin = prm[P_MARGIN]
    soft = prm[P_SOFT] != 0
    metric = int(prm[P_METRIC])
    zero = prm[P_ZERO]
    one = prm[P_ONE]
    two = prm[P_TWO]
    for a in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        la = lab[a]
        nan = 0.0
        kp = 0.0
        kn = 0.0
        for j in range(t, N, nt):
            if want_grad:
                W[a, j] = zero
            v = Dm[a, j]
            if v != v:
                nan += 1.0
            elif lab[j] != la:
                kn += 1.0
            elif j != a:
                kp += 1.0
        nan = _block_sum(nan, sv)
        if nan > 0:
            if t == 0:
                rowloss[a] = math.nan
                rowcnt[a] = 0.0
            continue
        kp = _block_sum(kp, sv)
        kn = _block_sum(kn, sv)
        if kp == 0 or kn == 0:
            if t == 0:
                rowloss[a] = 0.0
                rowcnt[a] = 0.0
            continue
        acc = 0.0
        cnt = 0.0
        for p in range(N):  # the same positive in every thread of the block
            if p == a or lab[p] != la:
                continue
            dap = Dm[a, p]
            gp = 0.0
            for j in range(t, N, nt):
                if lab[j] != la:
                    if soft:
                        l, g = _softplus_sig(dap - Dm[a, j], one)
                        acc += l
                        gp += g
                        cnt += 1.0
                        if want_grad:
                            W[a, j] -= g
                    else:
                        z = margin + dap - Dm[a, j]
                        if z > zero:
                            acc += z
                            cnt += 1.0
                            gp += 1.0
                            if want_grad:
                                W[a, j] -= one
            gp = _block_sum(gp, sv)
            if t == 0 and want_grad:
                W[a, p] += gp
        acc = _block_sum(acc, sv)
        cnt = _block_sum(cnt, sv)
        if t == 0:
            rowloss[a] = acc
            rowcnt[a] = cnt
        if want_grad:
            cuda.syncthreads()  # thread 0's W[a, p] before the scaling
            for j in range(t, N, nt):
                W[a, j] = W[a, j] * _factor(Dm[a, j], metric, zero, one, two)
        cuda.syncthreads()


# ---------------------------------------------------------------------------
# gradient assembly
# ---------------------------------------------------------------------------
@cuda.jit
def _sum_rows(rowloss, rowcnt, tot):
    """tot += (sum rowloss, sum rowcnt): block sums, one atomic pair per block
    (a NaN row makes the total NaN, as on the host)."""
    sv = cuda.shared.array(RT, float64)
    a = 0.0
    c = 0.0
    for i in range(cuda.grid(1), rowloss.shape[0], cuda.gridsize(1)):
        a += rowloss[i]
        c += rowcnt[i]
    a = _block_sum(a, sv)
    c = _block_sum(c, sv)
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(tot, 0, a)
        cuda.atomic.add(tot, 1, c)


@cuda.jit
def _fill(A, v):
    for e in range(cuda.grid(1), A.shape[0], cuda.gridsize(1)):
        A[e] = v


@cuda.jit
def _hard_scatter(X, M, aux, sel, selc, metric, scale, have_m, G):
    """Hard mining's entries (a, j, +-c) into G, one thread per (anchor,
    coordinate), atomics (several anchors may pick the same row). L2 and
    squared-L2: c (x_a - x_j) into row a, c (x_j - x_a) into row j; angular:
    dL/dn (-c n_j into row a, -c n_a into row j; the normalization's Jacobian
    follows in ``_normalize_jacobian``)."""
    N = sel.shape[0]
    kd = X.shape[1]
    for e in range(cuda.grid(1), N * kd, cuda.gridsize(1)):
        a = e // kd
        k = e - a * kd
        for side in range(2):
            j = sel[a, side]
            c = selc[a, side] * scale
            if side == 1:
                c = -c
            if c == 0 or j == a:
                continue
            if metric == 2:
                ra = aux[a]
                rj = aux[j]
                g = M[a, j] if have_m else _dot(X, a, j, X[a, 0] * 0)
                if 1 - g * ra * rj < 0:
                    continue
                cuda.atomic.add(G, (a, k), -c * rj * X[j, k])
                cuda.atomic.add(G, (j, k), -c * ra * X[a, k])
            else:
                u = X[a, k] - X[j, k]
                cuda.atomic.add(G, (a, k), c * u)
                cuda.atomic.add(G, (j, k), -(c * u))


@cuda.jit
def _hard_precomputed(sel, selc, scale, G):
    a = cuda.grid(1)
    if a < sel.shape[0]:
        G[a, sel[a, 0]] += selc[a, 0] * scale
        G[a, sel[a, 1]] -= selc[a, 1] * scale


@cuda.jit
def _normalize_jacobian(X, aux, G):
    """G[i] (dL/dn_i) -> r_i (u - n_i (n_i . u)); the projection only where the
    norm was not floored (CPU ``_normalize_jacobian``)."""
    sv = cuda.shared.array(RT, float64)
    N = G.shape[0]
    kd = G.shape[1]
    t = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        ri = aux[i]
        proj = ri <= 1e6
        dot = 0.0
        for k in range(t, kd, cuda.blockDim.x):
            dot += X[i, k] * ri * G[i, k]
        dot = _block_sum(dot, sv)
        for k in range(t, kd, cuda.blockDim.x):
            if proj:
                G[i, k] = ri * (G[i, k] - dot * X[i, k] * ri)
            else:
                G[i, k] = ri * G[i, k]


@cuda.jit
def _symmetrize_sums(W, M, aux, metric, S, r, q):
    """One pass, a block per row: S = W + W^T (angular: zero where the distance
    was clipped, 1 - cos < 0), r[i] = sum_j S[i, j] and, angular,
    q[i] = sum_j S[i, j] cos[i, j] (float64)."""
    sv = cuda.shared.array(RT, float64)
    N = W.shape[0]
    t = cuda.threadIdx.x
    for i in range(cuda.blockIdx.x, N, cuda.gridDim.x):
        acc = 0.0
        accq = 0.0
        for j in range(t, N, cuda.blockDim.x):
            s = W[i, j] + W[j, i]
            if metric == 2:
                c = M[i, j] * aux[i] * aux[j]
                if 1 - c < 0:
                    s = 0
                accq += s * c
            S[i, j] = s
            acc += s
        acc = _block_sum(acc, sv)
        accq = _block_sum(accq, sv)
        if t == 0:
            r[i] = acc
            q[i] = accq


@cuda.jit
def _scale_rows(X, aux, Y):
    """Y = the normalized rows x_i * aux[i] (angular)."""
    N = X.shape[0]
    kd = X.shape[1]
    for e in range(cuda.grid(1), N * kd, cuda.gridsize(1)):
        i = e // kd
        Y[i, e - i * kd] = X[i, e - i * kd] * aux[i]


@cuda.jit
def _finish_dense(Y, aux, r, q, P, metric, scale, G):
    """L2/squared-L2: G = scale (r_i x_i - (S X)_i); angular (Y the normalized
    rows): G = -scale r_i ((S N)_i - q_i n_i) (q only where the norm was not floored)."""
    N = Y.shape[0]
    kd = Y.shape[1]
    for e in range(cuda.grid(1), N * kd, cuda.gridsize(1)):
        i = e // kd
        k = e - i * kd
        if metric == 2:
            qi = q[i] if aux[i] <= 1e6 else 0.0
            G[i, k] = -scale * aux[i] * (P[i, k] - qi * Y[i, k])
        else:
            G[i, k] = scale * (r[i] * Y[i, k] - P[i, k])


@cuda.jit
def _scaled(W, scale, G):
    N = W.shape[0]
    for e in range(cuda.grid(1), N * N, cuda.gridsize(1)):
        i = e // N
        G[i, e - i * N] = W[i, e - i * N] * scale


# ---------------------------------------------------------------------------
# the call
# ---------------------------------------------------------------------------
# Work buffers up to this many elements are kept between calls (per stream,
# ``_streams.scratch``): allocating and freeing device memory costs more than
# a small batch's kernels. Larger ones (the (N, N) matrices from N = 2048 on)
# are allocated per call and freed with it, not held.
SCRATCH_MAX = 1 << 22


def _buf(name, shape, dt, stream):
    n = 1
    for d in shape:
        n *= d
    if n <= SCRATCH_MAX:
        return _streams.reshape(_streams.scratch("triplet_" + name, n, dt, stream), *shape)
    return cuda.device_array(shape, dt, stream=stream)


def _prm(prm_h, dt, stream=0):
    """The parameter vector on the device for kernels on ``stream``
    (``_streams.constant``: made once per distinct value)."""
    return _streams.constant(np.asarray(prm_h, dt), stream)


def _grid(n):
    return max(1, min((n + 255) // 256, MAX_BLOCKS))


def run(mode, X, P, lab, prm_h, want_grad, stream):
    """Distances and mining on device arrays: ``X`` the (N, D) embeddings, or
    ``P`` the (N, N) distance matrix for "precomputed" (the other one None).
    Returns the device buffers the gradient needs, and ``total``/``count``: the
    sums of ``rowloss``/``rowcnt`` (float64, summed on the device; reading them
    is the one synchronization)."""
    metric = int(prm_h[P_METRIC])
    src = P if metric == 3 else X
    N = src.shape[0]
    dt = np.dtype(src.dtype)
    prm = _prm(prm_h, dt, stream)
    tpb = min(TPB, RT)
    blocks = max(1, min(N, MAX_BLOCKS))
    rowloss = _buf("rowloss", (N,), np.float64, stream)
    rowcnt = _buf("rowcnt", (N,), np.float64, stream)
    fused = FUSED_HARD and mode == "hard" and metric < 3 and dt == np.dtype(np.float32)
    if fused:
        aux = _buf("aux", (N,), dt, stream)
        launch(_row_norms, _grid(N), 256, stream, X, metric, dt.type(1e-12), dt.type(0), aux)
        kp = _buf("kp", (N,), np.uint64, stream)
        kn = _buf("kn", (N,), np.uint64, stream)
        nanf = _buf("nanf", (N,), np.int32, stream)
        nearf = _buf("nearf", (N,), np.int32, stream)
        launch(_reset_keys, _grid(N), 256, stream, kp, kn, nanf, nearf)
        nb = (N + FTT * FRR - 1) // (FTT * FRR)
        launch(_fused_hard(dt), nb * (nb + 1) // 2, (FTT, FTT), stream, X, aux, lab, prm, kp, kn, nanf, nearf, nb)
        sel = _buf("sel", (N, 2), np.int64, stream)
        selc = _buf("selc", (N, 2), dt, stream)
        launch(_hard_finish, blocks, tpb, stream, X, aux, lab, prm, kp, kn, nanf, nearf, rowloss, rowcnt, sel, selc)
        M = _buf("M0", (1, 1), dt, stream)  # no Gram matrix: the gradient recomputes what it needs
        out = {"M": M, "Dm": M, "aux": aux, "sel": sel, "selc": selc, "have_m": False}
    else:
        if metric == 3:
            Dm = M = P
            aux = _buf("aux", (1,), dt, stream)
            X = _buf("X", (1, 1), dt, stream)
        else:
            M = _buf("M", (N, N), dt, stream)
            _launch_gram(X, M, stream)
            aux = _buf("aux", (N,), dt, stream)
            launch(_norms, _grid(N), 256, stream, M, metric, dt.type(1e-12), aux)
            Dm = M
            if mode != "hard":  # hard mining computes its distances as it goes
                if metric == 2:
                    Dm = _buf("D", (N, N), dt, stream)
                launch(_distances, _grid(N * N), 256, stream, M, aux, X, prm, Dm)
        out = {"M": M, "Dm": Dm, "aux": aux, "have_m": True}
        if mode == "hard":
            sel = _buf("sel", (N, 2), np.int64, stream)
            selc = _buf("selc", (N, 2), dt, stream)
            launch(_mine_hard, blocks, tpb, stream, M, aux, X, lab, prm, rowloss, rowcnt, sel, selc)
            out.update(sel=sel, selc=selc)
        else:
            W = _buf("W", (N, N) if want_grad else (N, 1), dt, stream)
            kern = _mine_semihard if mode == "semihard" else _mine_batch_all
            launch(kern, blocks, tpb, stream, Dm, lab, prm, rowloss, rowcnt, W, bool(want_grad))
            out["W"] = W
    tot = _streams.scratch("triplet_tot", 2, np.float64, stream)
    fill(tot, 0, stream)
    tpb = min(TPB, RT)
    launch(_sum_rows, max(1, min((N + tpb - 1) // tpb, 1024)), tpb, stream, rowloss, rowcnt, tot)
    out["total"], out["count"] = (float(v) for v in tot.copy_to_host(stream=stream))
    if not isinstance(stream, int):
        stream.synchronize()
    return out


def fill(A, value, stream):
    """Every element of the contiguous device array ``A`` set to ``value``."""
    if A.size:
        launch(_fill, _grid(A.size), 256, stream, _streams.reshape(A, A.size), np.dtype(A.dtype).type(value))


def gradient(mode, metric, X, bufs, scale, G, stream):
    """The gradient into the device array ``G`` ((N, D); precomputed: (N, N))."""
    dt = G.dtype
    N = G.shape[0]
    scale = dt.type(scale)
    tpb = min(TPB, RT)
    blocks = max(1, min(N, MAX_BLOCKS))
    M, aux = bufs["M"], bufs["aux"]
    if mode == "hard":
        fill(G, 0, stream)
        sel, selc = bufs["sel"], bufs["selc"]
        if metric == 3:
            launch(_hard_precomputed, _grid(N), 256, stream, sel, selc, scale, G)
            return
        launch(_hard_scatter, _grid(N * X.shape[1]), 256, stream, X, M, aux, sel, selc, metric, scale, bufs["have_m"], G)
        if metric == 2:
            launch(_normalize_jacobian, blocks, tpb, stream, X, aux, G)
        return
    W = bufs["W"]
    if metric == 3:
        launch(_scaled, _grid(N * N), 256, stream, W, scale, G)
        return
    S = bufs["Dm"]  # the distances are no longer needed
    r = _buf("r", (N,), np.float64, stream)
    q = _buf("q", (N,), np.float64, stream)
    launch(_symmetrize_sums, blocks, tpb, stream, W, M, aux, metric, S, r, q)
    Y = X
    if metric == 2:
        Y = _buf("Y", X.shape, dt, stream)
        launch(_scale_rows, _grid(X.size), 256, stream, X, aux, Y)
    P = _buf("P", X.shape, dt, stream)
    _launch_mm(S, Y, P, False, stream)
    launch(_finish_dense, _grid(X.size), 256, stream, Y, aux, r, q, P, metric, scale, G)
