"""Cross-entropy from logits on Numba CUDA: one block per row, online softmax.

Per row (grid-stride over rows, ``TPB`` threads per block):

1. each thread folds its strided elements into an online (max, sum of exp)
   pair: ``s = s * exp(m - x) + 1`` when ``x`` raises the max, else
   ``s += exp(x - m)``; the pairs are combined across the block by a tree in
   shared memory (it also runs in the CUDA simulator, which has no warp
   shuffles), so the row is read from memory once for the statistics;
2. the loss is written by thread 0 and the gradient ``(exp(x - M) / S) * sc -
   y * sc`` by all threads (the second read of the row mostly hits L2).

``sc = w[i*ws] * factor`` is the reduction scale of the row, so the gradient is
written already scaled (the kernel contract of every backend). Bad labels are
counted in ``info[0]`` with the smallest bad row in ``info[1]`` (atomics).

Small class counts (C < 32) use one thread per row instead: a block per row
would leave most threads idle.
"""

import math

import numpy as np
from numba import cuda, float64, from_dtype, int32

from numba import config as _config

from . import _streams
from ._launch import launch
from .elementwise import _block_sum as _ew_block_sum

_SIM = bool(_config.ENABLE_CUDASIM)

TPB = 256  # threads per block for the row kernels (a power of two <= MAX_TPB); tests shrink it
MAX_TPB = 1024
MAX_BLOCKS = 1 << 18  # tests shrink it to exercise the grid-stride loops
SMALL_C = 32


@cuda.jit(device=True, inline=True)
def _merge(m1, s1, m2, s2):
    """Combine two (max, sum exp(x - max)) pairs."""
    if m2 > m1:
        m1, s1, m2, s2 = m2, s2, m1, s1
    if s2 == 0.0:
        return m1, s1
    return m1, s1 + s2 * math.exp(m2 - m1)


@cuda.jit(device=True, inline=True)
def _block_softmax_stats(x, i, C, sm, ss, ninf, zero, one):
    """(max, sum exp(x - max)) of row i, reduced across the block by a tree in
    shared memory (blockDim.x a power of two <= MAX_TPB); ``ninf``/``zero``/
    ``one`` and the shared arrays of the input's dtype: the arithmetic stays in
    it (float64 literals would turn every exp into a float64 one)."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    m = ninf
    s = zero
    for j in range(tid, C, nt):
        m, s = _fold(m, s, x[i, j], one)
    return _block_merge_stats(m, s, sm, ss)


@cuda.jit(device=True, inline=True)
def _fold(m, s, v, one):
    """One element into a thread's online (max, sum exp(x - max)) pair. A +inf
    makes the sum NaN (``v - v``), as ``exp(x - max(x))`` does on the CPU and
    in Keras (not the +inf loss the plain online rule would give). A -inf
    (a masked logit) adds exp(-inf) = 0, also before any finite value (where
    ``v - m`` is -inf - -inf = NaN)."""
    if v > m:
        s = s * math.exp(m - v) + (v - v) + one
        m = v
    elif v == v:
        d = v - m
        if d == d:
            s += math.exp(d)
    else:  # NaN: poison the row, visibly
        s = v
    return m, s


@cuda.jit(device=True, inline=True)
def _block_merge_stats(m, s, sm, ss):
    """The block's (max, sum) from each thread's pair: a tree in shared memory."""
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    sm[tid] = m
    ss[tid] = s
    cuda.syncthreads()
    h = nt >> 1
    while h > 0:
        if tid < h:
            m2, s2 = _merge(sm[tid], ss[tid], sm[tid + h], ss[tid + h])
            sm[tid] = m2
            ss[tid] = s2
        cuda.syncthreads()
        h >>= 1
    m = sm[0]
    s = ss[0] + (m - m)  # a row of -inf only: NaN, as on the CPU (its sum is 0 here, every -inf adding 0)
    cuda.syncthreads()
    return m, s


@cuda.jit(device=True, inline=True)
def _fold_dense(m, s, sy, t, v, yy, one, zero):
    """One (logit ``v``, target ``yy``) into a thread's online (max, sum
    exp(x - max), sum y', sum y' (x - max)): ``_fold`` plus the target sums,
    ``t`` re-referenced when the max moves. As on the CPU: a -inf logit adds
    y' * -inf (-inf, or NaN for y' = 0: 0 * -inf), a +inf one NaN, a NaN NaN."""
    if v > m:
        if sy != zero:
            t += (m - v) * sy
        s = s * math.exp(m - v) + (v - v) + one
        m = v
    elif v == v:
        d = v - m
        if d == d:
            s += math.exp(d)
            t += yy * d
        else:  # v = m = -inf: exp adds 0; y' (x - max) is y' * -inf whatever the max
            t += yy * v
    else:
        s = v
    return m, s, sy + yy, t


@cuda.jit(device=True, inline=True)
def _merge_dense(m1, s1, y1, t1, m2, s2, y2, t2):
    """Combine two ``_fold_dense`` quadruples."""
    if m2 > m1:
        m1, s1, y1, t1, m2, s2, y2, t2 = m2, s2, y2, t2, m1, s1, y1, t1
    if m2 != m1 and y2 != 0.0:
        t2 += (m2 - m1) * y2
    if s2 != 0.0:
        s1 += s2 * math.exp(m2 - m1)
    return m1, s1, y1 + y2, t1 + t2


@cuda.jit(device=True, inline=True)
def _block_merge_dense(m, s, sy, t, sm, ss, sa, sb):
    """The block's quadruple from each thread's: a tree in shared memory."""
    tid = cuda.threadIdx.x
    sm[tid] = m
    ss[tid] = s
    sa[tid] = sy
    sb[tid] = t
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            m2, s2, y2, t2 = _merge_dense(sm[tid], ss[tid], sa[tid], sb[tid], sm[tid + h], ss[tid + h], sa[tid + h],
                                          sb[tid + h])
            sm[tid] = m2
            ss[tid] = s2
            sa[tid] = y2
            sb[tid] = t2
        cuda.syncthreads()
        h >>= 1
    m = sm[0]
    s = ss[0] + (m - m)  # a row of -inf only: NaN, as on the CPU
    sy = sa[0]
    t = sb[0]
    cuda.syncthreads()
    return m, s, sy, t


@cuda.jit(device=True, inline=True)
def _block_sum2(a, b, sa, sb):
    """Block-wide sums of two values (same tree as above)."""
    tid = cuda.threadIdx.x
    sa[tid] = a
    sb[tid] = b
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            sa[tid] += sa[tid + h]
            sb[tid] += sb[tid + h]
        cuda.syncthreads()
        h >>= 1
    a = sa[0]
    b = sb[0]
    cuda.syncthreads()
    return a, b


@cuda.jit(device=True, inline=True)
def _skip_label_row(lab, i, C, ignore, has_ignore, t, step, loss, grad, want_grad, info):
    """Handle row i when its label is ignored or bad (then returns True): loss 0,
    gradient row 0 (threads t, t + step, ...), bad labels counted in info."""
    k = lab[i]
    bad = not (k >= 0 and k < C)
    skip = has_ignore and k == ignore
    if not (skip or bad):
        return False
    if t == 0:
        loss[i] = 0.0
        if bad and not skip:
            cuda.atomic.add(info, 0, 1)
            cuda.atomic.min(info, 1, i)
    if want_grad:
        for j in range(t, C, step):
            grad[i, j] = 0.0
    return True


@cuda.jit(device=True, inline=True)
def _skip_gh_row(k, i, C, ignore, has_ignore, t, step, grad, hess, zero, info):
    """grad_hess' ``_skip_label_row``: row i (label ``k``) ignored or bad
    (then returns True): gradient and Hessian rows 0 (threads t, t + step,
    ...), a bad label counted in info."""
    bad = not (k >= 0 and k < C)
    skip = has_ignore and k == ignore
    if not (skip or bad):
        return False
    if t == 0 and bad and not skip:
        cuda.atomic.add(info, 0, 1)
        cuda.atomic.min(info, 1, i)
    for j in range(t, C, step):
        grad[i, j] = zero
        hess[i, j] = zero
    return True


@cuda.jit(device=True, inline=True)
def _gh_sparse(p, sc, hit, one):
    """SCCE grad_hess of one class, softmax ``p``, weight ``sc``, ``hit`` the
    label's class: (p sc - [hit] sc, p (1 - p) sc)."""
    g = p * sc
    if hit:
        g -= sc
    return g, p * (one - p) * sc


@cuda.jit(device=True, inline=True)
def _gh_dense(p, yy, sy, sc, one):
    """CCE grad_hess of one class: target ``yy`` (smoothed), ``sy`` = sum(y'):
    ((sum(y') p - y') sc, sum(y') p (1 - p) sc)."""
    return (sy * p - yy) * sc, sy * p * (one - p) * sc


@cuda.jit
def scce_logits_thread_per_row(x, lab, prm, w, ws, loss, grad, want_grad, info):
    R, C = x.shape
    factor = prm[0]
    ignore = prm[8]
    has_ignore = prm[9] != 0.0
    for i in range(cuda.grid(1), R, cuda.gridsize(1)):
        if _skip_label_row(lab, i, C, ignore, has_ignore, 0, 1, loss, grad, want_grad, info):
            continue
        k = lab[i]
        m = x[i, 0]
        for j in range(1, C):
            m = max(m, x[i, j])
        s = 0.0
        for j in range(C):
            s += math.exp(x[i, j] - m)
        loss[i] = math.log(s) - (x[i, k] - m)
        if want_grad:
            sc = w[i * ws] * factor
            r = sc / s
            for j in range(C):
                grad[i, j] = math.exp(x[i, j] - m) * r
            grad[i, k] -= sc


STAGED = True  # C < 32: rows staged through shared memory (False: the thread-per-row kernel above)
STAGED_TPB = 128  # rows (threads) per block of the staged kernel, at most; tests shrink TPB instead
STAGED_DENSE_TPB = 64  # the dense one's: logits and targets staged (2 x 64 x 31 elements, 31.7 KB in float64)
_STAGED = {}


def _staged_kernel(dt, dense=False):
    key = (np.dtype(dt).char, dense)
    k = _STAGED.get(key)
    if k is None:
        k = _STAGED[key] = (_make_staged_dense if dense else _make_staged)(from_dtype(np.dtype(dt)))
    return k


@cuda.jit(device=True, inline=True)
def _stage_in(x, sh, r0, n, c32, cs):
    """Rows r0.. of x (n elements in all, rows of c32) into sh, row rl at
    sh[rl * cs:], the block's threads on consecutive elements: the rows are
    contiguous, the loads coalesced. ``cs`` = c32 | 1: an odd row stride, so
    that threads working on their own rows (sh[t * cs + j]) hit 32 different
    banks; with c32 as the stride, 16 classes would put a warp's 32 reads in
    2 banks (16-way conflicts), 10 classes in 16 (2-way)."""
    for q in range(int32(cuda.threadIdx.x), n, int32(cuda.blockDim.x)):
        rl = q // c32
        col = q - rl * c32
        sh[rl * cs + col] = x[r0 + rl, col]


@cuda.jit(device=True, inline=True)
def _row_max(sh, o, C):
    """The max of a staged row, sh[o:o + C] (the staged kernels' thread per row)."""
    m = sh[o]
    for j in range(1, C):
        m = max(m, sh[o + j])
    return m


@cuda.jit(device=True, inline=True)
def _stage_out(sh, grad, r0, n, c32, cs):
    """The reverse of ``_stage_in``: sh back to rows r0.. of grad, coalesced."""
    for q in range(int32(cuda.threadIdx.x), n, int32(cuda.blockDim.x)):
        rl = q // c32
        col = q - rl * c32
        grad[r0 + rl, col] = sh[rl * cs + col]


def _make_staged_dense(nbt):
    """CCE from logits for short rows (C < SMALL_C): a thread per row, the
    block's logits and targets staged through shared memory as in
    ``_make_staged`` (STAGED_DENSE_TPB rows per block: two arrays). Before it,
    a short dense row took a whole block (256 threads for 10 classes, a tree
    over the block per row); until 2026-12-06 each thread read its targets from
    its own row in global memory, twice (a warp's load touching 32 rows).
    loss = sum(y') logsumexp(x) - sum(y' x), gradient sum(y') softmax(x) - y'
    (y' = y a + b; y has x's dtype, device.py checks); sums in float64."""
    sh_size = STAGED_DENSE_TPB * (SMALL_C - 1)

    @cuda.jit
    def cce_staged(y, x, prm, w, ws, loss, grad, want_grad, info):
        R, C = x.shape
        sh = cuda.shared.array(sh_size, nbt)
        shy = cuda.shared.array(sh_size, nbt)
        factor = prm[0]
        a = prm[3]
        b = prm[4]
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        c32 = int32(C)
        cs = c32 | int32(1)  # an odd row stride in sh (see _stage_in)
        for r0 in range(cuda.blockIdx.x * nt, R, cuda.gridDim.x * nt):
            nr = min(nt, R - r0)
            n = int32(nr) * c32
            _stage_in(x, sh, r0, n, c32, cs)
            _stage_in(y, shy, r0, n, c32, cs)
            cuda.syncthreads()
            if t < nr:
                i = r0 + t
                o = t * cs
                m = _row_max(sh, o, C)
                s = 0.0
                sy = 0.0
                syx = 0.0
                for j in range(C):
                    d = sh[o + j] - m
                    yy = shy[o + j] * a + b
                    s += math.exp(d)
                    sy += yy
                    syx += yy * d
                loss[i] = sy * math.log(s) - syx
                if want_grad:
                    sc = w[i * ws] * factor
                    r = sc * sy / s
                    for j in range(C):
                        sh[o + j] = math.exp(sh[o + j] - m) * r - (shy[o + j] * a + b) * sc
            cuda.syncthreads()
            if want_grad:
                _stage_out(sh, grad, r0, n, c32, cs)
            cuda.syncthreads()

    return cce_staged


def _make_staged(nbt):
    """SCCE from logits for short rows (C < SMALL_C), a thread per row as
    ``scce_logits_thread_per_row`` and the same arithmetic in the same order
    (the same numbers bit for bit), but the block's rows (contiguous in memory)
    are loaded into shared memory by all its threads together, consecutive
    threads reading consecutive elements, and the gradient goes back the same
    way. There, each thread read its own row: a warp's load touched 32 rows
    C elements apart, and the row was read three times (max, sum, gradient)
    and its exps computed twice; on the H100 (2026-12-05, GPU_KERNELS.md) 1048576 x 10
    took 134 us of device time, 0.23 of the copy floor (92 MB at the 2.99 TB/s
    copy rate measured in that run)."""
    sh_size = STAGED_TPB * (SMALL_C - 1)

    @cuda.jit
    def scce_staged(x, lab, prm, w, ws, loss, grad, want_grad, info):
        R, C = x.shape
        sh = cuda.shared.array(sh_size, nbt)
        factor = prm[0]
        ignore = prm[8]
        has_ignore = prm[9] != 0.0
        t = cuda.threadIdx.x
        nt = cuda.blockDim.x
        c32 = int32(C)
        cs = c32 | int32(1)  # an odd row stride in sh (see _stage_in)
        for r0 in range(cuda.blockIdx.x * nt, R, cuda.gridDim.x * nt):
            nr = min(nt, R - r0)
            n = int32(nr) * c32
            _stage_in(x, sh, r0, n, c32, cs)
            cuda.syncthreads()
            if t < nr:
                i = r0 + t
                o = t * cs
                k = lab[i]
                # an ignored or bad label: loss 0, counted; its gradient row (zeros) goes out through sh
                if _skip_label_row(lab, i, C, ignore, has_ignore, 0, 1, loss, grad, False, info):
                    if want_grad:
                        for j in range(C):
                            sh[o + j] = 0.0
                else:
                    m = _row_max(sh, o, C)
                    s = 0.0
                    for j in range(C):
                        s += math.exp(sh[o + j] - m)
                    loss[i] = math.log(s) - (sh[o + k] - m)
                    if want_grad:
                        sc = w[i * ws] * factor
                        r = sc / s
                        for j in range(C):
                            sh[o + j] = math.exp(sh[o + j] - m) * r
                        sh[o + k] -= sc
            cuda.syncthreads()
            if want_grad:
                _stage_out(sh, grad, r0, n, c32, cs)
            cuda.syncthreads()  # the next rows overwrite sh

    return scce_staged


_BLOCK_ROWS = {}


UNROLL = 4  # block-per-row kernels: loads in flight per thread (1: the loop as it was)
CCE_FUSED = True  # dense block-per-row kernel: target sums in the statistics pass (False: three passes, as before)


def _block_rows(dt):
    """(scce, cce, scce with the row in shared memory) block-per-row kernels
    for dtype ``dt`` (and ``UNROLL``, ``CCE_FUSED``)."""
    key = (np.dtype(dt).char, UNROLL, CCE_FUSED)
    ks = _BLOCK_ROWS.get(key)
    if ks is None:
        ks = _BLOCK_ROWS[key] = _make_block_rows(from_dtype(np.dtype(dt)), UNROLL, CCE_FUSED)
    return ks


def _make_block_rows(nbt, unroll=1, fused=True):
    """A block per row, two reads of it: statistics by an online softmax, then
    the gradient (the row should still be in L2, see ``_launch_rows``); the
    arithmetic in the input's dtype (``nbt``). ``unroll`` > 1: the kernels
    load ``unroll`` elements per thread before they use them, in both passes,
    the row's tail included (its loads clamped to the row's last element, the
    elements past it skipped). ``fused=False``: the dense kernel as it was
    (three reads of the logits, two of the targets, one load at a time).
    The plain loop (``unroll=1``) waits for each load before the next (the
    fold uses it), so a block of 512 threads kept 2 KB in flight and a long row
    streamed at a fraction of the memory's speed (H100: 0.21 of the copy floor
    at 8192 x 32000). Each thread takes its elements in the same order either
    way: the same numbers, bit for bit."""

    def make_stats(keep):
        """The statistics pass; ``keep``: each element also stored into
        ``row`` (the shared-memory kernel's copy of the row)."""

        @cuda.jit(device=True, inline=True)
        def stats(x, i, C, sm, ss, ninf, zero, one, row):
            if unroll == 1 and not keep:  # compile-time constants: one of the two branches is compiled
                return _block_softmax_stats(x, i, C, sm, ss, ninf, zero, one)
            tid = cuda.threadIdx.x
            nt = cuda.blockDim.x
            v = cuda.local.array(unroll, nbt)  # registers: the loops below unroll fully
            m = ninf
            s = zero
            last = C - 1
            j = tid
            while j < C:  # the row's tail too: loads clamped to the row, folds guarded
                for u in range(unroll):
                    v[u] = x[i, min(j + u * nt, last)]
                for u in range(unroll):
                    jj = j + u * nt
                    if jj < C:
                        if keep:
                            row[jj] = v[u]
                        m, s = _fold(m, s, v[u], one)
                j += unroll * nt
            return _block_merge_stats(m, s, sm, ss)

        return stats

    stats = make_stats(False)
    stats_kept = make_stats(True)

    @cuda.jit
    def scce_rows(x, lab, prm, w, ws, loss, grad, want_grad, info):
        R, C = x.shape
        sm = cuda.shared.array(MAX_TPB, nbt)
        ss = cuda.shared.array(MAX_TPB, nbt)
        v = cuda.local.array(unroll, nbt)
        factor = nbt(prm[0])
        ninf = nbt(-math.inf)
        zero = nbt(0.0)
        one = nbt(1.0)
        ignore = prm[8]
        has_ignore = prm[9] != 0.0
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            if unroll == 1:  # as it was: the label checked before the row is read
                if _skip_label_row(lab, i, C, ignore, has_ignore, tid, nt, loss, grad, want_grad, info):
                    continue
                k = lab[i]
                m, s = stats(x, i, C, sm, ss, ninf, zero, one, sm)
            else:  # the label's load in flight with the row's (see the register kernels)
                k = lab[i]
                m, s = stats(x, i, C, sm, ss, ninf, zero, one, sm)
                if _skip_label_row(lab, i, C, ignore, has_ignore, tid, nt, loss, grad, want_grad, info):
                    continue
            if tid == 0:
                loss[i] = math.log(s) - (x[i, k] - m)
            if want_grad:
                sc = w[i * ws] * factor
                r = sc / s
                j = tid
                if unroll > 1:
                    last = C - 1
                    while j < C:
                        for u in range(unroll):
                            v[u] = x[i, min(j + u * nt, last)]
                        for u in range(unroll):
                            jj = j + u * nt
                            if jj < C:
                                g = math.exp(v[u] - m) * r
                                if jj == k:
                                    g -= sc
                                grad[i, jj] = g
                        j += unroll * nt
                else:
                    while j < C:
                        g = math.exp(x[i, j] - m) * r
                        if j == k:
                            g -= sc
                        grad[i, j] = g
                        j += nt

    @cuda.jit
    def scce_rows_smem(x, lab, prm, w, ws, loss, grad, want_grad, info):
        """``scce_rows`` with the row kept in (dynamic) shared memory between
        its two passes: read from global memory once, the gradient computed
        from the copy (``ROWS_SMEM``; the launch gives ``C`` elements of
        dynamic shared memory). A thread reads back only the elements it
        stored itself: no barrier for the copy; the same elements in the same
        order per thread as ``scce_rows``: the same numbers."""
        R, C = x.shape
        sm = cuda.shared.array(MAX_TPB, nbt)
        ss = cuda.shared.array(MAX_TPB, nbt)
        row = cuda.shared.array(0, nbt)
        factor = nbt(prm[0])
        ninf = nbt(-math.inf)
        zero = nbt(0.0)
        one = nbt(1.0)
        ignore = prm[8]
        has_ignore = prm[9] != 0.0
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            k = lab[i]
            m, s = stats_kept(x, i, C, sm, ss, ninf, zero, one, row)
            if _skip_label_row(lab, i, C, ignore, has_ignore, tid, nt, loss, grad, want_grad, info):
                continue
            if tid == 0:
                loss[i] = math.log(s) - (x[i, k] - m)
            if want_grad:
                sc = w[i * ws] * factor
                r = sc / s
                for jj in range(tid, C, nt):
                    g = math.exp(row[jj] - m) * r
                    if jj == k:
                        g -= sc
                    grad[i, jj] = g

    @cuda.jit
    def cce_rows(y, x, prm, w, ws, loss, grad, want_grad, info):
        """loss = sum(y') logsumexp(x) - sum(y' x); grad = sum(y') softmax - y'."""
        R, C = x.shape
        sm = cuda.shared.array(MAX_TPB, nbt)
        ss = cuda.shared.array(MAX_TPB, nbt)
        factor = nbt(prm[0])
        a = nbt(prm[3])
        b = nbt(prm[4])
        ninf = nbt(-math.inf)
        zero = nbt(0.0)
        one = nbt(1.0)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            m, s = _block_softmax_stats(x, i, C, sm, ss, ninf, zero, one)
            # sum(y') and sum(y' (x - m)): plain sums through the same shared arrays
            sy = zero
            syx = zero
            for j in range(tid, C, nt):
                yy = y[i, j] * a + b
                sy += yy
                syx += yy * (x[i, j] - m)
            sy, syx = _block_sum2(sy, syx, sm, ss)
            if tid == 0:
                loss[i] = sy * math.log(s) - syx
            if want_grad:
                sc = w[i * ws] * factor
                r = sc * sy / s
                for j in range(tid, C, nt):
                    grad[i, j] = math.exp(x[i, j] - m) * r - (y[i, j] * a + b) * sc

    @cuda.jit
    def cce_rows_fused(y, x, prm, w, ws, loss, grad, want_grad, info):
        """``cce_rows`` with the target sums folded into the statistics pass:
        two reads of the row (logits and targets) instead of three of the
        logits and two of the targets, ``unroll`` loads of each in flight."""
        R, C = x.shape
        sm = cuda.shared.array(MAX_TPB, nbt)
        ss = cuda.shared.array(MAX_TPB, nbt)
        sa = cuda.shared.array(MAX_TPB, nbt)
        sb = cuda.shared.array(MAX_TPB, nbt)
        xv = cuda.local.array(unroll, nbt)
        yv = cuda.local.array(unroll, nbt)
        factor = nbt(prm[0])
        a = nbt(prm[3])
        b = nbt(prm[4])
        ninf = nbt(-math.inf)
        zero = nbt(0.0)
        one = nbt(1.0)
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        last = C - 1
        for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            m = ninf
            s = zero
            sy = zero
            t = zero
            j = tid
            while j < C:  # loads clamped to the row, folds guarded (see scce_rows)
                for u in range(unroll):
                    jj = min(j + u * nt, last)
                    xv[u] = x[i, jj]
                    yv[u] = y[i, jj]
                for u in range(unroll):
                    if j + u * nt < C:
                        m, s, sy, t = _fold_dense(m, s, sy, t, xv[u], yv[u] * a + b, one, zero)
                j += unroll * nt
            m, s, sy, t = _block_merge_dense(m, s, sy, t, sm, ss, sa, sb)
            if tid == 0:
                loss[i] = sy * math.log(s) - t
            if want_grad:
                sc = w[i * ws] * factor
                r = sc * sy / s
                j = tid
                while j < C:
                    for u in range(unroll):
                        jj = min(j + u * nt, last)
                        xv[u] = x[i, jj]
                        yv[u] = y[i, jj]
                    for u in range(unroll):
                        jj = j + u * nt
                        if jj < C:
                            grad[i, jj] = math.exp(xv[u] - m) * r - (yv[u] * a + b) * sc
                    j += unroll * nt

    return scce_rows, (cce_rows_fused if fused else cce_rows), scce_rows_smem


# ---------------------------------------------------------------------------
# Warp-shuffle kernels (real GPUs; the simulator has no shuffles and runs the
# shared-memory kernels above). A warp per row for C <= WARP_ROW_MAX: lanes
# read consecutive elements (coalesced), statistics combine with a butterfly
# of shfl_xor (every lane ends with the row's max and sum), no block barrier.
# ---------------------------------------------------------------------------

WARP_ROW_MAX = 4096


@cuda.jit(device=True, inline=True)
def _warp_allreduce_stats(m, s):
    off = 16
    while off > 0:
        m2 = cuda.shfl_xor_sync(0xFFFFFFFF, m, off)
        s2 = cuda.shfl_xor_sync(0xFFFFFFFF, s, off)
        m, s = _merge(m, s, m2, s2)
        off >>= 1
    return m, s


@cuda.jit(device=True, inline=True)
def _warp_allsum2(a, b):
    off = 16
    while off > 0:
        a += cuda.shfl_xor_sync(0xFFFFFFFF, a, off)
        b += cuda.shfl_xor_sync(0xFFFFFFFF, b, off)
        off >>= 1
    return a, b


@cuda.jit(device=True, inline=True)
def _lane_stats(x, i, C, lane):
    m = -math.inf
    s = 0.0
    for j in range(lane, C, 32):
        m, s = _fold(m, s, x[i, j], 1.0)  # a +inf makes the sum NaN, as on the CPU
    return m, s


@cuda.jit
def scce_logits_warp(x, lab, factor, ignore, has_ignore, w, ws, loss, grad, want_grad, info):
    R, C = x.shape
    lane = cuda.threadIdx.x & 31
    gw = (cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x) >> 5
    nw = (cuda.gridDim.x * cuda.blockDim.x) >> 5
    for i in range(gw, R, nw):
        if _skip_label_row(lab, i, C, ignore, has_ignore, lane, 32, loss, grad, want_grad, info):
            continue
        k = lab[i]
        m, s = _lane_stats(x, i, C, lane)
        m, s = _warp_allreduce_stats(m, s)
        if lane == 0:
            loss[i] = math.log(s) - (x[i, k] - m)
        if want_grad:
            sc = w[i * ws] * factor
            r = sc / s
            for j in range(lane, C, 32):
                g = math.exp(x[i, j] - m) * r
                if j == k:
                    g -= sc
                grad[i, j] = g


@cuda.jit
def cce_logits_warp(y, x, factor, a, b, w, ws, loss, grad, want_grad, info):
    R, C = x.shape
    lane = cuda.threadIdx.x & 31
    gw = (cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x) >> 5
    nw = (cuda.gridDim.x * cuda.blockDim.x) >> 5
    for i in range(gw, R, nw):
        m, s = _lane_stats(x, i, C, lane)
        m, s = _warp_allreduce_stats(m, s)
        sy = 0.0
        syx = 0.0
        for j in range(lane, C, 32):
            yy = y[i, j] * a + b
            sy += yy
            syx += yy * (x[i, j] - m)
        sy, syx = _warp_allsum2(sy, syx)
        if lane == 0:
            loss[i] = sy * math.log(s) - syx
        if want_grad:
            sc = w[i * ws] * factor
            r = sc * sy / s
            for j in range(lane, C, 32):
                grad[i, j] = math.exp(x[i, j] - m) * r - (y[i, j] * a + b) * sc


# ---------------------------------------------------------------------------
# Register-resident SCCE / CCE from logits (one read of the row, one write of
# the gradient)
# ---------------------------------------------------------------------------
# A group of threads per row -- a warp (C <= WARP_MAX_C) or a whole block of
# RB_TPB threads (C <= RB_TPB * REG_VPL_MAX) -- each thread holding its share
# of the row's logits in registers: max, exp (once per element, kept), sum, then the
# gradient from the kept exponentials. All arithmetic in the input's dtype
# (the kernels above run their statistics in float64). Group reductions: warp
# shuffles on a GPU, a shared-memory tree in the simulator (where a "warp" is
# a block of 32 threads) and in block mode.
REGS = True  # False: the kernels above (two reads of each row)
# Registers (ptxas -v for sm_90, float32): warp mode with 32 logits per lane
# uses 104 (SCCE) / 119 (CCE) per thread, block mode with 16 per thread
# 154 / 148 -- a 256-thread block fits the 64K register file, a 512-thread
# one does not (the launch would fail); 64 per thread spills.
REG_VPL_MAX = 16  # logits per thread at most in block mode
RB_TPB = 256  # threads per block of the block mode (C <= 4096); tests shrink it
WARP_MAX_C = 32 * 32  # warp mode up to this many classes, block mode above; tests shrink it
_REGS = {}


def _vpl(C, group):
    v = 1
    while v * group < C:
        v *= 2
    return v


@cuda.jit(device=True, inline=True)
def _block_total(acc, sw, lane, g, tot):
    """tot[0] += the block's sum of the groups' ``acc`` (held by each group's
    lane 0): one atomic per block. After the row loop, reached by every thread."""
    t = cuda.threadIdx.x
    nwarps = cuda.blockDim.x // g
    if lane == 0:
        sw[t // g] = acc
    cuda.syncthreads()
    if t == 0:
        a = 0.0
        for q in range(nwarps):
            a += sw[q]
        cuda.atomic.add(tot, 0, a)


@cuda.jit
def _reset_info_tot(info, tot):
    info[0] = 0
    info[1] = 0x7FFFFFFFFFFFFFFF
    tot[0] = 0.0


REG_LOADS_FIRST = True  # register kernels: all loads of a row issued before any use (False: as they were)


def _regs_kernel(vpl, block_mode, dt, dense, gh=False):
    key = (vpl, bool(block_mode), np.dtype(dt).char, bool(dense), REG_LOADS_FIRST, bool(gh))
    k = _REGS.get(key)
    if k is None:
        k = _REGS[key] = _make_regs(vpl, bool(block_mode), from_dtype(np.dtype(dt)), bool(dense), REG_LOADS_FIRST,
                                    bool(gh))
    return k


def _regs_shape(R, C):
    """How the register kernels run an (R, C) batch: ``(vpl, block_mode, tpb,
    blocks)``, or None where a row does not fit (C beyond RB_TPB x REG_VPL_MAX)."""
    if C <= WARP_MAX_C:
        if _SIM:
            return _vpl(C, 32), False, 32, max(1, min(R, MAX_BLOCKS))
        return _vpl(C, 32), False, 256, max(1, min((R * 32 + 255) // 256, MAX_BLOCKS))
    tpb = min(RB_TPB, MAX_TPB)
    vpl = _vpl(C, tpb)
    if vpl > REG_VPL_MAX:
        return None
    return vpl, True, tpb, max(1, min(R, MAX_BLOCKS))


def _make_regs(vpl, block_mode, nbt, dense, loads_first=True, gh=False):
    """The SCCE kernel, or (``dense``) the CCE one: y' = y a + b (label
    smoothing), loss = sum(y') logsumexp(x) - sum(y' x), gradient
    sum(y') softmax(x) - y'; y read once, kept beside x. ``gh``: their
    grad_hess twins (gradient boosting: the gradient and the Hessian diagonal
    sum(y') p (1 - p) of sum_i w_i loss_i, ``p`` the softmax), the same loads
    and reductions.

    ``loads_first``: each lane's ``vpl`` loads are unconditional (the column
    index clamped to the row; the padding slots then set to -inf / 0), so they
    all issue before the first use. Guarded by ``j < C``, each load sat in its
    own basic block with its compare (PTX: 32 x (load, compare, branch) at 1000
    classes), and a lane waited for each load before issuing the next (on the
    H100 the 1000-class case ran at 0.31 of the copy floor, device time alone).
    Same numbers bit for bit: padding slots hold -inf (never the max) and add
    exp(-inf - m) = +0.0 to the sum."""
    tree = block_mode or _SIM

    @cuda.jit(device=True, inline=True)
    def gmax(v, sh, lane, g):
        if tree:
            sh[lane] = v
            cuda.syncthreads()
            h = g >> 1
            while h > 0:
                if lane < h and sh[lane + h] > sh[lane]:
                    sh[lane] = sh[lane + h]
                cuda.syncthreads()
                h >>= 1
            v = sh[0]
            cuda.syncthreads()
            return v
        off = 16
        while off > 0:
            o = cuda.shfl_xor_sync(0xFFFFFFFF, v, off)
            if o > v:
                v = o
            off >>= 1
        return v

    @cuda.jit(device=True, inline=True)
    def gsum(v, sh, lane, g):
        if tree:  # the group is the whole block here (the simulator's warp: a 32-thread block)
            return _ew_block_sum(v, sh)
        off = 16
        while off > 0:
            v += cuda.shfl_xor_sync(0xFFFFFFFF, v, off)
            off >>= 1
        return v

    @cuda.jit(device=True, inline=True)
    def group():
        """(threads per row, this thread's lane in it, its first row, row step)."""
        if block_mode or _SIM:
            if block_mode:
                g = cuda.blockDim.x
            else:  # the simulator's warp: a block of 32 threads
                g = 32
            return g, cuda.threadIdx.x, cuda.blockIdx.x, cuda.gridDim.x
        return (32, cuda.threadIdx.x & 31, (cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x) >> 5,
                (cuda.gridDim.x * cuda.blockDim.x) >> 5)

    @cuda.jit(device=True, inline=True)
    def load_max(x, i, C, xv, sh, lane, g, ninf):
        """Row i's logits of this lane into xv (one read of the row); the row max."""
        m = ninf
        if loads_first:
            last = C - 1
            for v in range(vpl):
                xv[v] = x[i, min(lane + v * g, last)]
            for v in range(vpl):
                if lane + v * g > last:
                    xv[v] = ninf
                xx = xv[v]
                if xx > m:
                    m = xx
            return gmax(m, sh, lane, g)
        for v in range(vpl):
            j = lane + v * g
            if j < C:
                xx = x[i, j]
                xv[v] = xx
                if xx > m:
                    m = xx
        return gmax(m, sh, lane, g)

    @cuda.jit(device=True, inline=True)
    def load_y(y, i, C, yv, lane, g):
        """Row i's targets of this lane into yv, as read (issued before the
        logits' loads; used after them)."""
        last = C - 1
        for v in range(vpl):
            yv[v] = y[i, min(lane + v * g, last)]

    @cuda.jit
    def kern(x, lab, prm, ignore, w, ws, loss, grad, want_grad, info, tot):
        """prm (dtype): factor, (unused), has_ignore, -inf, 0; ``ignore`` a
        float64 scalar (exact for any label); ``tot[0] += sum(loss_i w_i)``."""
        R, C = x.shape
        xv = cuda.local.array(vpl, nbt)
        sh = cuda.shared.array(1024, nbt)
        sw = cuda.shared.array(32, float64)
        acc = 0.0
        factor = prm[0]
        has_ignore = prm[2] != 0
        ninf = prm[3]
        zero = prm[4]
        g, lane, first, step = group()
        for i in range(first, R, step):
            if loads_first:
                # the label and the row loaded together: checked first, the label's
                # load had to arrive before the row's were issued (a wait per row)
                k = lab[i]
                m = load_max(x, i, C, xv, sh, lane, g, ninf)
                if _skip_label_row(lab, i, C, ignore, has_ignore, lane, g, loss, grad, want_grad, info):
                    continue
            else:
                if _skip_label_row(lab, i, C, ignore, has_ignore, lane, g, loss, grad, want_grad, info):
                    continue
                k = lab[i]
                m = load_max(x, i, C, xv, sh, lane, g, ninf)
            s = zero
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    e = math.exp(xv[v] - m)  # an infinite logit: NaN, as on the CPU and in Keras
                    xv[v] = e
                    s += e
            s = gsum(s, sh, lane, g)
            if lane == 0:
                li = math.log(s) - (x[i, k] - m)
                loss[i] = li
                acc += li * w[i * ws]
            if want_grad:
                sc = w[i * ws] * factor
                r = sc / s
                for v in range(vpl):
                    j = lane + v * g
                    if j < C:
                        gg = xv[v] * r
                        if j == k:
                            gg -= sc
                        grad[i, j] = gg
        _block_total(acc, sw, lane, g, tot)

    @cuda.jit
    def kern_dense(y, x, prm, w, ws, loss, grad, want_grad, tot):
        """prm (dtype): factor, a, b, -inf, 0; ``tot[0] += sum(loss_i w_i)``."""
        R, C = x.shape
        xv = cuda.local.array(vpl, nbt)
        yv = cuda.local.array(vpl, nbt)
        sh = cuda.shared.array(1024, nbt)
        sw = cuda.shared.array(32, float64)
        acc = 0.0
        factor = prm[0]
        a = prm[1]
        b = prm[2]
        ninf = prm[3]
        zero = prm[4]
        g, lane, first, step = group()
        for i in range(first, R, step):
            if loads_first:
                load_y(y, i, C, yv, lane, g)
            m = load_max(x, i, C, xv, sh, lane, g, ninf)
            s = zero
            sy = zero
            syx = zero
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    if loads_first:
                        yy = yv[v] * a + b
                    else:
                        yy = y[i, j] * a + b
                    yv[v] = yy
                    sy += yy
                    syx += yy * (xv[v] - m)
                    e = math.exp(xv[v] - m)
                    xv[v] = e
                    s += e
            s = gsum(s, sh, lane, g)
            sy = gsum(sy, sh, lane, g)
            syx = gsum(syx, sh, lane, g)
            if lane == 0:
                li = sy * math.log(s) - syx
                loss[i] = li
                acc += li * w[i * ws]
            if want_grad:
                sc = w[i * ws] * factor
                r = sc * sy / s
                for v in range(vpl):
                    j = lane + v * g
                    if j < C:
                        grad[i, j] = xv[v] * r - yv[v] * sc
        _block_total(acc, sw, lane, g, tot)

    @cuda.jit
    def kern_gh(x, lab, prm, ignore, w, ws, grad, hess, info):
        """SCCE grad_hess. prm (dtype): factor, 1, has_ignore, -inf, 0. An
        ignored or bad label: zero rows (a bad one counted in ``info``)."""
        R, C = x.shape
        xv = cuda.local.array(vpl, nbt)
        sh = cuda.shared.array(1024, nbt)
        factor = prm[0]
        one = prm[1]
        has_ignore = prm[2] != 0
        ninf = prm[3]
        zero = prm[4]
        g, lane, first, step = group()
        for i in range(first, R, step):
            k = lab[i]
            m = load_max(x, i, C, xv, sh, lane, g, ninf)
            if _skip_gh_row(k, i, C, ignore, has_ignore, lane, g, grad, hess, zero, info):
                continue  # the whole group takes this branch (one row)
            s = zero
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    e = math.exp(xv[v] - m)
                    xv[v] = e
                    s += e
            s = gsum(s, sh, lane, g)
            sc = w[i * ws] * factor
            r = one / s
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    grad[i, j], hess[i, j] = _gh_sparse(xv[v] * r, sc, j == k, one)

    @cuda.jit
    def kern_dense_gh(y, x, prm, w, ws, grad, hess):
        """CCE grad_hess. prm (dtype): factor, a, b, -inf, 0, 1."""
        R, C = x.shape
        xv = cuda.local.array(vpl, nbt)
        yv = cuda.local.array(vpl, nbt)
        sh = cuda.shared.array(1024, nbt)
        factor = prm[0]
        a = prm[1]
        b = prm[2]
        ninf = prm[3]
        zero = prm[4]
        one = prm[5]
        g, lane, first, step = group()
        for i in range(first, R, step):
            load_y(y, i, C, yv, lane, g)
            m = load_max(x, i, C, xv, sh, lane, g, ninf)
            s = zero
            sy = zero
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    yy = yv[v] * a + b
                    yv[v] = yy
                    sy += yy
                    e = math.exp(xv[v] - m)
                    xv[v] = e
                    s += e
            s = gsum(s, sh, lane, g)
            sy = gsum(sy, sh, lane, g)
            sc = w[i * ws] * factor
            r = one / s
            for v in range(vpl):
                j = lane + v * g
                if j < C:
                    grad[i, j], hess[i, j] = _gh_dense(xv[v] * r, yv[v], sy, sc, one)

    if gh:
        return kern_dense_gh if dense else kern_gh
    return kern_dense if dense else kern


def _launch_regs(kind, yp, yt, prm, w, ws, loss, grad, want_grad, info, tot, stream):
    """The register kernel for this row length, or False where it does not apply."""
    R, C = yp.shape
    dt = np.dtype(yp.dtype)
    shape = _regs_shape(R, C)
    if shape is None:
        return False
    vpl, block_mode, tpb, blocks = shape
    dense = kind == "cce_logits"
    vals = (prm[0], prm[3], prm[4]) if dense else (prm[0], 0.0, prm[9])
    d_prm = _streams.constant(np.array(list(vals) + [-np.inf, 0.0], dt), stream)
    kern = _regs_kernel(vpl, block_mode, dt, dense)
    if dense:
        launch(kern, blocks, tpb, stream, yt, yp, d_prm, w, ws, loss, grad, want_grad, tot)
    else:
        launch(kern, blocks, tpb, stream, yp, yt, d_prm, float(prm[8]), w, ws, loss, grad, want_grad, info, tot)
    return True


_DEV = {}
_STATUS = {}


def _device_prm(prm, stream=0):
    """The float64 parameter vector on the device for kernels on ``stream``
    (``_streams.constant``: made once per distinct value)."""
    return _streams.constant(np.asarray(prm, np.float64), stream)


def _scratch(name, n, dtype, stream=0):
    return _streams.scratch(name, n, dtype, stream)


def status(stream=0):
    """The per-stream buffer that a call reads back, so that ONE copy (the
    call's synchronization) brings back both the bad-label check and the
    reduced total: int64 ``[n_bad, first_bad, bits of the float64 total]``.
    Returns ``(buffer, info, tot)``, ``info``/``tot`` views of it that the
    kernels write (``info[0]`` the bad-label count, ``info[1]`` the first bad
    row; ``tot[0]`` the float64 ``sum(loss_i w_i)``, accumulated by atomics;
    ``_reset_info_tot`` resets both)."""
    buf = _scratch("status", 3, np.int64, stream)
    v = _STATUS.get(id(buf))
    if v is None or v[0] is not buf:  # the views made once per buffer (see _streams.scratch)
        if len(_STATUS) > 64:
            _STATUS.clear()
        v = _STATUS[id(buf)] = (buf, buf[:2], buf[2:].view(np.float64))
    return v


def read_status(buf, stream=0):
    """``(n_bad, first_bad, total)`` from a ``status`` buffer: one 24-byte copy."""
    h = buf.copy_to_host(stream=stream)
    return int(h[0]), int(h[1]), float(h[2:].view(np.float64)[0])



def _device_limits():
    """(multiprocessors, L2 bytes) of the current device, read once."""
    if not _DEV:
        try:
            d = cuda.get_current_device()
            _DEV["sm"] = int(d.MULTIPROCESSOR_COUNT)
            _DEV["l2"] = int(getattr(d, "L2_CACHE_SIZE", 0)) or (40 << 20)
        except Exception:  # the simulator
            _DEV["sm"], _DEV["l2"] = 4, 40 << 20
    return _DEV["sm"], _DEV["l2"]


def _shared_optin():
    """Shared memory a block may have by opting in (H100: 227 KB), read once;
    the simulator has an H100's figure."""
    if "optin" not in _DEV:
        try:
            _DEV["optin"] = int(cuda.get_current_device().MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
        except Exception:
            _DEV["optin"] = 227 << 10
    return _DEV["optin"]


# Long rows (>= 4096 classes) in the block-per-row kernels: threads per block
# and the share of L2 the rows in flight may take (the gradient pass re-reads
# each row and should find it there). ptxas -v (sm_90), registers per thread
# of the SCCE kernel at UNROLL 4 / 8: 48 / 56 in float32 (a 1024-thread block
# fits the 64K register file), 60 / 70 in float64; 128 at UNROLL 16; the
# (fused) CCE kernel 48 / 96 in float32, 64 / 80 in float64.
ROWS_TPB = 512  # 1024: the SCCE kernel in float32 at UNROLL <= 8 only (registers, above); else 512
ROWS_L2_SHARE = 0.5


def _rows_tpb(itemsize, sparse):
    if ROWS_TPB > 512 and not (sparse and itemsize == 4 and UNROLL <= 8):
        return 512
    return ROWS_TPB


# The SCCE row kept in shared memory between the two passes (a variant
# gpu_check times; not timed on a GPU yet): one read of the row from DRAM
# whatever L2 holds. A 32000-class float32 row is 125 KB: one block per
# multiprocessor, so 1024 threads (float32, UNROLL <= 8), else 512. Rows of up
# to the opt-in shared memory less the kernel's own 2 x MAX_TPB elements
# (H100: 56064 classes in float32, 27008 in float64); longer rows take the
# L2 kernel. ptxas -v (sm_90): 48 / 56 registers at UNROLL 4 / 8 in float32,
# 79 in float64.
ROWS_SMEM = False


def _smem_row_fits(cols, itemsize):
    return cols * itemsize + 2 * MAX_TPB * itemsize <= _shared_optin()


def _launch_rows(kernel, small_kernel, rows, cols, itemsize, args, stream=0, sparse=False, smem_kernel=None):
    if small_kernel is not None and cols < SMALL_C:
        tpb = min(TPB, STAGED_TPB if sparse else STAGED_DENSE_TPB)  # the rows the staged kernel's shared memory holds
        blocks = max(1, min((rows + tpb - 1) // tpb, MAX_BLOCKS))
        launch(small_kernel, blocks, tpb, stream, *args)
        return
    if smem_kernel is not None and ROWS_SMEM and _smem_row_fits(cols, itemsize):
        tpb = TPB
        if TPB == 256:  # as on a GPU (tests shrink TPB)
            tpb = 1024 if itemsize == 4 and UNROLL <= 8 else 512
        launch(smem_kernel, max(1, min(rows, MAX_BLOCKS)), tpb, stream, *args, shmem=cols * itemsize)
        return
    tpb = TPB
    blocks = min(rows, MAX_BLOCKS)
    if TPB == 256 and cols >= 4096:
        # Long rows: fewer, wider blocks keep the rows in flight within
        # ROWS_L2_SHARE of L2, so that the gradient pass finds its row there.
        tpb = _rows_tpb(itemsize, sparse)
        sm, l2 = _device_limits()
        per_sm = max(1, min(2048 // tpb, int(l2 * ROWS_L2_SHARE) // max(1, sm * cols * itemsize)))
        blocks = min(rows, sm * per_sm, MAX_BLOCKS)
    launch(kernel, max(1, blocks), tpb, stream, *args)


def run(kind, yt, yp, prm, w, ws, loss, grad, want_grad, stream=0):
    """Launch ``kind`` ("scce_logits"/"cce_logits") on device arrays (``prm``
    is the host parameter vector). Returns ``(buf, info, tot)`` (``status``:
    ``info`` = ``[n_bad, first_bad]``, ``tot`` = ``[sum(loss_i w_i)]``, both
    reset here; ``tot`` None where the kernel did not sum: the caller sums the
    per-row losses into ``buf``'s total, or on the host)."""
    prm = np.asarray(prm, dtype=np.float64)
    buf, info, tot = status(stream)
    launch(_reset_info_tot, 1, 1, stream, info, tot)
    R, C = yp.shape
    if REGS and R and C >= SMALL_C and kind in ("scce_logits", "cce_logits"):
        if _launch_regs(kind, yp, yt, prm, w, ws, loss, grad, want_grad, info, tot, stream):
            return buf, info, tot
    if R == 0:
        return buf, info, None
    use_warp = not _SIM and SMALL_C <= C <= WARP_ROW_MAX and TPB >= 32
    if use_warp:
        blocks = max(1, min((R * 32 + 255) // 256, MAX_BLOCKS))
        if kind == "scce_logits":
            launch(scce_logits_warp, blocks, 256, stream, yp, yt, prm[0], prm[8], prm[9] != 0.0, w, ws, loss, grad, want_grad, info)
        elif kind == "cce_logits":
            launch(cce_logits_warp, blocks, 256, stream, yt, yp, prm[0], prm[3], prm[4], w, ws, loss, grad, want_grad, info)
        else:
            raise ValueError(f"no CUDA kernel {kind!r}")
        return buf, info, None
    d_prm = _device_prm(prm, stream)
    if kind == "scce_logits":
        small = _staged_kernel(yp.dtype) if STAGED else scce_logits_thread_per_row
        ks = _block_rows(yp.dtype)
        _launch_rows(ks[0], small, R, C, yp.dtype.itemsize, (yp, yt, d_prm, w, ws, loss, grad, want_grad, info), stream,
                     sparse=True, smem_kernel=ks[2])
    elif kind == "cce_logits":
        small = _staged_kernel(yp.dtype, dense=True) if STAGED else None
        _launch_rows(_block_rows(yp.dtype)[1], small, R, C, yp.dtype.itemsize, (yt, yp, d_prm, w, ws, loss, grad, want_grad, info), stream)
    else:
        raise ValueError(f"no CUDA kernel {kind!r}")
    return buf, info, None


def _host_entry(kind):
    """The registry's kernel contract for NumPy inputs under use_backend("cuda"):
    copy in, run, copy loss and gradient out."""

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        st, d_yt, d_yp, d_w, d_loss, d_grad = _streams.stage(yt, yp, w, loss, grad, want_grad)
        info = run(kind, d_yt, d_yp, prm, d_w, ws, d_loss, d_grad, want_grad, st)[1].copy_to_host(stream=st)
        d_loss.copy_to_host(loss, stream=st)
        if want_grad:
            d_grad.copy_to_host(grad, stream=st)
        _streams.sync(st)
        total = float(np.dot(loss.astype(np.float64), np.broadcast_to(w.astype(np.float64), loss.shape)))
        return ((float(info[0]), float(info[1]) if info[0] else -1.0, total),)

    kernel.__name__ = kernel.__qualname__ = kind
    return kernel


scce_logits = _host_entry("scce_logits")
cce_logits = _host_entry("cce_logits")
