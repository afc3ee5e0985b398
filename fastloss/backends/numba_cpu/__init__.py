"""Numba CPU kernels (``@njit(parallel=True)``), one module per loss family."""

import warnings

from numba.core.errors import NumbaIRAssumptionWarning

# The small math helpers are inlined at Numba-IR level (``inline="always"``):
# LLVM declines to inline them after a few levels, and a loop with a call in
# it does not vectorize. That inlining trips a pedantic internal SSA check in
# Numba which warns (once per compilation) although the code is correct; keep
# it out of users' logs.
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)


def _drop_stale_kernel_cache():
    """Numba checks a cached kernel only against the file that defines it, so a
    change in a shared helper (_math.py, _common.py, ...) would leave kernels
    in the other modules running the old code. Keep a hash of every source of
    this package beside the cache and drop the package's cached kernels when
    it changes (an upgrade, or a developer's edit)."""
    import glob
    import hashlib
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(here, "*.py"))) + [os.path.join(here, "..", "..", "_config.py")]:
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:
            return
    digest = h.hexdigest()
    dirs = [os.path.join(here, "__pycache__")]
    if os.environ.get("NUMBA_CACHE_DIR"):
        dirs.append(os.environ["NUMBA_CACHE_DIR"])
    for d in dirs:
        stamp = os.path.join(d, "fastloss_numba_cpu.stamp")
        try:
            with open(stamp) as f:
                if f.read().strip() == digest:
                    continue
        except OSError:
            pass
        try:
            os.makedirs(d, exist_ok=True)
            for p in glob.glob(os.path.join(d, "**", "*.nb[ic]"), recursive=True):
                in_package_dir = d == dirs[0] or "fastloss" in os.path.relpath(p, d)
                if in_package_dir and os.path.basename(p).split(".")[0] in _MODULES:
                    os.remove(p)
            with open(stamp, "w") as f:
                f.write(digest)
        except OSError:  # read-only install: Numba then caches elsewhere or not at all
            pass


_MODULES = ("crossentropy", "regression", "custom", "_common", "_math", "_dual")
_drop_stale_kernel_cache()
