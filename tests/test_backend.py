"""Backend selection: available_backends, set_backend, use_backend, FASTLOSS_BACKEND."""

import numpy as np
import pytest

import fastloss
from fastloss import losses as L


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    monkeypatch.delenv("FASTLOSS_BACKEND", raising=False)
    fastloss.set_backend(None)
    yield
    fastloss.set_backend(None)


def _call():
    return L.CategoricalCrossentropy()([[0, 1]], np.array([[0.3, 0.7]]))


HAS_C = "c" in fastloss.available_backends()
UNAVAILABLE = [n for n in ("c", "cuda") if n not in fastloss.available_backends()]


def _c_extension_loads():
    try:
        from fastloss.backends.cffi_c import _fastloss_c  # noqa: F401
    except ImportError:
        return False
    return True


def test_available_backends():
    av = fastloss.available_backends()
    assert av[0] == "numba"  # numba is installed where the tests run
    assert set(av) <= {"numba", "c", "cuda"}
    assert ("c" in av) == _c_extension_loads()  # "c" exactly when the extension was built
    before = list(av)
    av.append("junk")  # a copy: mutating it changes nothing
    assert fastloss.available_backends() == before


def test_default_is_numba():
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)


def test_set_backend():
    fastloss.set_backend("numba")
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    fastloss.set_backend(None)
    assert fastloss.current_backend() == "numba"


def test_use_backend_context_restores():
    with fastloss.use_backend("numba") as name:
        assert name == "numba"
        assert fastloss.current_backend() == "numba"
        np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    assert fastloss.current_backend() == "numba"


def test_use_backend_restores_after_exception():
    with pytest.raises(RuntimeError):
        with fastloss.use_backend("numba"):
            raise RuntimeError("boom")
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", UNAVAILABLE)
def test_unavailable_backend_raises_listing_available(name):
    with pytest.raises(ValueError, match="numba") as ei:
        fastloss.set_backend(name)
    assert name in str(ei.value)
    with pytest.raises(ValueError, match="numba"):
        with fastloss.use_backend(name):
            pass
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", ["tensorflow", "NUMBA_X", "", "gpu"])
def test_unknown_backend_raises(name):
    with pytest.raises(ValueError, match="numba"):
        fastloss.set_backend(name)
    with pytest.raises(ValueError):
        with fastloss.use_backend(name):
            pass


def test_failed_set_backend_keeps_previous_choice():
    fastloss.set_backend("numba")
    with pytest.raises(ValueError):
        fastloss.set_backend("cuda")
    assert fastloss.current_backend() == "numba"


def test_env_variable(monkeypatch):
    monkeypatch.setenv("FASTLOSS_BACKEND", "numba")
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    monkeypatch.setenv("FASTLOSS_BACKEND", " NUMBA ")
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", UNAVAILABLE + ["bogus"])
def test_env_variable_unavailable_raises_on_use(monkeypatch, name):
    monkeypatch.setenv("FASTLOSS_BACKEND", name)
    with pytest.raises(ValueError, match="numba"):
        _call()


def test_explicit_choice_beats_env(monkeypatch):
    monkeypatch.setenv("FASTLOSS_BACKEND", "cuda")
    with fastloss.use_backend("numba"):
        np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    fastloss.set_backend("numba")
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)


# ---- the C backend ----------------------------------------------------------

needs_c = pytest.mark.skipif(not HAS_C, reason="the C extension was not built")


@needs_c
def test_select_c_every_way(monkeypatch):
    fastloss.set_backend("c")
    assert fastloss.current_backend() == "c"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    fastloss.set_backend(None)
    with fastloss.use_backend("c") as name:
        assert name == "c" and fastloss.current_backend() == "c"
        np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    monkeypatch.setenv("FASTLOSS_BACKEND", "C")
    assert fastloss.current_backend() == "c"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)


@needs_c
def test_c_build_info():
    from fastloss.backends import cffi_c

    info = cffi_c.build_info()
    assert "simd=" in info and "openmp=" in info
    assert cffi_c.max_threads() >= 1


_NO_NUMBA = r"""
import sys
sys.modules["numba"] = None  # numba made unimportable: `import numba` raises ImportError
import numpy as np
import fastloss
from fastloss import losses as L

assert fastloss.available_backends() == ["c"], fastloss.available_backends()
assert fastloss.current_backend() == "c"  # the automatic choice falls back to C by itself
# golden values: -log(0.7) and a hand-computed MSE; a big batch takes the threaded path
np.testing.assert_allclose(L.CategoricalCrossentropy()([[0, 1]], np.array([[0.3, 0.7]])), -np.log(0.7), rtol=1e-12)
y = np.zeros((50000, 4)); p = np.full((50000, 4), 0.5)
loss, grad = L.MeanSquaredError().value_and_grad(y, p)
np.testing.assert_allclose(loss, 0.25, rtol=1e-12)
np.testing.assert_allclose(grad, 2 * 0.5 / p.size, rtol=1e-12)
x = np.array([[1.0, 2.0, 3.0]], np.float32)
np.testing.assert_allclose(L.SparseCategoricalCrossentropy(from_logits=True)([2], x),
                           np.log(np.exp(x).sum()) - 3.0, rtol=1e-6)
g, h = L.BinaryCrossentropy(from_logits=True).grad_hess(np.array([1.0]), np.array([0.0]))
np.testing.assert_allclose((g, h), ([-0.5], [0.25]), rtol=1e-12)
try:
    L.SparseCategoricalCrossentropy()([5], np.array([[0.5, 0.5]]))
except ValueError as e:
    assert "5" in str(e)
else:
    raise SystemExit("bad label not reported")
@fastloss.custom_loss
def sq(y_true, y_pred):
    return (y_pred - y_true) ** 2
try:
    sq()(np.zeros(3), np.ones(3))
except ValueError as e:
    assert "Numba" in str(e) and "pip install numba" in str(e), e
else:
    raise SystemExit("custom_loss without numba did not raise")
print("OK")
"""


@needs_c
def test_without_numba_falls_back_to_c():
    """numba made unimportable in a fresh process: fastloss imports, picks C by
    itself, computes losses, and says clearly what needs Numba."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("FASTLOSS_BACKEND", None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", _NO_NUMBA], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("OK")


@needs_c
def test_automatic_choice_per_call(monkeypatch):
    """Automatic mode: Numba where it has the kernel, C where only C has it or
    where the loss is listed in PREFER_C; an explicit choice always wins."""
    from fastloss import _backend, _registry

    spec = _registry.get("sparse_categorical_crossentropy")
    assert _backend.choose(spec, "logits", 10**7) == "numba"
    monkeypatch.setattr(_backend, "PREFER_C", {("sparse_categorical_crossentropy", "logits"): 100})
    assert _backend.choose(spec, "logits", 100) == "c"
    assert _backend.choose(spec, "logits", 99) == "numba"  # below the pair's size: Numba
    assert _backend.choose(spec, "probs", 10**7) == "numba"
    custom = _registry.LossSpec("custom:x", "custom", "dense", {}, "none")
    assert _backend.choose(custom, "elementwise") == "numba"
    c_only = _registry.LossSpec("x", "boxes", "dense", {"c": {"probs": "m:f"}}, "none")
    assert _backend.choose(c_only, "probs") == "c"
    no_c = _registry.LossSpec("x", "boxes", "dense", {"numba": {"probs": "m:f"}}, "none")
    assert _backend.choose(no_c, "probs") == "numba"
    with fastloss.use_backend("numba"):
        assert _backend.choose(spec, "logits") == "numba"
    with fastloss.use_backend("c"):
        assert _backend.choose(spec, "probs") == "c"
    monkeypatch.setenv("FASTLOSS_BACKEND", "numba")
    assert _backend.choose(spec, "logits") == "numba"


@needs_c
def test_box_losses_take_c_from_their_size_on():
    """PREFER_C as shipped: the box losses (where C measured faster) run on C for
    large batches and on Numba for small ones, and give the same values."""
    from fastloss import _backend, _registry

    spec = _registry.get("giou_loss")
    assert _backend.choose(spec, "probs", 4 * 100_000) == "c"
    assert _backend.choose(spec, "probs", 4 * 16) == "numba"
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 10, (20000, 2, 2)), axis=1).reshape(20000, 4)
    p = t + rng.normal(0, 0.5, t.shape)
    auto = fastloss.losses.GIoULoss().value_and_grad(t, p)
    with fastloss.use_backend("numba"):
        ref = fastloss.losses.GIoULoss().value_and_grad(t, p)
    np.testing.assert_allclose(auto[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(auto[1], ref[1], rtol=1e-9, atol=1e-15)


@needs_c
def test_broken_numba_falls_back_to_c(monkeypatch):
    """Numba installed but failing to import: the automatic choice drops it."""
    import importlib

    from fastloss import _backend, _registry

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.startswith("fastloss.backends.numba_cpu"):
            raise ImportError("numba is broken here")
        return real(name, *a, **k)

    monkeypatch.setattr(_backend.importlib, "import_module", fake)
    monkeypatch.setattr(_backend, "_kernel_cache", {})
    monkeypatch.setattr(_backend, "_probed", dict(_backend._probed))
    spec = _registry.get("mean_squared_error")
    fn = _backend.pick_kernel(spec, "probs", 1)  # would be Numba
    assert fn.__module__ == "fastloss.backends.cffi_c._kernels"
    assert "numba" not in fastloss.available_backends()
    with pytest.raises(ImportError):  # an explicit request is not rerouted
        monkeypatch.setattr(_backend, "_probed", {})
        with fastloss.use_backend("numba"):
            _backend.pick_kernel(spec, "probs", 1)


@needs_c
def test_c_kernels_release_the_gil():
    """While a C kernel runs in one thread, Python code runs in another (CFFI
    releases the GIL around API-mode calls). With the GIL held the main loop
    below could only run before and after the calls, a handful of iterations."""
    import sys
    import threading
    import time

    from fastloss import _backend, _core, _registry

    spec = _registry.get("categorical_focal_crossentropy")
    rng = np.random.default_rng(0)
    yp = rng.uniform(0.05, 1.0, (4096, 256)).astype(np.float32)
    yt = np.eye(256, dtype=np.float32)[rng.integers(0, 256, 4096)]
    prm = _core._prm(1.0, 256, {"alpha": 0.25, "gamma": 1.5}, None, np.dtype(np.float32))
    w = np.ones(1, np.float32)
    loss = np.empty(4096, np.float32)
    grad = np.empty_like(yp)
    fn = _backend.kernel(spec, "probs", "c")
    t0 = time.perf_counter()
    fn(yt, yp, prm, w, 0, loss, grad, True, 1)
    one_call = time.perf_counter() - t0
    # calls enough for ~50 ms of work: three calls of ~1 ms were over before a
    # busy machine (the suite's other worker beside it) scheduled this thread
    # again, and the loop below counted 0 though the GIL was released
    calls = max(3, int(0.05 / one_call) + 1)
    started = threading.Event()

    def work():
        started.set()
        for _ in range(calls):
            fn(yt, yp, prm, w, 0, loss, grad, True, 1)

    # A long switch interval: a thread that HOLDS the GIL through its calls (a
    # regex with catastrophic backtracking, say) is never preempted here, and the
    # loop below counts 0; a call that releases it lets the loop run meanwhile.
    old = sys.getswitchinterval()
    sys.setswitchinterval(max(0.1, 4 * calls * one_call))  # > all the calls: never preempted
    try:
        th = threading.Thread(target=work)
        th.start()
        started.wait()
        n = 0
        while th.is_alive():
            n += 1
        th.join()
    finally:
        sys.setswitchinterval(old)
    assert n > 1000, (n, one_call)


@pytest.mark.parametrize("bad", ["fast", -1, 1.5, True, object()])
def test_cuda_stream_rejects_what_is_not_a_stream(bad):
    with pytest.raises(TypeError, match="stream"):
        with fastloss.cuda_stream(bad):
            pass


def test_cuda_stream_is_scoped():
    from fastloss import _backend

    class TorchLike:  # what torch.cuda.Stream offers
        cuda_stream = 1234

    s = TorchLike()
    with fastloss.cuda_stream(s) as got:
        assert got is s and _backend._stream_ctx.get() is s
        with fastloss.cuda_stream(0):
            assert _backend._stream_ctx.get() == 0
        assert _backend._stream_ctx.get() is s
    assert _backend._stream_ctx.get() is None
