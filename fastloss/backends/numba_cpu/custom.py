"""Custom elementwise losses on the Numba CPU backend (``fastloss.custom_loss``).

``build(fn, derivative, row_mean, fingerprint, name)`` returns a kernel with the
contract of every other kernel (``crossentropy.py``'s docstring), made of the
same parts as the built-in elementwise losses: an element function around the
user's scalar function, a flat loop over a block, and the shared driver
``_common.elementwise_rows`` / ``_common.par`` / ``_common.entry``. The user's
function is compiled inline into the flat loop, so it vectorizes like a
built-in loss.

Element function: ``(fn(y, p), derivative(y, p))`` when a derivative is given,
else one evaluation of ``fn(y, Dual(p, 1))`` (``_dual.py``): value and exact
derivative together.

Caching: the two kernels (rows, parallel) are cached on disk by Numba. Their
cache entries are keyed by a fingerprint of the user's code (bytecode,
constants, closure values, the simple globals and helper functions it reads:
``fastloss.custom._fingerprint``), not by the dispatcher objects they close
over (whose pickles change every process), so a second process loads the
kernels instead of compiling them, and an edited function never hits a stale
entry. Functions whose code cannot be fingerprinted are simply not cached.
"""

import functools
import hashlib
import os
import types

from numba import njit
from numba.core.caching import FunctionCache

from ._common import INLINE, JIT, PJIT, elementwise_rows, entry, par
from ._dual import deriv, seed, value


class _FingerprintCache(FunctionCache):
    """Numba's function cache, keyed by the custom loss' fingerprint."""

    def __init__(self, py_func, fingerprint):
        self._fingerprint = fingerprint
        super().__init__(py_func)

    def _index_key(self, sig, codegen):
        code = hashlib.sha256(self._py_func.__code__.co_code).hexdigest()
        return (sig, codegen.magic_tuple(), (code, self._fingerprint))


def _jit_user(fn):
    """The user's function, compiled with the kernels' flags (fastmath without
    nnan/ninf) and inlined at the Numba IR level like the built-in element
    functions: a call through Numba's calling convention (status + error
    checks) would keep the loop from vectorizing. A Numba dispatcher passed in
    is recompiled from its Python function for the same reason."""
    return njit(**INLINE)(getattr(fn, "py_func", fn))


def _rows_template(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_FLAT, _ROW_MEAN, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)  # noqa: F821


def _par_template(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(_ROWS, yt, yp, prm, w, ws, loss, grad, want_grad, nch)  # noqa: F821


def _bind(template, **names):
    """A copy of ``template`` whose globals also hold ``names``."""
    g = dict(template.__globals__)
    g.update(names)
    f = types.FunctionType(template.__code__, g, template.__name__)
    f.__qualname__ = template.__qualname__
    f.__module__ = template.__module__
    return f


@functools.lru_cache(maxsize=None)
def _deps_hash():
    """Hash of the sources compiled into a custom kernel besides this file
    (Numba's own check covers only the file that defines the kernel)."""
    h = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in ("_common.py", "_dual.py", "_math.py", os.path.join("..", "..", "_config.py")):
        try:
            with open(os.path.join(here, rel), "rb") as f:
                h.update(f.read())
        except OSError:
            return None
    return h.hexdigest()


def build(fn, derivative, row_mean, fingerprint, name):
    f = _jit_user(fn)
    if derivative is not None:
        d = _jit_user(derivative)

        @njit(**INLINE)
        def elem(y, p):
            return f(y, p), d(y, p)

    else:

        @njit(**INLINE)
        def elem(y, p):
            r = f(y, seed(p))
            return value(r), deriv(r)

    @njit(**INLINE)
    def flat(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
        for t in range(yp.shape[0]):
            lbuf[t], g = elem(yt[t], yp[t])
            gf[t] = g * sc

    # rows/par as module-level code with the loss' pieces bound as globals:
    # Numba then treats them as compile-time constants, as for the built-in
    # kernels (closure variables would reach the parallel gufunc as dynamic
    # globals, which cannot be cached).
    rows = njit(**{**JIT, "cache": False})(_bind(_rows_template, _FLAT=flat, _ROW_MEAN=row_mean))
    par_ = njit(**{**PJIT, "cache": False})(_bind(_par_template, _ROWS=rows))
    deps = _deps_hash()
    if fingerprint is not None and deps is not None:
        fingerprint = f"{fingerprint}:{deps}"
        for disp in (rows, par_):
            try:
                disp._cache = _FingerprintCache(disp.py_func, fingerprint)
            except Exception:  # no writable cache location, ...: compile every process
                pass
    kernel = entry(rows, par_, name)
    kernel.rows, kernel.par = rows, par_  # the dispatchers, for inspection
    return kernel
