"""Backend choice: ``use_backend`` (context), ``set_backend`` (process),
``FASTLOSS_BACKEND`` (environment), else automatic.

An explicit request that cannot be met raises and lists what is available;
the automatic choice falls back quietly.
"""

import contextlib
import contextvars
import importlib
import importlib.util
import os

KNOWN = ("numba", "c", "cuda")
_AUTO_ORDER = ("numba", "c")

_ctx = contextvars.ContextVar("fastloss_backend", default=None)
_process_choice = None
_probed = {}
_kernel_cache = {}


def available_backends():
    """The backends this installation can run, e.g. ``['numba', 'c']``.

    ``"numba"``: Numba is installed; ``"c"``: the C extension was built at
    install time (skipped, with a message, where no C compiler was found);
    ``"cuda"``: a CUDA GPU Numba can drive."""
    return [b for b in KNOWN if _usable(b)]


def _usable(name):
    """Whether backend ``name`` can run here, probed once and lazily (each probe
    costs only its own imports: choosing "c" never imports Numba)."""
    ok = _probed.get(name)
    if ok is None:
        ok = _probed[name] = bool(_PROBES[name]())
    return ok


def _numba_usable():
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # sys.modules["numba"] = None, a broken install
        return False


def _c_usable():
    try:
        from .backends import cffi_c

        cffi_c.load()
    except Exception:
        return False
    return True


def _numba_broken():
    """Numba is installed but does not import: the automatic choice drops it."""
    _probed["numba"] = False


def _cuda_usable():
    """A CUDA GPU that Numba can drive (or the CUDA simulator, when
    NUMBA_ENABLE_CUDASIM=1). Probed once, lazily: importing numba.cuda costs time."""
    if not _usable("numba"):
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False


_PROBES = {"numba": _numba_usable, "c": _c_usable, "cuda": _cuda_usable}


def _check(name):
    if name not in KNOWN:
        raise ValueError(f"unknown backend {name!r}; expected one of {list(KNOWN)}")
    if not _usable(name):
        raise ValueError(
            f"backend {name!r} is not available in this installation; available: {available_backends()}"
        )
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


_stream_ctx = contextvars.ContextVar("fastloss_cuda_stream", default=None)


@contextlib.contextmanager
def cuda_stream(stream):
    """Context manager: run fastloss' CUDA kernels inside the block on
    ``stream`` (a Numba, CuPy or PyTorch CUDA stream, or a ``cudaStream_t``
    handle as an int). Without it a call runs on the stream its y_pred's
    producer names in ``__cuda_array_interface__`` (CuPy and PyTorch name
    their current stream), else on the default stream. A call returns once
    what it returns is ready: a reduced loss is read back (the call waits for
    it); a gradient or per-sample losses left on the device are ready when
    the stream reaches them (order later work on the same stream)."""
    ok = (
        (isinstance(stream, int) and not isinstance(stream, bool) and stream >= 0)
        or hasattr(stream, "cuda_stream")
        or hasattr(stream, "ptr")
        or (hasattr(stream, "synchronize") and type(stream).__module__.startswith("numba"))
    )
    if not ok:
        raise TypeError(
            "`stream` must be a Numba, CuPy or PyTorch CUDA stream, or a cudaStream_t handle (int >= 0); "
            f"got {stream!r}"
        )
    token = _stream_ctx.set(stream)
    try:
        yield stream
    finally:
        _stream_ctx.reset(token)


# ``os.environ.get`` of a variable that is not set costs ~1.5 us on the 2-core
# EPYC (it encodes the key and catches a KeyError), a tenth of a small loss
# call; the mapping behind ``os.environ`` answers "not set" in 0.05 us. Its
# keys are bytes on POSIX and upper-cased str on Windows; where it is missing
# (another Python), every call asks ``os.environ``.
_ENVIRON_DATA = getattr(os.environ, "_data", None)
_ENV_KEY = "FASTLOSS_BACKEND" if os.name == "nt" else b"FASTLOSS_BACKEND"
if type(_ENVIRON_DATA) is not dict:
    _ENVIRON_DATA = None


def _explicit():
    """The backend asked for (use_backend, set_backend, FASTLOSS_BACKEND), or None."""
    name = _ctx.get()
    if name is not None:
        return name
    if _process_choice is not None:
        return _process_choice
    if _ENVIRON_DATA is not None and _ENV_KEY not in _ENVIRON_DATA:
        return None
    env = os.environ.get("FASTLOSS_BACKEND")
    if env:
        return _check(env.strip().lower())
    return None


def _no_backend():
    return RuntimeError(
        "no fastloss backend is available: install numba (pip install numba), or reinstall "
        "fastloss with a C compiler present to build its C backend"
    )


def current_backend():
    """The backend chosen explicitly, else the automatic default ("numba" when
    installed, else "c"; per loss, ``choose`` may pick the other one where only
    it has a kernel, or where it measured faster)."""
    name = _explicit()
    if name is not None:
        return name
    for name in _AUTO_ORDER:
        if _usable(name):
            return name
    raise _no_backend()


# The automatic choice between the two CPU backends, per call. Measured here
# (min of 31 kernel calls, float32, 1 and 2 threads; see the report of issue #6):
# warm Numba kernels are as fast as the C kernels on the memory-bound losses
# (MSE, Huber: C/Numba 0.88-1.06) and 10-45% faster on the exp/log-heavy ones
# (gcc 12's vectorized code for these branchy element functions is slower than
# LLVM's), and Numba's dispatcher costs ~2 us less per call than CFFI's argument
# conversion. So Numba stays the automatic choice where it is installed; C runs
# where Numba is missing or broken, for losses without a Numba kernel, and for
# the (loss, variant) pairs listed here, where C measured faster.
#
# That was an AVX-512 EPYC (and, later, a Zen 2 with AVX2). On an Intel AVX-512
# Xeon (Emerald Rapids, 2026-12-05) C was ahead on the exp/log-heavy losses
# (C/Numba 0.57-0.79 in float64, 0.49-1.04 in float32, one thread): LLVM
# prefers 256-bit vectors on Intel, gcc's x86-64-v4 clones use 512-bit ones.
# Those Numba kernels now ask for 512-bit vectors (numba_cpu/_math.py,
# wide_vectors), which brought them level (C/Numba 0.91-1.32;
# ``python -m benchmarks.backend_compare --dtype float64 --threads 1``). C
# stays ahead there on SCCE from logits with few classes (float64, 4 classes:
# 0.70-0.74; float32 0.92-0.94; the Zen 2 showed it too, 262144x4 float32 1.71
# against 2.32 ms in its report) and on cosine similarity / categorical hinge
# (0.84-0.89, this machine only). Not listed here: PREFER_C knows the size of
# y_pred, not its class count or dtype, which that choice would need.
#
# Box losses: C measured faster (1M float32 boxes, loss + gradient, min of 31
# interleaved kernel calls on the 2-core EPYC: GIoU C/Numba 0.85 on one thread,
# 0.89 on two; CIoU 0.72/0.73; one broadcast box 0.67-0.70), so they take C from
# 32768 elements (8192 boxes) up; below that Numba's cheaper dispatch wins.
# (loss, variant) -> the smallest y_pred size (elements) from which C is chosen.
PREFER_C = {(n, "probs"): 1 << 15 for n in ("iou_loss", "giou_loss", "diou_loss", "ciou_loss")}


def choose(spec, variant, n_elements=None):
    """The backend one call runs on: the explicit choice, else automatic:
    "c" for the pairs in ``PREFER_C`` from their size on (``n_elements``: the
    size of y_pred; None counts as large), else "numba" where it is usable and
    has a kernel for the loss, else "c"."""
    name = _explicit()
    if name is not None:
        return name
    c_ok = _usable("c") and _has(spec, "c", variant)
    min_c = PREFER_C.get((spec.name, variant))
    if c_ok and min_c is not None and (n_elements is None or n_elements >= min_c):
        return "c"
    if _usable("numba") and _has(spec, "numba", variant):
        return "numba"
    if c_ok:
        return "c"
    for name in _AUTO_ORDER:  # no backend has a kernel for it: kernel() says so
        if _usable(name):
            return name
    raise _no_backend()


def _has(spec, backend, variant):
    if spec.family == "custom":  # built on demand, Numba only
        return backend == "numba"
    ks = spec.kernels.get(backend)
    return ks is not None and variant in ks


def pick_kernel(spec, variant, n_elements):
    """The kernel for one call (``choose`` + ``kernel``). In automatic mode a
    Numba that is installed but fails to import is dropped for C."""
    backend = choose(spec, variant, n_elements)
    try:
        return kernel(spec, variant, backend)
    except ImportError:
        if backend != "numba" or _explicit() is not None or not _usable("c"):
            raise
        _numba_broken()
        return kernel(spec, variant, choose(spec, variant, n_elements))


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
