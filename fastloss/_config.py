"""Settings every backend shares: fastmath flags and the serial/parallel cut-over.

Kept in one place so that no kernel drifts from them.
"""

# LLVM fast-math flags for the Numba kernels. Deliberately WITHOUT ``nnan`` and
# ``ninf``: those would let LLVM assume no NaN/inf exists and drop the checks
# that keep a NaN visible in its row. ``reassoc`` lets reductions vectorize,
# ``contract`` allows FMA, ``afn``/``arcp`` allow cheaper (still accurate to
# rounding) libm calls and reciprocals, ``nsz`` ignores the sign of zero.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Below this many elements a kernel runs serially in the calling thread (no
# thread-pool wake-up); above it, rows are split into one chunk per thread,
# unless the parallel guard (fastloss/_parallel.py) holds threads back.
PARALLEL_MIN_ELEMENTS = 1 << 15

# Keras' backend.epsilon().
EPSILON = 1e-7
