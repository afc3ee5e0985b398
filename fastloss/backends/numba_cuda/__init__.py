"""Numba CUDA kernels (``numba-cuda``): the same kernel contract as the CPU
backends, for inputs that live on a GPU (``__cuda_array_interface__``) and for
NumPy inputs under ``use_backend("cuda")`` (copied in and out)."""
