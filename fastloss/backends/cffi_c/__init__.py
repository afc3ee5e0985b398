"""The C backend: kernels in ``csrc/`` compiled by CFFI (API mode) into
``_fastloss_c`` at install time, OpenMP inside.

The modules here are thin: each kernel is a Python function with the Numba
kernels' contract (``fastloss/_core.py``) that hands the NumPy buffers to C
without copies (``ffi.from_buffer``) and returns the ``(nch, 3)`` info rows.
CFFI releases the GIL for the duration of every C call.

``load()`` returns ``(ffi, lib)`` or raises ImportError when the extension was
not built (no C compiler at install time); ``fastloss.available_backends()``
lists ``"c"`` only when it loads.
"""


def load():
    from ._fastloss_c import ffi, lib  # noqa: F401  (ImportError: not built)

    return ffi, lib


def build_info():
    """How the extension was compiled, e.g. ``"simd=target_clones(...) openmp=yes"``."""
    ffi, lib = load()
    return ffi.string(lib.fl_build_info()).decode()


def max_threads():
    return int(load()[1].fl_max_threads())
