"""The parallel guard (fastloss/_parallel.py): the first two would-be-parallel
calls of a kernel run serially and are timed; two parallel calls in a row that
take far longer than that serial rate predicts (another thread pool holding
the cores) send every kernel back to serial for a while (BACKOFF_MIN_S,
doubling with each stall in a row up to BACKOFF_MAX_S).

The stall is simulated: a wrapped kernel sleeps when it is given more than one
chunk, so the tests do not depend on this machine's load.
"""

import time

import numpy as np
import pytest

import fastloss
from fastloss import _backend, _core, _parallel
from fastloss import losses as L


@pytest.fixture
def guard(monkeypatch):
    monkeypatch.setattr(_parallel, "ENABLED", True)
    _parallel.reset()
    yield _parallel
    _parallel.reset()


def test_decisions(guard, monkeypatch):
    k = ("huber", "probs", "f", True)
    assert guard.chunks(k, 1) == 1
    assert guard.chunks(k, 2) == 1  # no serial timing yet: calibrate first
    guard.record(k, 2, 1, 10_000, 0.5)  # the first call (compiles): 50 us per unit
    assert guard.chunks(k, 2) == 1  # two serial timings first
    guard.record(k, 2, 1, 10_000, 10e-3)  # serial: 1 us per unit (the faster one counts)
    assert guard.chunks(k, 2) == 2
    guard.record(k, 2, 2, 10_000, 0.3)  # the first parallel call (pool start-up, compile): not judged
    assert guard.stalls == 0 and guard.chunks(k, 2) == 2
    guard.record(k, 2, 2, 10_000, 5.5e-3)  # a normal parallel call
    guard.record(k, 2, 2, 100, 0.9e-3)  # slow per unit but under STALL_MIN_S: ignored
    assert guard.stalls == 0 and guard.chunks(k, 2) == 2
    guard.record(k, 1, 1, 10, 1.0)  # calls that never asked for threads do not count
    assert guard.chunks(k, 2) == 2
    guard.record(k, 2, 2, 1_000, 8e-3)  # 8 us per unit > 1.5 x the serial rate: stalled
    assert guard.stalls == 1
    assert guard.chunks(k, 2) == 2  # one stall is tolerated
    guard.record(k, 2, 2, 10_000, 5.5e-3)  # full speed again: the count restarts
    guard.record(k, 2, 2, 1_000, 8e-3)
    assert guard.stalls == 2 and guard.chunks(k, 2) == 2
    guard.record(k, 2, 2, 1_000, 8e-3)  # two in a row: serial
    assert guard.stalls == 3
    assert guard.chunks(k, 2) == 1
    assert guard.chunks(("other", "probs", "f", True), 2) == 1  # every kernel backs off
    now = time.perf_counter()
    clock = [now + guard.BACKOFF_MIN_S + 1e-4]
    monkeypatch.setattr(_parallel.time, "perf_counter", lambda: clock[0])
    assert guard.chunks(k, 2) == 2  # threads are tried again after BACKOFF_MIN_S
    guard.record(k, 2, 2, 1_000, 8e-3)  # stalls again: twice as long a serial stretch
    assert guard.stalls == 4
    clock[0] += 1.5 * guard.BACKOFF_MIN_S
    assert guard.chunks(k, 2) == 1
    clock[0] += guard.BACKOFF_MIN_S
    assert guard.chunks(k, 2) == 2
    guard.record(k, 2, 2, 10_000, 5.5e-3)  # a good parallel call resets the stretch
    guard.record(k, 2, 2, 1_000, 8e-3)
    guard.record(k, 2, 2, 1_000, 8e-3)
    assert guard.chunks(k, 2) == 1
    clock[0] += 1.5 * guard.BACKOFF_MIN_S
    assert guard.chunks(k, 2) == 2
    for _ in range(20):  # stalls in a row: the stretch stops growing at BACKOFF_MAX_S
        guard.record(k, 2, 2, 1_000, 8e-3)
    assert guard._backoff == guard.BACKOFF_MAX_S


def test_faster_calibration_call_sets_the_rate(guard):
    k = ("mse", "probs", "d", False)
    guard.record(k, 2, 1, 1000, 2e-3)
    guard.record(k, 2, 1, 1000, 9e-3)  # a disturbed calibration call does not raise it
    guard.record(k, 2, 2, 1000, 1.0)  # first parallel call: not judged
    guard.record(k, 2, 2, 1000, 3.5e-3)  # 1.75 x the best serial rate: a stall
    assert guard.stalls == 1


def test_a_dearer_kernel_is_measured_again(guard, monkeypatch):
    """A kernel that became 4x dearer after its calibration (categorical focal:
    one-hot labels, then soft ones) looks stalled twice; the serial call of the
    back-off measures it again, and threads are back for good."""
    k = ("categorical_focal", "probs", "f", True)
    guard.record(k, 2, 1, 1000, 2e-3)
    guard.record(k, 2, 1, 1000, 2e-3)
    guard.record(k, 2, 2, 1000, 1.0)  # first parallel call: not judged
    guard.record(k, 2, 2, 1000, 1.1e-3)  # full speed
    assert guard.stalls == 0
    guard.record(k, 2, 2, 1000, 4.4e-3)  # 4x dearer now: judged stalled, twice
    guard.record(k, 2, 2, 1000, 4.4e-3)
    assert guard.stalls == 2 and guard.chunks(k, 2) == 1
    guard.record(k, 2, 1, 1000, 8e-3)  # the serial call of the back-off: the new rate
    clock = [time.perf_counter() + guard.BACKOFF_MAX_S]
    monkeypatch.setattr(_parallel.time, "perf_counter", lambda: clock[0])
    for _ in range(5):
        assert guard.chunks(k, 2) == 2
        guard.record(k, 2, 2, 1000, 4.4e-3)  # 0.55 x the new serial time: not a stall
    assert guard.stalls == 2


def test_disabled(guard, monkeypatch):
    monkeypatch.setattr(_parallel, "ENABLED", False)
    assert guard.chunks(("x",), 2) == 2
    guard.record(("x",), 2, 2, 1, 10.0)
    assert guard.stalls == 0 and guard.chunks(("x",), 2) == 2


def _stalling(monkeypatch, variant_of_interest, nch_pos):
    """Wrap kernel lookups: kernels of ``variant_of_interest`` record their chunk
    count and sleep 20 ms when given more than one chunk."""
    seen = []
    real_kernel = _backend.kernel

    def kernel(spec, variant, backend):
        fn = real_kernel(spec, variant, backend)
        if variant != variant_of_interest:
            return fn

        def slow(*args):
            nch = args[nch_pos]
            seen.append(nch)
            if nch > 1:
                time.sleep(0.02)
            return fn(*args)

        return slow

    monkeypatch.setattr(_backend, "kernel", kernel)
    monkeypatch.setattr(_core, "_nthreads", 2)
    monkeypatch.setattr(_parallel, "BACKOFF_MIN_S", 60.0)  # the calls after the stall: serial, however slow the machine
    monkeypatch.setattr(_parallel, "_backoff", 60.0)
    return seen


@pytest.mark.parametrize("backend", ["numba", "c"])
def test_elementwise_loss_backs_off(guard, monkeypatch, backend):
    if backend not in fastloss.available_backends():
        pytest.skip(f"{backend} backend not available")
    seen = _stalling(monkeypatch, "probs", -1)
    rng = np.random.default_rng(0)
    yt = rng.normal(size=(512, 128)).astype(np.float32)  # 65536 elements: parallel by size
    yp = rng.normal(size=(512, 128)).astype(np.float32)
    ref = L.Huber().value_and_grad(yt, yp)  # reference result (whatever path)
    del seen[:]
    _parallel.reset()
    with fastloss.use_backend(backend):
        outs = [L.Huber().value_and_grad(yt, yp) for _ in range(7)]
    # calibration serial (two calls), then parallel (the first one is not
    # judged; the next two stall: 20 ms each), then serial again
    assert seen == [1, 1, 2, 2, 2, 1, 1]
    assert guard.stalls == 2
    for v, g in outs:  # the same numbers on every path
        np.testing.assert_allclose(v, ref[0], rtol=1e-6)
        np.testing.assert_array_equal(g, ref[1])


@pytest.mark.parametrize("backend", ["numba", "c"])
def test_triplet_loss_backs_off(guard, monkeypatch, backend):
    if backend not in fastloss.available_backends():
        pytest.skip(f"{backend} backend not available")
    seen = _stalling(monkeypatch, "mine", -1)
    rng = np.random.default_rng(1)
    lab = rng.integers(0, 16, 256)
    x = rng.normal(size=(256, 16)).astype(np.float32)  # 256^2 entries: parallel by size
    with fastloss.use_backend(backend):
        outs = [L.TripletHardLoss().value_and_grad(lab, x) for _ in range(7)]
    assert seen == [1, 1, 2, 2, 2, 1, 1]
    assert guard.stalls == 2
    for v, g in outs[1:]:  # serial and parallel mining give identical results
        assert v == outs[0][0]
        np.testing.assert_array_equal(g, outs[0][1])


def test_kernel_keys_separate_backends_and_parameters():
    """Each backend and each set of loss parameters keeps its own serial rate
    (gamma 1.5 costs 2.7x gamma 2 in categorical focal; C and Numba differ);
    an unhashable parameter falls back to the kernel alone."""
    from fastloss import _registry

    spec = _registry.get("categorical_focal_crossentropy")
    key = lambda params: _core._guard_key(spec, "probs", np.dtype(np.float32), True, params, 1 << 20)
    assert key({"gamma": 2.0, "alpha": 0.25}) == key({"alpha": 0.25, "gamma": 2.0})
    assert key({"gamma": 2.0}) != key({"gamma": 1.5})
    assert key({"alpha": (0.1, 0.2)}) != key({"alpha": 0.25})
    assert key({"fn": [1, 2]}) == key(None)  # unhashable: the kernel's key alone
    if "c" in fastloss.available_backends() and "numba" in fastloss.available_backends():
        with fastloss.use_backend("c"):
            kc = key({"gamma": 2.0})
        with fastloss.use_backend("numba"):
            kn = key({"gamma": 2.0})
        assert kc != kn
