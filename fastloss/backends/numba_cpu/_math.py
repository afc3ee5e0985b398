"""Vectorizable elementary functions for the Numba kernels.

Numba >= 0.62 lost SVML, so ``np.exp``/``np.log`` on float32 compile to one
scalar libm call per element and the loops around them stop vectorizing. The
float32 versions here are written with arithmetic, selects and bit casts only,
so LLVM's loop vectorizer turns them into AVX2/AVX-512 code:

1. ``exp32(x)``: ``x = k ln2 + r``, ``|r| <= ln2/2``; ``exp(r)`` by a degree-7
   Taylor polynomial (truncation error < 1e-8 relative); ``2**k`` built from
   its exponent bits in two halves so the whole float32 range, subnormal
   results included, comes out right. Max error measured: < 1 ulp.
2. ``log32(x)``: ``x = 2**e m``, ``m`` in ``[sqrt(1/2), sqrt(2))``;
   ``log(m) = f - f**2/2 + f**3 P(f)``, ``f = m - 1``, ``P`` a degree-7
   polynomial fitted here (no division). Max error measured: 2 ulp.
3. ``log1p32(u)``: the same polynomial evaluated at ``u`` itself near 0.

Special values follow IEEE/libm: ``exp(nan) = nan``, ``exp(+inf) = inf``,
``exp(-inf) = 0``; ``log(0) = -inf``, ``log(x<0) = nan``, ``log(inf) = inf``,
``log(nan) = nan``. The float64 versions call libm (exact to rounding; they
are scalar, float64 is the accuracy path).

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


@njit(inline="always", fastmath=FASTMATH, error_model="numpy")
def exp32(x):
    xc = x
    if xc > _F32(88.8):
        xc = _F32(88.8)
    if xc < _F32(-104.0):
        xc = _F32(-104.0)
    t = xc * _F32(1.4426950408889634) + _F32(12582912.0)
    kf, s1, s2 = _exp2_parts(t)
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
    res = (p * s1) * s2
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


# Type-dispatching front ends: float32 -> the vectorizable versions above,
# anything else -> libm through ``math``.
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
    return lambda x: math.exp(x)


@overload(flog, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog(x):
    if x == types.float32:
        return lambda x: log32(x)
    return lambda x: math.log(x)


def flog1p_small(x):
    return math.log1p(x)


@overload(flog1p_small, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog1p_small(x):
    if x == types.float32:
        return lambda x: log1p32_small(x)
    return lambda x: math.log1p(x)


@overload(flog1p, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_flog1p(x):
    if x == types.float32:
        return lambda x: log1p32(x)
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
