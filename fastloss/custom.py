"""Custom elementwise losses compiled into fastloss' own kernels.

::

    @fastloss.custom_loss
    def my_huber(y_true, y_pred):          # a scalar function of two scalars
        e = y_pred - y_true
        return 0.5 * e * e if abs(e) <= 1.0 else abs(e) - 0.5

    loss = my_huber(reduction="sum_over_batch_size")   # a fastloss.losses.Loss
    loss(y_true, y_pred)
    loss.value_and_grad(y_true, y_pred, sample_weight=w)

``custom_loss`` turns the function into a ``fastloss.losses.Loss`` subclass whose
per-sample loss is ``mean`` (or ``sum``, ``row_reduction="sum"``) over the last
axis (or ``axis``) of ``f(y_true[i, j], y_pred[i, j])``. The function is compiled
by Numba (nopython mode) *into* the same parallel elementwise kernel driver the
built-in losses use, so a custom loss gets every reduction, ``sample_weight``,
``class_weight``, ``value_and_grad``/``grad_out``, the dtype rules and the input
checks of the built-in classes, at the speed of a built-in loss.

The gradient: ``derivative(y_true, y_pred) -> d f / d y_pred`` if given;
otherwise it is derived exactly by forward-mode automatic differentiation (the
function is evaluated once on a dual number ``y_pred + 1 eps``; see
``fastloss/backends/numba_cpu/_dual.py`` for the supported operations:
arithmetic, ``**``, comparisons and branches, ``abs``/``max``/``min``, and
``math``/``np`` ``exp log log1p expm1 sqrt tanh sinh cosh sin cos atan erf``).
At a kink (``abs(e)`` at 0, the ``<=`` of a Huber loss) the derivative is the
one of the branch taken.

Arithmetic follows Numba's rules: float32 inputs combined with Python float
constants are computed in float64 and rounded when stored (the result is still
float32); the derived derivative stays in y_pred's dtype.

Constants the function reads from globals or closures are frozen when it is
compiled (Numba's rule): make a new loss to change them.

Compilation happens on the first call for each dtype (about 1-2 s for the pair
of serial/parallel kernels; measured numbers in the README) and is cached on
disk: later processes load the kernels in milliseconds as long as the
function's code is unchanged (functions defined in a REPL or notebook included).

Backends: ``"numba"``. A backend plugs in by adding a builder
``build(fn, derivative, row_mean, fingerprint, name) -> kernel`` to ``_BUILDERS``.
"""

import hashlib
import importlib
import inspect
import numbers
import re
import types as _pytypes
from collections.abc import Mapping

import numpy as np

from . import _registry
from .losses import Loss

# backend -> "module:function" building a kernel for a custom loss.
_BUILDERS = {"numba": "fastloss.backends.numba_cpu.custom:build"}

_VARIANT = "elementwise"
_ROW_REDUCTIONS = ("mean", "sum")


# ---- fingerprint of the user's code (the disk-cache key) ---------------------------


class _NoFingerprint(Exception):
    pass


def _fp_code(code, h, seen, depth):
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for c in code.co_consts:
        if isinstance(c, _pytypes.CodeType):
            _fp_code(c, h, seen, depth)
        else:
            h.update(repr(c).encode())


def _code_names(code):
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, _pytypes.CodeType):
            names |= _code_names(c)
    return names


def _fp_value(v, h, seen, depth):
    if v is None or isinstance(v, (bool, numbers.Number, str, bytes)):
        h.update(f"{type(v).__name__}:{v!r}".encode())
    elif isinstance(v, tuple):
        for x in v:
            _fp_value(x, h, seen, depth)
    elif isinstance(v, np.ndarray):
        h.update(f"{v.dtype}{v.shape}".encode())
        h.update(np.ascontiguousarray(v).tobytes())
    elif isinstance(v, _pytypes.ModuleType):
        h.update(f"module:{v.__name__}".encode())
    elif isinstance(v, _pytypes.BuiltinFunctionType) or isinstance(v, np.ufunc):
        h.update(f"builtin:{getattr(v, '__module__', '')}.{v.__name__}".encode())
    elif callable(v) and isinstance(getattr(v, "py_func", v), _pytypes.FunctionType):
        _fp_function(v, h, seen, depth + 1)
    else:
        raise _NoFingerprint(type(v).__name__)


def _fp_function(fn, h, seen, depth=0):
    fn = getattr(fn, "py_func", fn)
    if id(fn) in seen:
        return
    if depth > 8:
        raise _NoFingerprint("too deep")
    seen.add(id(fn))
    code = fn.__code__
    _fp_code(code, h, seen, depth)
    for cell in fn.__closure__ or ():
        _fp_value(cell.cell_contents, h, seen, depth)
    g = fn.__globals__
    for name in sorted(_code_names(code)):
        if name in g:
            h.update(name.encode())
            _fp_value(g[name], h, seen, depth)


def _fingerprint(*parts):
    """A hash of everything Numba freezes into the kernel; None if some global
    or closure value cannot be hashed reliably (then the kernel is not cached)."""
    h = hashlib.sha256()
    seen = set()
    try:
        for p in parts:
            if callable(p):
                _fp_function(p, h, seen)
            else:
                h.update(repr(p).encode())
    except (_NoFingerprint, AttributeError, TypeError):
        return None
    return h.hexdigest()


# ---- kernels, built per backend on first use ------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _short(msg, lines=8):
    keep = []
    for ln in _ANSI.sub("", str(msg)).splitlines():
        s = ln.strip()
        if not s or s.startswith(("During:", "File ", "^")):
            continue
        keep.append(s)
        if len(keep) == lines:
            break
    return "\n  ".join(keep)


class _Kernels(Mapping):
    """``backend -> {variant: kernel}`` for one custom loss; a kernel is built the
    first time its backend is asked for."""

    def __init__(self, cls):
        self._cls = cls
        self._built = {}

    def __getitem__(self, backend):
        k = self._built.get(backend)
        if k is None:
            if backend not in _BUILDERS:
                raise KeyError(backend)
            mod, _, attr = _BUILDERS[backend].partition(":")
            build = getattr(importlib.import_module(mod), attr)
            c = self._cls
            kern = build(c.function, c.derivative, c.row_reduction == "mean", c._fingerprint, c.__name__)
            k = self._built[backend] = {_VARIANT: _guarded(kern, c)}
        return k

    def __iter__(self):
        return iter(_BUILDERS)

    def __len__(self):
        return len(_BUILDERS)


def _guarded(kernel, cls):
    """The kernel, with a compile failure of the user's function turned into a
    TypeError that says which function and why."""
    from numba.core.errors import NumbaError

    def run(yt, yp, *args):
        try:
            return kernel(yt, yp, *args)
        except NumbaError as exc:
            how = (
                "with the derivative given"
                if cls.derivative is not None
                else "with y_pred a dual number (to derive the gradient; pass derivative=... "
                "to avoid that, or see fastloss/backends/numba_cpu/_dual.py for what is supported)"
            )
            raise TypeError(
                f"custom loss {cls.__name__!r}: Numba cannot compile "
                f"{cls.function.__qualname__}(y_true, y_pred) for {yp.dtype} scalars {how}. "
                f"The function must be a scalar function of two scalars in Numba's nopython "
                f"subset. Numba says:\n  {_short(exc)}"
            ) from exc

    run.__name__ = getattr(kernel, "__name__", "custom")
    run.kernel = kernel
    return run


# ---- the public surface --------------------------------------------------------


class CustomLoss(Loss):
    """Base class of the loss classes made by :func:`custom_loss`.

    ``cls(reduction="sum_over_batch_size", name=None, dtype=None,
    class_weight=None, axis=-1)``; class attributes ``function``,
    ``derivative`` (None when derived) and ``row_reduction``.
    """

    function = None
    derivative = None
    row_reduction = "mean"
    _fingerprint = None

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None, class_weight=None, axis=-1):
        if type(self)._loss is None:
            raise TypeError("CustomLoss is a base class: make a loss with @fastloss.custom_loss")
        super().__init__(name=name or type(self).__name__, reduction=reduction, dtype=dtype, class_weight=class_weight)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"`axis` must be an int; got {axis!r}")
        self.axis = int(axis)

    def _variant(self):
        return _VARIANT

    def _kw(self):
        return {"axis": self.axis}

    def _config(self):
        return {"axis": self.axis}


def _check_scalar_fn(f, what):
    if not callable(f):
        raise TypeError(f"`{what}` must be a function f(y_true, y_pred) of two scalars; got {f!r}")
    py = getattr(f, "py_func", f)
    try:
        sig = inspect.signature(py)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(0.0, 0.0)
    except TypeError:
        raise TypeError(
            f"`{what}` must take two positional arguments (y_true, y_pred), one scalar each; "
            f"{getattr(py, '__qualname__', py)!s} has signature {sig}"
        ) from None


def custom_loss(function=None, *, derivative=None, row_reduction="mean", name=None):
    """Make a fastloss loss class from a scalar function ``f(y_true, y_pred)``.

    Use as ``@custom_loss`` or ``@custom_loss(derivative=..., row_reduction="sum")``.

    Parameters
    ----------
    function : callable ``(y_true, y_pred) -> loss`` on two scalars, written in
        the subset of Python that Numba compiles (plain functions, or Numba
        dispatchers).
    derivative : optional callable ``(y_true, y_pred) -> d loss / d y_pred``.
        Without it, the derivative is computed exactly by forward-mode
        automatic differentiation (dual numbers) from ``function`` itself.
    row_reduction : ``"mean"`` (Keras' regression losses) or ``"sum"`` over the
        last axis (or ``axis``).
    name : class name (default: the function's name).

    Returns
    -------
    A subclass of ``fastloss.losses.Loss``; instantiate it with Keras' loss
    arguments: ``cls(reduction="sum_over_batch_size", name=None, dtype=None,
    class_weight=None, axis=-1)``.

    Examples
    --------
    >>> import numpy as np, fastloss
    >>> @fastloss.custom_loss
    ... def squared(y_true, y_pred):
    ...     return (y_pred - y_true) ** 2
    >>> loss, grad = squared().value_and_grad(np.array([[0.0, 1.0]]), np.array([[1.0, 3.0]]))
    >>> float(loss), grad.tolist()
    (2.5, [[1.0, 2.0]])
    """
    if row_reduction not in _ROW_REDUCTIONS:
        raise ValueError(f"`row_reduction` must be one of {list(_ROW_REDUCTIONS)}; got {row_reduction!r}")
    if name is not None and not (isinstance(name, str) and name.isidentifier()):
        raise ValueError(f"`name` must be a Python identifier; got {name!r}")

    def make(fn):
        _check_scalar_fn(fn, "function")
        if derivative is not None:
            _check_scalar_fn(derivative, "derivative")
        py = getattr(fn, "py_func", fn)
        cls_name = name or getattr(py, "__name__", "custom_loss")
        if not cls_name.isidentifier():  # lambdas
            cls_name = "custom_loss"
        cls = type(
            cls_name,
            (CustomLoss,),
            {
                "__doc__": getattr(py, "__doc__", None) or f"Custom loss made by fastloss.custom_loss from {cls_name}.",
                "__module__": getattr(py, "__module__", __name__),
                "__qualname__": getattr(py, "__qualname__", cls_name),
                "function": staticmethod(fn),  # class and instance access give fn itself
                "derivative": None if derivative is None else staticmethod(derivative),
                "row_reduction": row_reduction,
                "_fingerprint": _fingerprint(fn, derivative, row_reduction),
            },
        )
        cls._loss = _registry.LossSpec(
            name=f"custom:{cls_name}:{id(cls):x}",
            family="custom",
            layout="dense",
            kernels=_Kernels(cls),
            reference="",
        )
        return cls

    if function is None:
        return make
    return make(function)
