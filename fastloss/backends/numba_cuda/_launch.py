"""Kernel launches with less host work than numba-cuda's own.

``kern[grid, block, stream](*args)`` in numba-cuda 0.30 types every argument
again on each call, builds a launch configuration (and, for grids under 128
blocks, a performance warning), and turns every device array into a cuda.core
``StridedMemoryView`` to read its pointer, shape and strides. A fastloss call
makes two to nine launches; under cProfile on the H100 host
(benchmarks/results/h100-2026-12-05/GPU_PROFILE.txt, SCCE 256x10, three
launches a call) the launch path was about 30% of the call's host time, which
was 0.35-0.65 ms a call across the small cases there. How much this module
saves has not been measured on a GPU yet (benchmarks/gpu_overhead.py).

``launch(kern, grid, block, stream, *args)`` does the same launch. Its first
call for a kernel and a set of argument types goes through numba-cuda (which
compiles, and whose pre-launch callback hands over the kernel it chose);
later calls with the same types pass the flattened arguments straight to
``cuda.core.launch``. The flattening is checked once per binding against
numba-cuda's own (``_Kernel._prepare_args`` on the same arguments): where the
two differ, or anything about the kernel is unusual (debug, cooperative,
launch-config sensitive, argument extensions, a type not handled here), that
binding keeps numba-cuda's path. Off in the simulator, with more than one GPU
visible (the compiled function is per device), or with
``FASTLOSS_CUDA_FAST_LAUNCH=0``.
"""

import ctypes
import os
import warnings

import numpy as np

from numba import config as _config
from numba import cuda

from ._streams import _handle

_SIM = bool(_config.ENABLE_CUDASIM)

ENABLED = os.environ.get("FASTLOSS_CUDA_FAST_LAUNCH", "1") != "0" and not _SIM

# counts of launches by path (gpu_check reports them)
STATS = {"fast": 0, "numba": 0, "bound": 0, "refused": 0}

_BOUND = {}  # (dispatcher, argument keys) -> _Binding, or None: numba's path
_STREAMS = {}
_CONFIGS = {}
_STATE = {}
_MAX_CACHE = 256


def _dims(d):
    if isinstance(d, (tuple, list)):
        d = tuple(int(v) for v in d)
        return d + (1,) * (3 - len(d))
    return (int(d), 1, 1)


def _argkey(a):
    """What numba-cuda dispatches on: a device array's numba type (cached on
    the array), else the Python type of a scalar."""
    if getattr(a, "__cuda_ndarray__", False):
        return a._numba_type_
    return type(a)


def _usable():
    ok = _STATE.get("usable")
    if ok is None:
        ok = False
        if ENABLED:
            try:
                from cuda.core import LaunchConfig, launch  # noqa: F401
                from numba.cuda.cudadrv import driver  # noqa: F401

                _STATE["core_launch"] = launch
                ok = len(cuda.gpus) == 1
            except Exception:
                ok = False
        _STATE["usable"] = ok
    return ok


def _flat_array(a):
    return [0, 0, a.size, a.dtype.itemsize, a.device_ctypes_pointer.value, *a.shape, *a.strides]


def _int_conv(name):
    ct = getattr(ctypes, "c_%s" % name)
    bits = ctypes.sizeof(ct) * 8
    lo, hi = (0, 1 << bits) if name.startswith("u") else (-(1 << (bits - 1)), 1 << (bits - 1))

    def conv(v):
        v = int(v)
        if not lo <= v < hi:
            raise OverflowError(f"kernel argument {v} does not fit {name}")
        return [ct(v)]

    return conv


def _converters(argtypes):
    """One function per argument: value -> its flattened launch arguments, as
    numba-cuda's ``_prepare_args`` makes them; None where a type is not handled."""
    from numba.cuda import types

    out = []
    for t in argtypes:
        if isinstance(t, types.Array):
            if t.layout not in "CA":
                return None
            out.append(_flat_array)
        elif isinstance(t, types.Integer):
            out.append(_int_conv(str(t)))
        elif t == types.float64:
            out.append(lambda v: [ctypes.c_double(v)])
        elif t == types.float32:
            out.append(lambda v: [ctypes.c_float(v)])
        elif t == types.boolean:
            out.append(lambda v: [v])
        else:
            return None
    return out


def _same(mine, theirs):
    """Whether two flattened argument lists are the same (ctypes values by type and value)."""
    if len(mine) != len(theirs):
        return False
    for x, y in zip(mine, theirs):
        if isinstance(y, ctypes._SimpleCData) or isinstance(x, ctypes._SimpleCData):
            if type(x) is not type(y) or x.value != y.value:
                return False
        elif type(x) is not type(y) and not (isinstance(x, int) and isinstance(y, int)):
            return False
        elif x != y:
            return False
    return True


class _Binding:
    __slots__ = ("fn", "conv")

    def __init__(self, fn, conv):
        self.fn = fn
        self.conv = conv


REFUSALS = []  # (kernel, why) of the bindings refused, the first 20 (gpu_overhead reports them)


def _refuse(kernel, why):
    if len(REFUSALS) < 20:
        REFUSALS.append((str(getattr(kernel, "entry_name", kernel))[:120], why))
    return None


def _bind(kernel, args, stream):
    """A binding for numba-cuda's chosen ``kernel`` (a ``_Kernel``), or None."""
    try:
        if kernel.debug or kernel.cooperative or getattr(kernel, "launch_config_sensitive", False):
            return _refuse(kernel, "debug, cooperative or launch-config sensitive")
        if kernel.extensions:
            return _refuse(kernel, "argument extensions")
        if any(isinstance(a, np.ndarray) for a in args):
            return _refuse(kernel, "a host array")  # numba-cuda copies it in (and back); its path
        conv = _converters(kernel.argument_types)
        if conv is None or len(conv) != len(args):
            return _refuse(kernel, f"an argument type not handled: {kernel.argument_types}")
        theirs, retr = [], []
        for t, v in zip(kernel.argument_types, args):
            kernel._prepare_args(t, v, stream, retr, theirs)
        if retr:  # a host array, copied in (and back) by numba-cuda: its path
            return _refuse(kernel, "numba-cuda converts an argument")
        mine = [x for c, a in zip(conv, args) for x in c(a)]
        if not _same(mine, theirs):
            return _refuse(kernel, f"flattening differs: mine {mine!r} numba-cuda {theirs!r}"[:400])
        fn = kernel._codelibrary.get_cufunc().kernel
        return _Binding(fn, conv)
    except Exception as exc:  # a numba-cuda whose internals differ: its own path
        _refuse(kernel, repr(exc)[:300])
        if not _STATE.get("warned"):
            _STATE["warned"] = True
            warnings.warn(f"fastloss: fast CUDA launches are off for a kernel ({exc!r}); using numba-cuda's launch",
                          RuntimeWarning, stacklevel=3)
        return None


def _core_stream(stream):
    key = stream if not isinstance(stream, int) else _handle(stream)
    s = _STREAMS.get(key)
    if s is None:
        from numba.cuda.cudadrv import driver

        if len(_STREAMS) > _MAX_CACHE:
            _STREAMS.clear()
        s = _STREAMS[key] = driver._to_core_stream(stream)
    return s


def _config(grid, block, shmem=0):
    key = (grid, block, shmem)
    c = _CONFIGS.get(key)
    if c is None:
        from cuda.core import LaunchConfig

        if len(_CONFIGS) > _MAX_CACHE:
            _CONFIGS.clear()
        g, b = _dims(grid), _dims(block)
        try:
            c = LaunchConfig(grid=g, block=b, shmem_size=shmem, is_cooperative=False)
        except TypeError:  # cuda.core < 1.0
            c = LaunchConfig(grid=g, block=b, shmem_size=shmem, cooperative_launch=False)
        _CONFIGS[key] = c
    return c


_SHARED_SET = {}  # id(compiled function) -> the function: its dynamic shared memory limit raised


def _allow_dynamic_shared(kernel, launch_config=None):
    """Let numba-cuda's chosen ``kernel`` (a ``_Kernel``) take dynamic shared
    memory beyond the default 48 KB: its maximum raised, once per compiled
    function, to what the device allows a block by opting in less the
    kernel's static shared memory (CUDA's cudaFuncSetAttribute
    MaxDynamicSharedMemorySize; numba-cuda has no call for it, it sets the
    carveout the same way). A pre-launch callback: before numba-cuda's
    launch, which the fast path's later launches of the same function follow."""
    from numba.cuda.cudadrv import driver as drv

    cufunc = kernel._codelibrary.get_cufunc()
    if id(cufunc) in _SHARED_SET:
        return
    dev = cufunc.device
    most = int(dev.MAX_SHARED_MEMORY_PER_BLOCK_OPTIN) - int(cufunc.attrs.shared)
    attr = drv.binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    drv.driver.cuKernelSetAttribute(attr, most, cufunc.handle, dev.id)
    _SHARED_SET[id(cufunc)] = cufunc


def _configured(kern, grid, block, stream, shmem):
    """numba-cuda's launch configuration; a kernel launched with dynamic
    shared memory (real GPUs) gets its limit raised at its first launch,
    whatever this launch asks for: the fast path's later launches of it may
    ask for more."""
    if not shmem:
        return kern[grid, block, stream]
    cfg = kern[grid, block, stream, shmem]
    if not _SIM:
        hooks = getattr(cfg, "pre_launch_callbacks", None)
        if isinstance(hooks, list):
            hooks.append(_allow_dynamic_shared)
    return cfg


def launch(kern, grid, block, stream, *args, shmem=0):
    """``kern[grid, block, stream, shmem](*args)``, by the short path where it
    is bound (``shmem``: bytes of dynamic shared memory)."""
    if not _usable():
        _configured(kern, grid, block, stream, shmem)(*args)
        return
    try:
        key = (kern, *map(_argkey, args))
    except Exception:
        key = None
    b = _BOUND.get(key, False) if key is not None else None
    if b:
        try:
            flat = []
            for c, a in zip(b.conv, args):
                flat += c(a)
            _STATE["core_launch"](_core_stream(stream), _config(grid, block, shmem), b.fn, *flat)
            STATS["fast"] += 1
            return
        except Exception as exc:  # not launched: unbind, and numba-cuda's path below (which raises if it must)
            _BOUND[key] = None
            STATS["refused"] += 1
            if not _STATE.get("warned"):
                _STATE["warned"] = True
                warnings.warn(f"fastloss: a fast CUDA launch failed ({exc!r}); using numba-cuda's launch",
                              RuntimeWarning, stacklevel=2)
    if b is False:  # first launch with these types: numba-cuda's, and bind the kernel it chose
        chosen = []
        cfg = _configured(kern, grid, block, stream, shmem)
        hooks = getattr(cfg, "pre_launch_callbacks", None)  # numba-cuda >= 0.30: the kernel it chose
        if isinstance(hooks, list):
            hooks.append(lambda k, lc: chosen.append(k))
        cfg(*args)
        STATS["numba"] += 1
        binding = _bind(chosen[0], args, cfg.stream) if len(chosen) == 1 else None
        if len(_BOUND) > 4 * _MAX_CACHE:
            _BOUND.clear()
        _BOUND[key] = binding
        STATS["bound" if binding else "refused"] += 1
        return
    _configured(kern, grid, block, stream, shmem)(*args)
    STATS["numba"] += 1
