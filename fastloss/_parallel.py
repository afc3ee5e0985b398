"""Serial or parallel for one kernel call, and stepping back to serial while
parallel calls stall.

A parallel call returns when every one of its threads has had a core for its
chunk. When another thread pool keeps the cores busy, that wait is a scheduler
time slice: OpenBLAS' threads keep spinning for a while after each NumPy matrix
product (TensorFlow's and PyTorch's pools do the same), and on the 2-core EPYC
``emb = x @ w`` followed by a parallel 256 x 128 triplet loss took 8 ms per
step instead of 0.27 ms serially (README, "Threads"). So, per kernel (``key``):

* the first two calls whose size asks for threads run serially, timed: the
  kernel's serial rate (seconds per unit of work, the faster of the two: the
  first call of a kernel also compiles it or loads it from Numba's cache);
* the first parallel call is not judged (it may start the thread pool, and
  compile the parallel kernel or load it from the cache);
* a later parallel call that took at least ``STALL_MIN_S`` and more than
  ``STALL_RATIO`` times the serial rate's time for its size has stalled (two
  threads take ~0.55 of the serial time when they run). One stall is
  tolerated: the first parallel call after another pool's burst of work often
  waits once, and the next ones run at full speed (a benchmark alternating
  with TensorFlow). ``STALLS_IN_A_ROW`` of them make every kernel run serially
  for a while, after which threads are tried again. The while starts
  at ``BACKOFF_MIN_S`` (another pool's spinning usually ends within
  milliseconds: a benchmark that alternates with TensorFlow sees one stall
  per switch) and doubles with each stall in a row up to ``BACKOFF_MAX_S`` (a
  loop that calls a NumPy product before every loss stalls every time); a
  parallel call that did not stall resets it;
* a serial call made instead of a parallel one (in such a while) measures
  the rate anew and replaces it: a kernel can have become dearer since its
  first calls (categorical focal with one-hot labels, then soft ones: 3.7x at
  gamma 1.5), and judged against the old rate every parallel call would look
  stalled and the kernel would stay serial, 2x slower, for good. (Kernels are
  keyed by their loss parameters and backend too, ``_core._guard_key``.)

In a loop that keeps stalling this costs one stalled call per ``BACKOFF_MAX_S``;
where nothing competes for the cores, only the first two calls of each kernel.
``ENABLED = False`` (or ``FASTLOSS_PARALLEL_GUARD=0`` in the environment at
import) turns the guard off: the size alone decides.

Results do not depend on the choice, but for one thing: per-element losses,
gradients and the triplet losses are the same serial or parallel; a reduced
total (summed in float64 per chunk) can differ in its last bits, as it already
did between machines with different thread counts.
"""

import os
import time

BACKOFF_MIN_S = 0.01
BACKOFF_MAX_S = 1.0
STALL_MIN_S = 1e-3
STALL_RATIO = 1.5
STALLS_IN_A_ROW = 2

ENABLED = os.environ.get("FASTLOSS_PARALLEL_GUARD", "1").strip() not in ("0", "false", "no", "off")

CALIBRATION_CALLS = 2
_serial_rate = {}  # key -> fastest seconds per unit of work of a would-be-parallel call run serially
_serial_calls = {}  # key -> how many such calls were timed
_parallel_calls = {}  # key -> how many parallel calls were made
_serial_until = 0.0  # perf_counter() time until which every kernel runs serially
_backoff = BACKOFF_MIN_S  # the next serial stretch after a stall
_in_a_row = 0  # stalled parallel calls since the last one that ran at full speed
stalls = 0  # parallel calls found stalled in this process (for tests and curious users)


def chunks(key, nch):
    """The chunk count to run with, ``nch`` being what the size asks for."""
    if nch <= 1 or not ENABLED:
        return nch
    if _serial_calls.get(key, 0) < CALIBRATION_CALLS or time.perf_counter() < _serial_until:
        return 1
    return nch


def record(key, wanted, used, work, seconds):
    """After a call: ``wanted`` chunks asked for by the size, ``used`` run,
    ``work`` its size (any unit proportional to the time), ``seconds`` taken."""
    global _serial_until, _backoff, _in_a_row, stalls
    if wanted <= 1 or work <= 0 or not ENABLED:
        return
    rate = seconds / work
    if used <= 1:
        n = _serial_calls.get(key, 0)
        _serial_calls[key] = n + 1
        best = _serial_rate.get(key)
        if best is None or rate < best or n >= CALIBRATION_CALLS:
            _serial_rate[key] = rate  # calibration: the faster call; later, the latest one
    else:
        n = _parallel_calls.get(key, 0) + 1
        _parallel_calls[key] = n
        if n == 1:
            return
        best = _serial_rate.get(key)
        if seconds >= STALL_MIN_S and best is not None and rate > STALL_RATIO * best:
            stalls += 1
            _in_a_row += 1
            if _in_a_row >= STALLS_IN_A_ROW:
                _serial_until = time.perf_counter() + _backoff
                _backoff = min(2.0 * _backoff, BACKOFF_MAX_S)
        else:
            _in_a_row = 0
            _backoff = BACKOFF_MIN_S


def reset():
    """Forget every timing (tests)."""
    global _serial_until, _backoff, _in_a_row, stalls
    _serial_rate.clear()
    _serial_calls.clear()
    _parallel_calls.clear()
    _serial_until = 0.0
    _backoff = BACKOFF_MIN_S
    _in_a_row = 0
    stalls = 0
