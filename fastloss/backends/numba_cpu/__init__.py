"""Numba CPU kernels (``@njit(parallel=True)``), one module per loss family."""

import warnings

from numba.core.errors import NumbaIRAssumptionWarning

# The small math helpers are inlined at Numba-IR level (``inline="always"``):
# LLVM declines to inline them after a few levels, and a loop with a call in
# it does not vectorize. That inlining trips a pedantic internal SSA check in
# Numba which warns (once per compilation) although the code is correct; keep
# it out of users' logs.
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)
