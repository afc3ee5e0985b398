"""Backend choice: ``use_backend`` (context), ``set_backend`` (process),
``FASTLOSS_BACKEND`` (environment), else automatic.

An explicit request that cannot be met raises and lists what is available;
the automatic choice falls back quietly.
"""

import contextlib
import contextvars
import importlib
import os

KNOWN = ("numba", "c", "cuda")
_AUTO_ORDER = ("numba", "c")

_ctx = contextvars.ContextVar("fastloss_backend", default=None)
_process_choice = None
_available = None
_kernel_cache = {}


def available_backends():
    """The backends this installation can run, e.g. ``['numba', 'c']``.

    ``"numba"``: Numba imports; ``"c"``: the C extension was built at install
    time (it is skipped, with a message, where no C compiler was found);
    ``"cuda"``: a CUDA GPU Numba can drive."""
    global _available
    if _available is None:
        found = []
        numba_ok = _numba_usable()
        if numba_ok:
            found.append("numba")
        if _c_usable():
            found.append("c")
        if numba_ok and _cuda_usable():
            found.append("cuda")
        _available = found
    return list(_available)


def _numba_usable():
    """Numba imports (missing or broken: the automatic choice falls back to C)."""
    try:
        import numba  # noqa: F401
    except Exception:
        return False
    return True


def _c_usable():
    try:
        from .backends import cffi_c

        cffi_c.load()
    except Exception:
        return False
    return True


def _cuda_usable():
    """A CUDA GPU that Numba can drive (or the CUDA simulator, when
    NUMBA_ENABLE_CUDASIM=1). Probed once, lazily: importing numba.cuda costs time."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


def _check(name):
    if name not in KNOWN:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(KNOWN)}")
    avail = available_backends()
    if name not in avail:
        raise ValueError(f"backend {name!r} is not available in this installation; available: {avail}")
    return name


def set_backend(name):
    """Use backend ``name`` from now on in this process (``None``: automatic)."""
    global _process_choice
    _process_choice = None if name is None else _check(name)


@contextlib.contextmanager
def use_backend(name):
    """Context manager: run the losses inside the block on backend ``name``."""
    token = _ctx.set(_check(name))
    try:
        yield name
    finally:
        _ctx.reset(token)


def current_backend():
    """The backend the next call will use."""
    name = _ctx.get()
    if name is not None:
        return name
    if _process_choice is not None:
        return _process_choice
    env = os.environ.get("FASTLOSS_BACKEND")
    if env:
        return _check(env.strip().lower())
    for name in _AUTO_ORDER:
        if name in available_backends():
            return name
    raise RuntimeError(
        "no fastloss backend is available: install numba (pip install numba), or reinstall "
        "fastloss with a C compiler present to build its C backend"
    )


def kernel(spec, variant, backend):
    """The kernel callable for ``spec``/``variant`` on ``backend`` (imported once)."""
    key = (spec.name, variant, backend)
    fn = _kernel_cache.get(key)
    if fn is None:
        try:
            path = spec.kernels[backend][variant]
        except KeyError:
            have = [b for b in spec.kernels if b in available_backends()]
            if spec.family == "custom" and "numba" not in available_backends():
                raise ValueError(
                    f"{spec.name}: custom losses (fastloss.custom_loss) are compiled by Numba, "
                    f"which is not available here (backends: {available_backends()}); "
                    "install numba (pip install numba) to use them"
                ) from None
            raise ValueError(
                f"{spec.name} ({variant}) has no kernel on backend {backend!r}; it has: {have}"
            ) from None
        if callable(path):  # an unregistered loss carries its kernel object
            return path
        mod, _, attr = path.partition(":")
        fn = getattr(importlib.import_module(mod), attr)
        _kernel_cache[key] = fn
    return fn
