"""Forward-mode dual numbers for Numba nopython code (derivatives of custom losses).

A ``Dual`` is the pair ``(val, der)`` standing for ``val + der * eps`` with
``eps**2 = 0``. Evaluating a scalar function ``f(y, p)`` at ``p = Dual(p, 1)``
gives ``Dual(f(y, p), df/dp(y, p))``: the exact derivative (up to rounding),
from the same evaluation as the value, for any function written with the
operations below, branches and comparisons included.

Why dual numbers and not the complex step (``Im f(p + ih) / h``)? Both are exact
for analytic code, but the complex step breaks on exactly what losses are made
of: ``abs`` (the complex modulus drops the derivative), comparisons
(``abs(e) <= delta`` does not type for complex numbers) and ``max``/``min``;
and complex ``exp``/``log`` are scalar libm calls that stop the loop from
vectorizing. A ``Dual`` is a two-field struct: after inlining, LLVM keeps its
fields in registers (scalar replacement of aggregates), so the loop around it
vectorizes like hand-written code.

Supported on ``Dual`` (mixing with ints/floats is fine; a float32 ``Dual``
stays float32 whatever the precision of the constants it meets):

* ``+ - * / **`` (and their in-place forms), unary ``-``/``+``, ``abs``;
* comparisons ``< <= > >= == !=`` (on the value);
* builtins ``abs``, ``max``, ``min`` (two arguments);
* ``math.``/``np.``: ``exp log log1p expm1 sqrt tanh sinh cosh sin cos atan erf``,
  ``fabs``/``np.abs``/``np.absolute``, ``np.maximum``/``np.minimum``
  (NaN-propagating), ``np.square``, ``np.sign`` (derivative 0).

A function returning a plain number on some branch (``return 0.0``) is fine:
the branches unify to a ``Dual`` with derivative 0.

At a kink the derivative is one-sided: ``abs`` and ``max``/``min`` take the
derivative of the argument chosen (``abs`` at 0 gives +der, like ``e >= 0``).
"""

import math
import operator

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.core.typeconv import Conversion
from numba.extending import intrinsic, lower_cast, make_attribute_wrapper, models, overload, register_model

from ..._config import FASTMATH
from ._math import fexp, flog, flog1p, lit

_OPTS = {"fastmath": FASTMATH, "error_model": "numpy"}


def _wider(a, b):
    return types.float64 if types.float64 in (a, b) else types.float32


class DualType(types.Type):
    """Numba type of a dual number whose fields are ``dtype`` (float32/float64)."""

    def __init__(self, dtype):
        self.dtype = dtype
        super().__init__(name=f"Dual({dtype})")

    def unify(self, typingctx, other):
        if isinstance(other, DualType):
            return DualType(_wider(self.dtype, other.dtype))
        if isinstance(other, (types.Float, types.Integer)):
            return self
        return None

    def can_convert_from(self, typingctx, other):
        if isinstance(other, (types.Float, types.Integer)):
            return Conversion.safe
        if isinstance(other, DualType):
            return Conversion.exact if other.dtype == self.dtype else Conversion.safe
        return None


@register_model(DualType)
class _DualModel(models.StructModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, [("val", fe_type.dtype), ("der", fe_type.dtype)])


make_attribute_wrapper(DualType, "val", "val")
make_attribute_wrapper(DualType, "der", "der")


@lower_cast(types.Float, DualType)
@lower_cast(types.Integer, DualType)
def _number_to_dual(context, builder, fromty, toty, val):
    st = cgutils.create_struct_proxy(toty)(context, builder)
    st.val = context.cast(builder, val, fromty, toty.dtype)
    st.der = context.get_constant(toty.dtype, 0.0)
    return st._getvalue()


@lower_cast(DualType, DualType)
def _dual_to_dual(context, builder, fromty, toty, val):
    src = cgutils.create_struct_proxy(fromty)(context, builder, value=val)
    st = cgutils.create_struct_proxy(toty)(context, builder)
    st.val = context.cast(builder, src.val, fromty.dtype, toty.dtype)
    st.der = context.cast(builder, src.der, fromty.dtype, toty.dtype)
    return st._getvalue()


def _is_num(t):
    return isinstance(t, (types.Float, types.Integer))


def _is_operand(t):
    return isinstance(t, DualType) or _is_num(t)


def _applies(*args):
    return any(isinstance(a, DualType) for a in args) and all(_is_operand(a) for a in args)


@intrinsic
def _mk(typingctx, like, v, d):
    """``Dual(v, d)`` in the float type of ``like`` (a Dual or a float)."""
    dt = like.dtype if isinstance(like, DualType) else like
    if not isinstance(dt, types.Float) or not _is_num(v) or not _is_num(d):
        return None
    rt = DualType(dt)

    def codegen(context, builder, sig, args):
        st = cgutils.create_struct_proxy(rt)(context, builder)
        st.val = context.cast(builder, args[1], sig.args[1], dt)
        st.der = context.cast(builder, args[2], sig.args[2], dt)
        return st._getvalue()

    return rt(like, v, d), codegen


@intrinsic
def _lift2(typingctx, a, b):
    """Both operands as Duals of their common float type."""
    if not _applies(a, b):
        return None
    dts = [t.dtype for t in (a, b) if isinstance(t, DualType)]
    rt = DualType(_wider(dts[0], dts[-1]))

    def codegen(context, builder, sig, args):
        vals = [context.cast(builder, v, t, rt) for v, t in zip(args, sig.args)]
        return context.make_tuple(builder, sig.return_type, vals)

    return types.UniTuple(rt, 2)(a, b), codegen


def seed(p):
    """``Dual(p, 1)``: the variable to differentiate with respect to."""


@overload(seed, inline="always", jit_options=_OPTS)
def _ov_seed(p):
    if isinstance(p, types.Float):
        return lambda p: _mk(p, p, 1)


def value(r):
    """The value part of a Dual (a plain number is returned as is)."""


def deriv(r):
    """The derivative part of a Dual (0 for a plain number)."""


@overload(value, inline="always", jit_options=_OPTS)
def _ov_value(r):
    if isinstance(r, DualType):
        return lambda r: r.val
    if _is_num(r):
        return lambda r: r


@overload(deriv, inline="always", jit_options=_OPTS)
def _ov_deriv(r):
    if isinstance(r, DualType):
        return lambda r: r.der
    if _is_num(r):
        return lambda r: 0.0


# ---- arithmetic -------------------------------------------------------------


def _binary(ops, rule):
    """Register ``rule(x, y) -> Dual`` (x, y Duals of one type) for ``ops``."""
    for op in ops:

        @overload(op, inline="always", jit_options=_OPTS)
        def ov(a, b):
            if _applies(a, b):

                def impl(a, b):
                    x, y = _lift2(a, b)
                    return rule(x, y)

                return impl


def _njit_rule(fn):
    return njit(inline="always", **_OPTS)(fn)


@_njit_rule
def _add(x, y):
    return _mk(x, x.val + y.val, x.der + y.der)


@_njit_rule
def _sub(x, y):
    return _mk(x, x.val - y.val, x.der - y.der)


@_njit_rule
def _mul(x, y):
    return _mk(x, x.val * y.val, x.der * y.val + x.val * y.der)


@_njit_rule
def _div(x, y):
    q = x.val / y.val
    return _mk(x, q, (x.der - q * y.der) / y.val)


_binary((operator.add, operator.iadd), _add)
_binary((operator.sub, operator.isub), _sub)
_binary((operator.mul, operator.imul), _mul)
_binary((operator.truediv, operator.itruediv), _div)


@overload(operator.pow, inline="always", jit_options=_OPTS)
@overload(operator.ipow, inline="always", jit_options=_OPTS)
def _ov_pow(a, b):
    if not _applies(a, b):
        return None
    if isinstance(a, DualType) and isinstance(b, types.Integer):

        def impl(a, b):  # integer power: powi, no exp/log
            if b == 0:
                return _mk(a, lit(a.val, 1.0), lit(a.val, 0.0))
            return _mk(a, a.val**b, lit(a.val, b) * a.val ** (b - 1) * a.der)

        return impl
    if isinstance(a, DualType) and isinstance(b, types.Float):

        def impl(a, b):
            bb = lit(a.val, b)
            v = a.val**bb
            return _mk(a, v, bb * a.val ** (bb - lit(a.val, 1.0)) * a.der)

        return impl

    def impl(a, b):  # a Dual exponent
        x, y = _lift2(a, b)
        v = x.val**y.val
        dv = y.der * flog(x.val) * v
        if x.der != lit(v, 0.0):
            dv += y.val * x.val ** (y.val - lit(v, 1.0)) * x.der
        return _mk(x, v, dv)

    return impl


@overload(operator.neg, inline="always", jit_options=_OPTS)
def _ov_neg(a):
    if isinstance(a, DualType):
        return lambda a: _mk(a, -a.val, -a.der)


@overload(operator.pos, inline="always", jit_options=_OPTS)
def _ov_pos(a):
    if isinstance(a, DualType):
        return lambda a: a


def _abs_impl(a):
    if isinstance(a, DualType):

        def impl(a):
            v = a.val
            d = a.der
            if v < lit(v, 0.0):
                d = -d
            if v != v:
                d = v  # NaN stays visible in the derivative too
            return _mk(a, abs(v), d)

        return impl


for _f in (abs, math.fabs, np.abs, np.absolute):
    overload(_f, inline="always", jit_options=_OPTS)(_abs_impl)


# ---- comparisons (on the value) ----------------------------------------------

for _op in (operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne):

    def _make_cmp(op):
        @overload(op, inline="always", jit_options=_OPTS)
        def ov(a, b):
            if _applies(a, b):
                return lambda a, b: op(value(a), value(b))

    _make_cmp(_op)


# ---- max / min -----------------------------------------------------------------


def _minmax(fn, pick_second, nan_propagating):
    @overload(fn, inline="always", jit_options=_OPTS)
    def ov(a, b):
        if not _applies(a, b):
            return None
        if nan_propagating:

            def impl(a, b):
                x, y = _lift2(a, b)
                r = y if pick_second(x.val, y.val) else x
                if x.val != x.val:
                    r = x
                if y.val != y.val:
                    r = y
                return r

        else:

            def impl(a, b):
                x, y = _lift2(a, b)
                return y if pick_second(x.val, y.val) else x

        return impl


@njit(inline="always")
def _gt(u, v):
    return v > u


@njit(inline="always")
def _lt(u, v):
    return v < u


_minmax(max, _gt, False)
_minmax(min, _lt, False)
_minmax(np.maximum, _gt, True)
_minmax(np.minimum, _lt, True)


# ---- elementary functions: (f(v), f'(v)) ------------------------------------------


def _unary(fns, rule):
    rule = njit(inline="always", **_OPTS)(rule)
    for fn in fns:

        @overload(fn, inline="always", jit_options=_OPTS)
        def ov(a):
            if isinstance(a, DualType):

                def impl(a):
                    v, dv = rule(a.val)
                    return _mk(a, v, dv * a.der)

                return impl


def _r_exp(v):
    e = fexp(v)
    return e, e


def _r_log(v):
    return flog(v), lit(v, 1.0) / v


def _r_log1p(v):
    return flog1p(v), lit(v, 1.0) / (lit(v, 1.0) + v)


def _r_expm1(v):
    e = math.expm1(v)
    return e, e + lit(v, 1.0)


def _r_sqrt(v):
    s = math.sqrt(v)
    return s, lit(v, 0.5) / s


def _r_tanh(v):
    t = math.tanh(v)
    return t, lit(v, 1.0) - t * t


def _r_sinh(v):
    return math.sinh(v), math.cosh(v)


def _r_cosh(v):
    return math.cosh(v), math.sinh(v)


def _r_sin(v):
    return math.sin(v), math.cos(v)


def _r_cos(v):
    return math.cos(v), -math.sin(v)


def _r_atan(v):
    return math.atan(v), lit(v, 1.0) / (lit(v, 1.0) + v * v)


def _r_erf(v):
    return math.erf(v), lit(v, 1.1283791670955126) * fexp(-v * v)


def _r_square(v):
    return v * v, v + v


def _r_sign(v):
    s = lit(v, 0.0)
    if v > s:
        s = lit(v, 1.0)
    elif v < s:
        s = lit(v, -1.0)
    elif v != v:
        s = v
    return s, lit(v, 0.0)


_unary((math.exp, np.exp), _r_exp)
_unary((math.log, np.log), _r_log)
_unary((math.log1p, np.log1p), _r_log1p)
_unary((math.expm1, np.expm1), _r_expm1)
_unary((math.sqrt, np.sqrt), _r_sqrt)
_unary((math.tanh, np.tanh), _r_tanh)
_unary((math.sinh, np.sinh), _r_sinh)
_unary((math.cosh, np.cosh), _r_cosh)
_unary((math.sin, np.sin), _r_sin)
_unary((math.cos, np.cos), _r_cos)
_unary((math.atan, np.arctan), _r_atan)
_unary((math.erf,), _r_erf)
_unary((np.square,), _r_square)
_unary((np.sign,), _r_sign)
