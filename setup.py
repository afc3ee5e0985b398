"""Build entry point. The C backend (CFFI, csrc/) hooks in here through
``cffi_modules`` once it lands; for now the package is pure Python + Numba."""

from setuptools import setup

setup()
