"""Numba CPU kernels (``@njit(parallel=True)``), one module per loss family."""
