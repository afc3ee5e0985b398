"""Vectorizable elementary functions for the Numba kernels.

Numba >= 0.62 lost SVML, so ``np.exp``/``np.log`` on float32 compile to one
scalar libm call per element and the loops around them stop vectorizing. The
float32 versions here are written with arithmetic, selects and bit casts only,
so LLVM's loop vectorizer turns them into AVX2/AVX-512 code:

1. ``exp32(x)``: ``x = k ln2 + r``, ``|r| <= ln2/2``; ``exp(r)`` by a degree-7
   Taylor polynomial (truncation error < 1e-8 relative); ``2**k`` built from
   its exponent bits in two halves so the whole float32 range, subnormal
   results included, comes out right. Max error measured (``tests/test_math.py``):
   1.1 ulp for ``|x| <= 10``, 4.5 ulp toward the ends of the range (fast-math
   merges the two steps of the reduction, see exp32).
2. ``log32(x)``: ``x = 2**e m``, ``m`` in ``[sqrt(1/2), sqrt(2))``;
   ``log(m) = f - f**2/2 + f**3 P(f)``, ``f = m - 1``, ``P`` a degree-7
   polynomial fitted here (no division). Max error measured: 2 ulp.
3. ``log1p32(u)``: the same polynomial evaluated at ``u`` itself near 0.

Special values follow IEEE/libm: ``exp(nan) = nan``, ``exp(+inf) = inf``,
``exp(-inf) = 0``; ``log(0) = -inf``, ``log(x<0) = nan``, ``log(inf) = inf``,
``log(nan) = nan``.

The float64 versions (``exp64``, ``log64``, ``log1p64``) are built the same
way, as libm's calls kept every float64 loop scalar (4-14x float32's time for
2x the bytes: BCE from logits on 16384x256, one thread, 108 ms against 15):

4. ``exp64(x)``: the reduction of exp32 with a 1.5*2**52 magic number and
   ln 2 split in a 33-bit high part (``k ln2_hi`` exact for every ``k`` in
   range) and the rest; ``exp(r)`` by its degree-13 Taylor polynomial
   (truncation < 5e-18 relative).
5. ``log64(x)``: ``m`` as for log32, ``f = m - 1``, ``s = f / (2 + f)``;
   ``log1p(f) = f - (f**2/2 - s (f**2/2 + R))``, ``R = sum 2 s**(2i) / (2i + 1)``
   for ``i = 1..10`` (the atanh series of ``log((1 + s)/(1 - s))``, truncation
   < 2e-18 relative where ``|s| <= 0.172``); one division, which vectorizes.
6. ``log1p64(u)``: that series straight on ``u`` in ``[sqrt(1/2) - 1,
   sqrt(2) - 1]``, ``log64(1 + u)`` outside.

Their errors are measured by ``tests/test_math.py`` against long double
references (at most 1 ulp for exp64, 2 for log64 and log1p64): a few ulp in
float64 is far below what any loss compares at, and float64 stays the accurate
path by its 53-bit arithmetic, not by libm.

The rounding ``k = round(x / ln2)`` uses the 1.5*2**23 "magic number" and
reads ``k`` from the bits of the sum; it never converts a float to an integer
(LLVM's ``fptosi`` of NaN is poison) and is immune to ``reassoc``, which could
otherwise fold ``(a + M) - M`` into ``a``.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..._config import FASTMATH

_F32 = np.float32


_i32 = ir.IntType(32)
_f32 = ir.FloatType()


@intrinsic
def _exp2_parts(typingctx, t):
    """From ``t = x/ln2 + 1.5*2**23`` (float32): ``(k, 2**(k>>1), 2**(k-(k>>1)))``
    with ``k`` the integer in t's low mantissa bits, as float32s. The integer
    work is done on i32 in LLVM IR (Numba would widen it to int64)."""
    if t != types.float32:
        return None
    sig = types.UniTuple(types.float32, 3)(types.float32)

    def codegen(context, builder, signature, args):
        b = builder.bitcast(args[0], _i32)
        k = builder.sub(b, ir.Constant(_i32, 0x4B400000))
        k1 = builder.ashr(k, ir.Constant(_i32, 1))
        k2 = builder.sub(k, k1)
        bias = ir.Constant(_i32, 127)
        sh = ir.Constant(_i32, 23)
        s1 = builder.bitcast(builder.shl(builder.add(k1, bias), sh), _f32)
        s2 = builder.bitcast(builder.shl(builder.add(k2, bias), sh), _f32)
        kf = builder.sitofp(k, _f32)
        return context.make_tuple(builder, signature.return_type, (kf, s1, s2))

    return sig, codegen


@intrinsic
def _frexp_parts(typingctx, x):
    """float32 ``x > 0`` (normal) -> ``(e, m)``: ``x = 2**e m``, ``m`` in [1, 2),
    both float32; bit manipulation on i32 in LLVM IR."""
    if x != types.float32:
        return None
    sig = types.UniTuple(types.float32, 2)(types.float32)

    def codegen(context, builder, signature, args):
        b = builder.bitcast(args[0], _i32)
        e = builder.and_(builder.lshr(b, ir.Constant(_i32, 23)), ir.Constant(_i32, 0xFF))
        e = builder.sub(e, ir.Constant(_i32, 127))
        mb = builder.or_(builder.and_(b, ir.Constant(_i32, 0x007FFFFF)), ir.Constant(_i32, 0x3F800000))
        m = builder.bitcast(mb, _f32)
        ef = builder.sitofp(e, _f32)
        return context.make_tuple(builder, signature.return_type, (ef, m))

    return sig, codegen


@intrinsic
def _scale_half(typingctx, p, t):
    """``p * 2**(k>>1)`` (``k`` read from ``t`` as in ``_exp2_parts`` /
    ``_exp2_parts64``) by an integer add to p's exponent bits: exact for p in
    [0.5, 2). The exps scale by the other half with one multiply; two
    multiplies ``(p * s1) * s2`` were reassociated under fast-math into
    ``p * (s1 * s2)``, which overflows for the largest k (exp32(88.6) and
    exp64(709.5) came out inf)."""
    if p != t or p not in (types.float32, types.float64):
        return None
    sig = p(p, p)
    if p == types.float32:
        ity, fty, magic, sh = _i32, _f32, 0x4B400000, 23
    else:
        ity, fty, magic, sh = ir.IntType(64), ir.DoubleType(), 0x4338000000000000, 52

    def codegen(context, builder, signature, args):
        k = builder.sub(builder.bitcast(args[1], ity), ir.Constant(ity, magic))
        k1 = builder.ashr(k, ir.Constant(ity, 1))
        b = builder.add(builder.bitcast(args[0], ity), builder.shl(k1, ir.Constant(ity, sh)))
        return builder.bitcast(b, fty)

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` rounded once (``llvm.fma``; one instruction where the CPU
    has FMA). A call, so fast-math's ``reassoc`` cannot merge it with its
    neighbours: in the two-step reduction ``r = (x - k hi) - k lo`` it folds
    ``k hi + k lo`` into ``k ln2``, the error the split exists to avoid
    (exp64 213 ulp at |x| near 709 that way, < 1 ulp with fma)."""
    if a != b or a != c or a not in (types.float32, types.float64):
        return None
    sig = a(a, a, a)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _rint(typingctx, a):
    """``a`` rounded to the nearest integer, ties to even (``llvm.rint``: one
    ``vroundpd``/``vroundps``)."""
    if a not in (types.float32, types.float64):
        return None
    sig = a(a)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.rint", [ty], ir.FunctionType(ty, [ty]))
        return builder.call(fn, args)

    return sig, codegen


# The vector width LLVM's loop vectorizer aims for, per kernel. On Intel's
# AVX-512 cores LLVM's tuning prefers 256-bit vectors (``prefer-256-bit``), so
# the Numba loops ran at half the width of the C backend's (gcc's x86-64-v4
# clones use 512-bit registers): on an Emerald Rapids Xeon, exp64 took 1.39
# against 0.88 ns an element, the float64 exp/log-heavy losses 1.2-1.6x the C
# backend's time. ``"prefer-vector-width"="512"`` on a function lifts that for
# its own loops only (not for Numba code elsewhere in the process, as the
# global NUMBA_CPU_FEATURES would); on a CPU without AVX-512 the widest vector
# it has is used, as before. Opted in kernel by kernel (``wide_vectors()``),
# where measured faster: the elementwise losses that evaluate exp/log per
# element (crossentropy.bce_rows says by how much), SCCE from logits, and the
# columns-layout CCE kernels of short rows (cce_probs_cols). Not
# everywhere: the memory-bound, branchy elementwise losses lost (Huber 1.2-1.45x
# the time), and a row loop of a few dozen elements can lose, its wider (and
# 4x interleaved) vector body no longer fitting in one row, the rest left to
# the scalar remainder (cce_logits_rows, float32, 30 and 100 classes: 1.14x
# and 1.18x the time).
_WIDE_ATTR = '"prefer-vector-width"="512"'


@intrinsic
def wide_vectors(typingctx):
    """A no-op whose code generation marks the function it is compiled into
    (after Numba's inlining: the kernel) ``"prefer-vector-width"="512"``."""
    sig = types.none()

    def codegen(context, builder, signature, args):
        attrs = builder.function.attributes
        # llvmlite's add() accepts only attributes without a value; the set
        # itself is written out verbatim into the function's definition. (Were
        # that ever to change, the kernels would keep LLVM's default width.)
        if isinstance(attrs, set):
            set.add(attrs, _WIDE_ATTR)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def exp32(x):
    xc = x
    if xc > _F32(88.8):
        xc = _F32(88.8)
    if xc < _F32(-104.0):
        xc = _F32(-104.0)
    t = xc * _F32(1.4426950408889634) + _F32(12582912.0)
    kf, s1, s2 = _exp2_parts(t)
    # (fast-math folds these two steps into one, x - k ln2: 4.5 ulp at |x| > 40,
    # < 1.1 ulp for |x| <= 10, where the kernels' x - max and -|x| mostly lie;
    # exact steps with fma, as exp64 takes them, cost exp32 7 % more time)
    r = xc - kf * _F32(0.693145751953125)
    r = r - kf * _F32(1.428606765330187e-06)
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    res = _scale_half(p, t) * s2
    if x < _F32(-104.0):
        res = _F32(0.0)
    return res


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _log1p_tail(f):
    """``log1p(f) - f`` for float32 ``f`` in ``[-0.32, 0.42]`` (log32 uses
    ``[sqrt(1/2) - 1, sqrt(2) - 1]``): ``-f**2/2 + f**3 P(f)``, ``P`` a degree-7
    polynomial, weighted least-squares fit on Chebyshev nodes over
    ``[-0.32, 0.42]`` (fastloss' own, fitted in float64; log1p error 0.9 ulp
    there, log32 max 2 ulp overall). No division: loops vectorize into FMAs."""
    z = f * f
    q = _F32(-0.08499670773744583)
    q = q * f + _F32(0.1342807561159134)
    q = q * f + _F32(-0.13146577775478363)
    q = q * f + _F32(0.14103639125823975)
    q = q * f + _F32(-0.16614308953285217)
    q = q * f + _F32(0.20005464553833008)
    q = q * f + _F32(-0.2500118315219879)
    q = q * f + _F32(0.3333328068256378)
    return (z * f) * q - _F32(0.5) * z


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def log32(x):
    xs = x
    eadj = _F32(0.0)
    if xs < _F32(1.1754943508222875e-38):  # subnormal (or <= 0, fixed below)
        xs = xs * _F32(8388608.0)
        eadj = _F32(-23.0)
    ef, m = _frexp_parts(xs)
    ef = ef + eadj
    if m > _F32(1.4142135623730951):
        m = m * _F32(0.5)
        ef = ef + _F32(1.0)
    f = m - _F32(1.0)
    y = _log1p_tail(f)
    res = (f + (y + ef * _F32(-2.12194440e-4))) + ef * _F32(0.693359375)
    if x == _F32(0.0):
        res = _F32(-np.inf)
    if x < _F32(0.0):
        res = _F32(np.nan)
    if x == _F32(np.inf):
        res = x
    if x != x:
        res = x
    return res


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def log1p32(u):
    """log1p for float32: the polynomial of log32 straight on ``u`` where
    ``u`` is in its range (no rounding of ``1 + u``: tiny ``u`` keep full
    relative precision), ``log32(1 + u)`` outside it (where that rounding
    costs at most an ulp). Not Goldberg's ``u / ((1 + u) - 1)`` trick: under
    ``reassoc`` LLVM folds ``(1 + u) - 1`` into ``u``."""
    res = log32(u + _F32(1.0))
    if u > _F32(-0.32) and u < _F32(0.42):
        res = u + _log1p_tail(u)
    return res


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def log1p32_small(u):
    """log1p for float32 ``u`` known to lie in ``[-0.32, 0.42]`` (the caller's
    promise): the polynomial alone, no log32 evaluated beside it."""
    return u + _log1p_tail(u)


_F64 = np.float64
_i64 = ir.IntType(64)
_f64 = ir.DoubleType()

_LN2_HI = 0.6931471803691238  # ln 2 to 33 bits (0x1.62e42fee00000p-1): k * _LN2_HI is exact
_LN2_LO = 1.9082149292705877e-10  # ln 2 - _LN2_HI
_LOG2E = 1.4426950408889634
_MAGIC64 = 6755399441055744.0  # 1.5 * 2**52


@intrinsic
def _exp2_parts64(typingctx, t):
    """float64 ``_exp2_parts`` without ``k`` as a float (``exp_reduce64`` has
    it): from ``t = k + 1.5*2**52``, ``(2**(k>>1), 2**(k-(k>>1)))``, the integer
    work on i64 in LLVM IR."""
    if t != types.float64:
        return None
    sig = types.UniTuple(types.float64, 2)(types.float64)

    def codegen(context, builder, signature, args):
        b = builder.bitcast(args[0], _i64)
        k = builder.sub(b, ir.Constant(_i64, 0x4338000000000000))
        k1 = builder.ashr(k, ir.Constant(_i64, 1))
        k2 = builder.sub(k, k1)
        bias = ir.Constant(_i64, 1023)
        sh = ir.Constant(_i64, 52)
        s1 = builder.bitcast(builder.shl(builder.add(k1, bias), sh), _f64)
        s2 = builder.bitcast(builder.shl(builder.add(k2, bias), sh), _f64)
        return context.make_tuple(builder, signature.return_type, (s1, s2))

    return sig, codegen


@intrinsic
def _frexp_parts64(typingctx, x):
    """float64 ``_frexp_parts``: ``x > 0`` (normal) -> ``(e, m)``, ``x = 2**e m``,
    ``m`` in [1, 2)."""
    if x != types.float64:
        return None
    sig = types.UniTuple(types.float64, 2)(types.float64)

    def codegen(context, builder, signature, args):
        b = builder.bitcast(args[0], _i64)
        e = builder.and_(builder.lshr(b, ir.Constant(_i64, 52)), ir.Constant(_i64, 0x7FF))
        e = builder.sub(e, ir.Constant(_i64, 1023))
        mb = builder.or_(builder.and_(b, ir.Constant(_i64, 0x000FFFFFFFFFFFFF)), ir.Constant(_i64, 0x3FF0000000000000))
        m = builder.bitcast(mb, _f64)
        ef = builder.sitofp(e, _f64)
        return context.make_tuple(builder, signature.return_type, (ef, m))

    return sig, codegen


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def exp_reduce64(xc):
    """``xc = k ln2 + r``, ``|r| <= ln2/2``: ``(t, r, 2**(k>>1), 2**(k-(k>>1)))``
    (``t`` carries k for ``_scale_half``); the steps are fma calls (see ``fma``)."""
    # k = rint(x/ln2) as a float first, and t from it (exact): t's bits give the
    # powers of two. (k from t's bits as float32 does it needs an int64 ->
    # double conversion, which AVX2 lacks: LLVM's emulation made exp64 1.46x
    # slower; t - 1.5*2**52, the C twin's way, is folded to x/ln2 by fast-math.)
    kf = _rint(xc * _F64(_LOG2E))
    t = kf + _F64(_MAGIC64)
    s1, s2 = _exp2_parts64(t)
    r = fma(-kf, _F64(_LN2_HI), xc)
    r = fma(-kf, _F64(_LN2_LO), r)
    return t, r, s1, s2


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def expm1_poly64(r):
    """``expm1(r)`` for ``|r| <= ln2/2``: the Taylor polynomial through ``r**13``
    (truncation < 5e-18 relative)."""
    q = _F64(1.0 / 6227020800.0)
    q = q * r + _F64(1.0 / 479001600.0)
    q = q * r + _F64(1.0 / 39916800.0)
    q = q * r + _F64(1.0 / 3628800.0)
    q = q * r + _F64(1.0 / 362880.0)
    q = q * r + _F64(1.0 / 40320.0)
    q = q * r + _F64(1.0 / 5040.0)
    q = q * r + _F64(1.0 / 720.0)
    q = q * r + _F64(1.0 / 120.0)
    q = q * r + _F64(1.0 / 24.0)
    q = q * r + _F64(1.0 / 6.0)
    q = q * r + _F64(0.5)
    q = q * r + _F64(1.0)
    return q * r


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def exp64(x):
    xc = x
    if xc > _F64(709.9):  # exp(709.9) overflows: 2**1024 in the two halves below
        xc = _F64(709.9)
    if xc < _F64(-746.0):  # below exp(-745.2), the smallest subnormal's half
        xc = _F64(-746.0)
    t, r, s1, s2 = exp_reduce64(xc)
    res = _scale_half(expm1_poly64(r) + _F64(1.0), t) * s2
    if x < _F64(-746.0):
        res = _F64(0.0)
    return res


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def _log1p_core64(f):
    """``log1p(f)`` for float64 ``f`` in ``[-0.34, 0.53]`` (``|s| <= 0.21``;
    log64 uses ``[sqrt(1/2) - 1, sqrt(2) - 1]``, ``|s| <= 0.172``)."""
    s = f / (_F64(2.0) + f)
    z = s * s
    q = _F64(2.0 / 21.0)
    q = q * z + _F64(2.0 / 19.0)
    q = q * z + _F64(2.0 / 17.0)
    q = q * z + _F64(2.0 / 15.0)
    q = q * z + _F64(2.0 / 13.0)
    q = q * z + _F64(2.0 / 11.0)
    q = q * z + _F64(2.0 / 9.0)
    q = q * z + _F64(2.0 / 7.0)
    q = q * z + _F64(2.0 / 5.0)
    q = q * z + _F64(2.0 / 3.0)
    hfsq = _F64(0.5) * f * f
    return f - (hfsq - s * (hfsq + z * q))


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def log64(x):
    xs = x
    eadj = _F64(0.0)
    if xs < _F64(2.2250738585072014e-308):  # subnormal (or <= 0, fixed below)
        xs = xs * _F64(18014398509481984.0)  # 2**54
        eadj = _F64(-54.0)
    ef, m = _frexp_parts64(xs)
    ef = ef + eadj
    if m > _F64(1.4142135623730951):
        m = m * _F64(0.5)
        ef = ef + _F64(1.0)
    f = m - _F64(1.0)
    res = fma(ef, _F64(_LN2_HI), fma(ef, _F64(_LN2_LO), _log1p_core64(f)))  # (fma: see exp32)
    if x == _F64(0.0):
        res = _F64(-np.inf)
    if x < _F64(0.0):
        res = _F64(np.nan)
    if x == _F64(np.inf):
        res = x
    if x != x:
        res = x
    return res


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def log1p64(u):
    """log1p for float64: the series straight on ``u`` in log64's range of
    ``f``, ``log64(1 + u)`` outside it."""
    res = log64(u + _F64(1.0))
    if u > _F64(-0.2928932188134525) and u < _F64(0.41421356237309503):
        res = _log1p_core64(u)
    return res


# Type-dispatching front ends: float32 and float64 -> the vectorizable versions
# above, anything else (integers) -> libm through ``math``.
def fexp(x):
    return math.exp(x)


def flog(x):
    return math.log(x)


def flog1p(x):
    return math.log1p(x)


@overload(fexp, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_fexp(x):
    if x == types.float32:
        return lambda x: exp32(x)
    if x == types.float64:
        return lambda x: exp64(x)
    return lambda x: math.exp(x)


@overload(flog, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog(x):
    if x == types.float32:
        return lambda x: log32(x)
    if x == types.float64:
        return lambda x: log64(x)
    return lambda x: math.log(x)


def flog1p_small(x):
    return math.log1p(x)


@overload(flog1p_small, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog1p_small(x):
    if x == types.float32:
        return lambda x: log1p32_small(x)
    if x == types.float64:
        return lambda x: _log1p_core64(x)
    return lambda x: math.log1p(x)


@overload(flog1p, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog1p(x):
    if x == types.float32:
        return lambda x: log1p32(x)
    if x == types.float64:
        return lambda x: log1p64(x)
    return lambda x: math.log1p(x)


def lit(like, v):
    """``v`` as a scalar of ``like``'s float type (Numba types a bare float
    literal as float64, which would silently promote float32 math)."""
    return v


@overload(lit, inline="always")
def _ov_lit(like, v):
    if like == types.float32:
        return lambda like, v: np.float32(v)
    return lambda like, v: np.float64(v)


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def fpow(b, g):
    """``b ** g`` for ``b >= 0`` and ``g >= 0`` (``0 ** 0 = 1``), same type as b."""
    if g == lit(b, 2.0):
        return b * b
    if g == lit(b, 1.0):
        return b
    if g == lit(b, 0.0):
        return lit(b, 1.0)
    res = fexp(g * flog(b))
    if b == lit(b, 0.0):
        res = lit(b, 0.0)
    return res


@intrinsic
def fkey(typingctx, x):
    """A float as a signed integer with the same order (``a < b`` iff
    ``fkey(a) < fkey(b)`` for non-NaN a, b): flip the magnitude bits of
    negatives. Integer max-reductions vectorize; float ones need ``nnan``."""
    if x == types.float32:
        ity, rty = ir.IntType(32), types.int32
    elif x == types.float64:
        ity, rty = ir.IntType(64), types.int64
    else:
        return None
    sig = rty(x)
    bits = ity.width

    def codegen(context, builder, signature, args):
        b = builder.bitcast(args[0], ity)
        s = builder.lshr(builder.ashr(b, ir.Constant(ity, bits - 1)), ir.Constant(ity, 1))
        return builder.xor(b, s)

    return sig, codegen


@intrinsic
def funkey(typingctx, k, like):
    """Inverse of ``fkey`` (``like`` only selects the float type)."""
    if like == types.float32:
        ity, fty = ir.IntType(32), ir.FloatType()
    elif like == types.float64:
        ity, fty = ir.IntType(64), ir.DoubleType()
    else:
        return None
    sig = like(k, like)
    bits = ity.width

    def codegen(context, builder, signature, args):
        kk = args[0]
        if kk.type.width != bits:
            kk = builder.trunc(kk, ity)
        s = builder.lshr(builder.ashr(kk, ir.Constant(ity, bits - 1)), ir.Constant(ity, 1))
        return builder.bitcast(builder.xor(kk, s), fty)

    return sig, codegen


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def row_max(a, i):
    """Max of row ``i`` of a 2-D array, as a vectorized integer reduction on
    order-preserving keys. A NaN with the sign bit clear wins (the row's loss
    is NaN either way: exp(x - max) carries any NaN into the sum)."""
    m = fkey(a[i, 0])
    for j in range(1, a.shape[1]):
        v = fkey(a[i, j])
        m = v if v > m else m
    return funkey(m, a[i, 0])
