"""The short kernel launch (fastloss/backends/numba_cuda/_launch.py) against numba-cuda's own.

``_launch.launch`` passes flattened arguments straight to ``cuda.core.launch``
once a kernel is bound, and binds only where its flattening equals numba-cuda's
(``_Kernel._prepare_args``) on the call's own arguments. These tests run that
binding step on numba-cuda's real marshalling code without a GPU: device
arrays are numba-cuda ``DeviceNDArray`` objects over a made-up pointer (no
memory is touched), the kernel a stand-in that carries ``_Kernel``'s own
``_prepare_args``. They run in .ci/cuda_compile's environment (numba-cuda
installed) and skip elsewhere; the launch itself is checked on a GPU
(tests/test_cuda.py there runs every kernel through it).
"""

import ctypes
import importlib.util
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the simulator launches no kernels", allow_module_level=True)
if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip("numba-cuda is not installed", allow_module_level=True)

from numba.cuda.cudadrv.devicearray import DeviceNDArray  # noqa: E402
from numba.cuda.dispatcher import _Kernel  # noqa: E402
from numba.cuda.typing.typeof import Purpose, typeof  # noqa: E402

from fastloss.backends.numba_cuda import _launch as L  # noqa: E402


class _Mem:
    """What DeviceNDArray reads of its memory: the pointer."""

    def __init__(self, ptr):
        self.device_ctypes_pointer = ctypes.c_void_p(ptr)


def _dev(shape, dtype, ptr=0x7F0000001000):
    dt = np.dtype(dtype)
    strides = tuple(int(s) for s in np.empty(shape, dt).strides)
    return DeviceNDArray(shape, strides, dt, gpu_data=_Mem(ptr))


class _Cufunc:
    kernel = object()


class _Lib:
    def get_cufunc(self):
        return _Cufunc()


class _FakeKernel:
    """A ``_Kernel`` as far as ``_launch._bind`` reads it, marshalling with numba-cuda's own code."""

    _prepare_args = _Kernel._prepare_args

    def __init__(self, args, **flags):
        self.argument_types = tuple(typeof(a, Purpose.argument) for a in args)
        self.debug = flags.get("debug", False)
        self.cooperative = flags.get("cooperative", False)
        self.launch_config_sensitive = flags.get("sensitive", False)
        self.extensions = flags.get("extensions", [])
        self._codelibrary = _Lib()


def _args_like_the_kernels():
    """Argument lists as fastloss's kernels get them (crossentropy, elementwise, triplet)."""
    x = _dev((64, 10), np.float32, 0x7F0000100000)
    lab = _dev((64,), np.int64, 0x7F0000200000)
    loss = _dev((64,), np.float32, 0x7F0000300000)
    w = _dev((1,), np.float32, 0x7F0000400000)
    info = _dev((2,), np.int64, 0x7F0000500000)
    tot = _dev((1,), np.float64, 0x7F0000500010)
    g3 = _dev((2, 3, 4), np.float64, 0x7F0000600000)
    prm = np.zeros(10)
    return [
        # scce_logits_warp: arrays, np.float64 / Python float scalars, np.bool_, int, bool
        (x, lab, prm[0], prm[8], prm[9] != 0.0, w, 0, loss, x, True, info),
        # register kernel: a float, a device parameter vector
        (x, lab, _dev((5,), np.float32), float(prm[8]), w, 1, loss, x, False, info, tot),
        # triplet row norms: float32 scalars
        (x, np.int64(2), np.float32(1e-12), np.float32(0.0), loss),
        # a 3-d array and Python ints
        (g3, 7, -3, tot),
    ]


@pytest.mark.parametrize("case", range(4))
def test_binding_matches_numba_cuda_marshalling(case):
    args = _args_like_the_kernels()[case]
    b = L._bind(_FakeKernel(args), args, 0)
    assert b is not None, "the flattening differs from numba-cuda's for argument types fastloss uses"
    assert b.fn is _Cufunc.kernel
    # and the bound converters give numba-cuda's list for new values of the same types
    args2 = tuple(_dev(a.shape, a.dtype, 0x7F0000900000 + 256 * i) if hasattr(a, "gpu_data") else a
                  for i, a in enumerate(args))
    mine = [v for c, a in zip(b.conv, args2) for v in c(a)]
    theirs = []
    k = _FakeKernel(args2)
    for t, v in zip(k.argument_types, args2):
        k._prepare_args(t, v, 0, [], theirs)
    assert L._same(mine, theirs)
    # the pointer, shape and strides of each array are where numba-cuda puts them
    first = args2[0]
    n = first.ndim
    assert mine[2:5 + 2 * n] == [first.size, first.dtype.itemsize, first.device_ctypes_pointer.value,
                                 *first.shape, *first.strides]


def test_a_different_flattening_is_not_bound(monkeypatch):
    args = _args_like_the_kernels()[0]
    monkeypatch.setattr(L, "_flat_array", lambda a: [0, 0, a.size, a.dtype.itemsize, a.device_ctypes_pointer.value,
                                                     *a.shape])  # strides left out
    monkeypatch.setattr(L, "REFUSALS", [])
    assert L._bind(_FakeKernel(args), args, 0) is None
    assert len(L.REFUSALS) == 1 and L.REFUSALS[0][1].startswith("flattening differs")  # and says why


@pytest.mark.parametrize("flag", ["debug", "cooperative", "sensitive"])
def test_unusual_kernels_keep_numba_cudas_launch(flag):
    args = _args_like_the_kernels()[3]
    assert L._bind(_FakeKernel(args, **{flag: True}), args, 0) is None


def test_argument_extensions_keep_numba_cudas_launch():
    args = _args_like_the_kernels()[3]
    assert L._bind(_FakeKernel(args, extensions=[object()]), args, 0) is None


def test_a_host_array_keeps_numba_cudas_launch():
    """numba-cuda copies a NumPy argument in and back; the short path would not."""
    args = (np.zeros(4, np.float32), 1)
    k = _FakeKernel(args)
    assert L._bind(k, args, 0) is None


def test_unhandled_types_keep_numba_cudas_launch():
    args = (np.complex128(1 + 2j), 1)  # numba-cuda passes two doubles
    assert L._bind(_FakeKernel(args), args, 0) is None


def test_integers_that_do_not_fit_are_refused():
    conv = L._int_conv("int64")
    assert conv(5)[0].value == 5
    with pytest.raises(OverflowError):
        conv(1 << 63)
    with pytest.raises(OverflowError):
        L._int_conv("uint32")(-1)


def test_same_compares_values_and_types():
    assert L._same([1, ctypes.c_double(2.0), True], [1, ctypes.c_double(2.0), True])
    assert not L._same([ctypes.c_float(2.0)], [ctypes.c_double(2.0)])
    assert not L._same([ctypes.c_double(2.0)], [ctypes.c_double(3.0)])
    assert not L._same([1, 2], [1, 2, 3])
    assert not L._same([1], [2])


class _FakeDispatcher:
    """``kern[grid, block, stream](*args)`` as numba-cuda runs it: a configured
    launch whose pre-launch callbacks get the kernel chosen for the arguments."""

    def __init__(self):
        self.launched = []

    def __getitem__(self, cfg):
        disp = self

        class Configured:
            pre_launch_callbacks = []
            stream = 0

            def __call__(self, *args):
                k = _FakeKernel(args)
                for cb in self.pre_launch_callbacks:
                    cb(k, self)
                disp.launched.append((cfg, args))

        return Configured()


def test_launch_binds_after_numba_cudas_first_launch_then_goes_direct(monkeypatch):
    direct = []
    monkeypatch.setattr(L, "_BOUND", {})
    monkeypatch.setattr(L, "_STATE", {"usable": True, "core_launch": lambda *a: direct.append(a)})
    monkeypatch.setattr(L, "_core_stream", lambda s: ("stream", s))
    monkeypatch.setattr(L, "_config", lambda g, b, shmem=0: ("config", g, b))
    kern = _FakeDispatcher()
    x, y = _dev((8, 3), np.float32, 0x7F0000A00000), _dev((8,), np.int64, 0x7F0000B00000)
    L.launch(kern, 4, 32, 0, x, y, 0.5, 2, True)  # first: numba-cuda's launch, then bound
    assert len(kern.launched) == 1 and not direct
    x2 = _dev((8, 3), np.float32, 0x7F0000C00000)
    L.launch(kern, 5, 64, 0, x2, y, 0.25, 3, False)  # same types: direct
    assert len(kern.launched) == 1 and len(direct) == 1
    stream, config, fn, *flat = direct[0]
    assert stream == ("stream", 0) and config == ("config", 5, 64) and fn is _Cufunc.kernel
    theirs = []
    k = _FakeKernel((x2, y, 0.25, 3, False))
    for t, v in zip(k.argument_types, (x2, y, 0.25, 3, False)):
        k._prepare_args(t, v, 0, [], theirs)
    assert L._same(flat, theirs)
    L.launch(kern, 4, 32, 0, x, y, np.float32(0.5), 2, True)  # another type: numba-cuda's again, bound anew
    assert len(kern.launched) == 2 and len(direct) == 1


def test_a_failing_direct_launch_unbinds_and_goes_through_numba_cuda(monkeypatch):
    def fail(*a):
        raise RuntimeError("no")

    monkeypatch.setattr(L, "_BOUND", {})
    monkeypatch.setattr(L, "_STATE", {"usable": True, "core_launch": fail, "warned": True})
    monkeypatch.setattr(L, "_core_stream", lambda s: s)
    monkeypatch.setattr(L, "_config", lambda g, b, shmem=0: (g, b))
    kern = _FakeDispatcher()
    x = _dev((4,), np.float64)
    L.launch(kern, 1, 1, 0, x, 1)
    L.launch(kern, 1, 1, 0, x, 1)  # the direct launch fails: numba-cuda's
    L.launch(kern, 1, 1, 0, x, 1)  # and stays so
    assert len(kern.launched) == 3
    assert list(L._BOUND.values()) == [None]


def test_dynamic_shared_memory_reaches_both_launch_paths(monkeypatch):
    """A launch with ``shmem`` bytes of dynamic shared memory: numba-cuda's
    launch is configured with them and its pre-launch callbacks raise the
    chosen kernel's limit (``_allow_dynamic_shared``) before it launches; the
    direct launches that follow pass them in the launch configuration."""
    direct, raised = [], []
    monkeypatch.setattr(L, "_BOUND", {})
    monkeypatch.setattr(L, "_STATE", {"usable": True, "core_launch": lambda *a: direct.append(a)})
    monkeypatch.setattr(L, "_core_stream", lambda s: s)
    monkeypatch.setattr(L, "_config", lambda g, b, shmem=0: ("config", g, b, shmem))
    monkeypatch.setattr(L, "_allow_dynamic_shared", lambda k, cfg: raised.append(k))
    kern = _FakeDispatcher()
    x = _dev((8, 3), np.float32, 0x7F0000A00000)
    L.launch(kern, 4, 1024, 0, x, 2, shmem=128000)
    assert kern.launched[0][0] == (4, 1024, 0, 128000) and len(raised) == 1 and not direct
    L.launch(kern, 5, 1024, 0, x, 3, shmem=200000)
    assert len(kern.launched) == 1 and direct[0][1] == ("config", 5, 1024, 200000)
    L.launch(kern, 6, 512, 0, x, 2.5)  # no dynamic shared memory: numba-cuda's plain configuration
    assert kern.launched[1][0] == (6, 512, 0) and len(raised) == 1


def test_dynamic_shared_limit_raised_once_per_compiled_function(monkeypatch):
    """The limit goes to what a block may opt in to less the kernel's static
    shared memory, set once per compiled function (cuKernelSetAttribute, as
    numba-cuda sets the carveout)."""
    from numba.cuda.cudadrv import driver as drv

    calls = []

    class Drv:
        def cuKernelSetAttribute(self, attr, value, handle, dev):
            calls.append((attr, value, handle, dev))

    class Dev:
        MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 232448
        id = 0

    class Attrs:
        shared = 8192

    class Cufunc:
        device, attrs, handle = Dev(), Attrs(), "handle"

    class Lib:
        f = Cufunc()

        def get_cufunc(self):
            return self.f

    class K:
        _codelibrary = Lib()

    monkeypatch.setattr(drv, "driver", Drv())
    monkeypatch.setattr(L, "_SHARED_SET", {})
    k = K()
    L._allow_dynamic_shared(k)
    L._allow_dynamic_shared(k, None)
    attr = drv.binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    assert calls == [(attr, 232448 - 8192, "handle", 0)]
