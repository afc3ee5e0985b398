"""Build entry point: the C backend.

``cffi_modules`` compiles ``csrc/*.c`` into ``fastloss.backends.cffi_c._fastloss_c``
(CFFI API mode; the builder is ``fastloss/backends/cffi_c/_build.py``). The C
backend is optional: where no working C compiler (or no OpenMP) is found the
build of the extension fails, ``OptionalBuildExt`` reports it and the install
goes on with the Numba backend alone (``fastloss.available_backends()`` then
lists no ``"c"``). ``FASTLOSS_C_REQUIRED=1`` turns that failure into an error.

In a checkout: ``python3 setup.py build_ext --inplace`` builds the extension
next to its package.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

_MSG = """
************************************************************************
fastloss: the C backend was NOT built ({why}).
fastloss is installed with its Numba backend only;
fastloss.available_backends() will not list "c".
To get the C backend: install a C compiler with OpenMP (gcc), then reinstall.
************************************************************************
"""


class OptionalBuildExt(build_ext):
    """build_ext that turns a failed C build into a message, not a failed install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # no compiler at all: distutils raises before any extension
            self._report(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._report(exc)

    def _report(self, exc):
        if os.environ.get("FASTLOSS_C_REQUIRED") == "1":
            raise exc
        why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
        sys.stderr.write(_MSG.format(why=why))
        sys.stderr.flush()


setup(
    cffi_modules=["fastloss/backends/cffi_c/_build.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
