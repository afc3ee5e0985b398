"""The CFFI builder of the C backend (API / out-of-line mode).

``setup.py`` names it in ``cffi_modules`` (``"fastloss/backends/cffi_c/_build.py:ffibuilder"``),
so ``pip install .`` compiles ``csrc/*.c`` into the extension module
``fastloss.backends.cffi_c._fastloss_c``. For a build in place (a checkout)::

    python3 setup.py build_ext --inplace      # or: python3 fastloss/backends/cffi_c/_build.py

The ``cdef`` is read from ``csrc/fastloss.h``, between the
``FASTLOSS-CDEF-BEGIN``/``FASTLOSS-CDEF-END`` markers: the header the C code
includes is the one CFFI parses, so the two cannot drift apart.

Compiler flags: ``-O3 -fopenmp -fno-math-errno -fno-trapping-math``. No
``-ffast-math``: it implies ``-ffinite-math-only`` (NaN/inf checks folded
away) and links FTZ/DAZ start-up code; exp/log vectorize without it (the
float32 versions in ``csrc/fl_common.h`` are arithmetic + bit casts). No
``-march=native`` either: the row kernels carry
``target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")`` and pick their
AVX-512 / AVX2 / baseline body at load time. Environment switches, for local
builds: ``FASTLOSS_C_NATIVE=1`` (``-march=native``, no multiversioning),
``FASTLOSS_C_OPENMP=0`` (no OpenMP: every kernel runs serially),
``FASTLOSS_C_EXTRA_CFLAGS`` (appended, split on whitespace).
"""

import os
import re

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))
CSRC = os.path.join(ROOT, "csrc")
HEADER = "fastloss.h"
# One file per loss family (+ the library helpers). A new family: add its file
# here and its prototypes to csrc/fastloss.h.
SOURCES = ["crossentropy.c", "regression.c", "boxes.c", "triplet.c", "fl_info.c"]
MODULE = "fastloss.backends.cffi_c._fastloss_c"


def cdef_text(path=os.path.join(CSRC, HEADER)):
    """The declarations between the CDEF markers of ``csrc/fastloss.h``."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"FASTLOSS-CDEF-BEGIN \*/(.*?)/\* FASTLOSS-CDEF-END", text, re.S)
    if m is None:
        raise RuntimeError(f"{path}: no FASTLOSS-CDEF-BEGIN/END section")
    return m.group(1)


def compile_args():
    args = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11"]
    link = []
    if os.environ.get("FASTLOSS_C_OPENMP", "1") != "0":
        args.append("-fopenmp")
        link.append("-fopenmp")
    if os.environ.get("FASTLOSS_C_NATIVE", "0") == "1":
        args += ["-march=native", "-DFL_NATIVE"]
    args += os.environ.get("FASTLOSS_C_EXTRA_CFLAGS", "").split()
    return args, link


def _rel(path):
    # setuptools wants source paths relative to the project root (the cwd of a build)
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path


def make_builder():
    ffi = FFI()
    ffi.cdef(cdef_text())
    cflags, lflags = compile_args()
    ffi.set_source(
        MODULE,
        f'#include "{HEADER}"',
        sources=[_rel(os.path.join(CSRC, s)) for s in SOURCES],
        include_dirs=[_rel(CSRC)],
        depends=[_rel(os.path.join(CSRC, h)) for h in (HEADER, "fl_common.h", "fl_tmpl.h")],
        extra_compile_args=cflags,
        extra_link_args=lflags,
    )
    return ffi


ffibuilder = make_builder()

if __name__ == "__main__":  # build in place, into fastloss/backends/cffi_c/
    os.chdir(ROOT)
    ffibuilder.compile(verbose=True)
