"""Timing, peak-memory and machine helpers shared by the report and the TFA runner.

Only the standard library and NumPy are used here: ``tfa_runner.py`` imports
this file under a different interpreter (TF 2.15 + TF Addons, NumPy 1.26).

Timing
    ``time_interleaved`` takes the first call of each provider alone (its wall
    time is the *warm-up* figure: Numba JIT compile or on-disk cache load, TF
    tracing), runs ``warmups`` more untimed calls, picks a per-provider
    ``number`` of calls so one repeat lasts at least ``min_time`` seconds (from
    the fastest of three single calls: timed alone, the call could be the
    provider's first parallel one, which starts a thread pool; its ``number``
    came out small and one stall per repeat then weighed far more: fastloss'
    TripletHard 256x128, first provider of the case, 121 us p50 that way, 72 us
    now, the same call as the next provider 74-77 us either way), then
    runs ``repeats`` rounds in which every provider is timed once, round-robin
    (so slow drift of a noisy machine hits all providers alike), in a new
    order each round (a fixed-seed shuffle; the first round in the given
    order): a provider timed right after another one competes with that one's
    thread pool, which keeps spinning for a while, and a fixed (or rotated)
    order gives every provider the same neighbour in every round. Per-call
    seconds are ``repeat time / number``; p20/p50/p80 are over the repeats.

Peak memory (``peak_memory``)
    Linux: after ``gc.collect()`` and glibc ``malloc_trim(0)`` the current RSS
    is read (``VmRSS``), the kernel's RSS high-water mark is reset by writing
    ``5`` to ``/proc/self/clear_refs``, ONE call is made (its results kept
    alive), and ``VmHWM - VmRSS`` is the peak. It is process-wide, so it sees
    TensorFlow's C++ allocations and the returned arrays (gradient included);
    it does not count the inputs, which exist before the call. Granularity is
    one page; memory an allocator kept from earlier calls and reuses is not
    counted (``malloc_trim`` returns glibc's free memory first). Elsewhere it
    falls back to ``tracemalloc`` (NumPy/Python allocations only; TF's are
    invisible) and says so in the ``mem_method`` column.
"""

import ctypes
import gc
import os
import platform
import random
import time

import numpy as np

_CLEAR_REFS = "/proc/self/clear_refs"


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _rss_hwm_supported():
    try:
        _status_kb("VmHWM")
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        return True
    except (OSError, KeyError):
        return False


_HWM_OK = None


def trim():
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:
            pass


def peak_memory(fn):
    """``(peak extra bytes of one call, method)``; see the module docstring."""
    global _HWM_OK
    if _HWM_OK is None:
        _HWM_OK = _rss_hwm_supported()
    trim()
    if _HWM_OK:
        base = _status_kb("VmRSS")
        with open(_CLEAR_REFS, "w") as fh:
            fh.write("5")
        out = fn()
        peak = _status_kb("VmHWM")
        del out
        return max(0, peak - base) * 1024, "rss_hwm"
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
        del out
    finally:
        tracemalloc.stop()
    return int(peak), "tracemalloc"


def _quantiles(per_call):
    a = np.asarray(per_call, dtype=np.float64)
    p20, p50, p80 = np.percentile(a, [20, 50, 80])
    return float(p20), float(p50), float(p80)


def time_interleaved(fns, repeats=7, min_time=0.05, warmups=1, max_number=100000):
    """Time zero-argument callables ``fns`` (dict name -> fn) round-robin.

    Returns ``{name: {"warmup_s", "p20_s", "p50_s", "p80_s", "repeats", "number"}}``.
    """
    first = {}
    number = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - t0
        for _ in range(warmups):
            fn()
        one = float("inf")
        for _ in range(3):  # the fastest of three: one slow call (a thread pool starting) would shrink `number`
            t0 = time.perf_counter()
            fn()
            one = min(one, time.perf_counter() - t0)
        one = max(one, 1e-7)
        number[name] = int(min(max_number, max(1, np.ceil(min_time / one))))
    samples = {name: [] for name in fns}
    names = list(fns)
    shuffle = random.Random(20261125).shuffle
    for r in range(repeats):
        order = list(names)
        if r:
            shuffle(order)
        for name in order:
            fn = fns[name]
            n = number[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[name].append((time.perf_counter() - t0) / n)
    out = {}
    for name in fns:
        p20, p50, p80 = _quantiles(samples[name])
        out[name] = {
            "warmup_s": first[name],
            "p20_s": p20,
            "p50_s": p50,
            "p80_s": p80,
            "repeats": repeats,
            "number": number[name],
        }
    return out


def copy_bandwidth(nbytes=256 * 2**20, repeats=7):
    """NumPy copy bandwidth in bytes/s: ``(bytes read + bytes written) / time``.

    ``np.copyto(dst, src)`` of a float32 array of ``nbytes`` (both arrays
    allocated and touched first), median of ``repeats``; one copy reads
    ``nbytes`` and writes ``nbytes``, so bandwidth = ``2 * nbytes / t``.
    (The hardware also reads the destination lines before writing them --
    write-allocate -- which this definition does not count, as is usual.)
    """
    n = nbytes // 4
    src = np.ones(n, dtype=np.float32)
    dst = np.zeros(n, dtype=np.float32)
    np.copyto(dst, src)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        ts.append(time.perf_counter() - t0)
    t = float(np.median(ts))
    del src, dst
    trim()
    return 2.0 * n * 4 / t


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
    except OSError:
        pass
    return []


def machine_string():
    flags = cpu_flags()
    simd = ("/".join(flags)) if flags else "?"
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        mem_s = f", {mem:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        mem_s = ""
    return f"{cpu_model()} ({os.cpu_count()} cores{mem_s}; {simd}; {platform.system()} {platform.machine()})"
