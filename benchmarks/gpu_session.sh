#!/usr/bin/env bash
# The one device call a session lent a GPU makes for the CUDA backend (issue #7), prepared
# so that it fits the lease: 15 minutes of device time per session, the machine's start
# (a minute or more) included, at most 10 minutes a command.
#
#   here, once (no GPU needed):  bash benchmarks/gpu_session.sh --fetch [COMMIT]
#       puts a NumPy 2.4 wheel for Python 3.12 into .whl/ (git-ignored): the GPU image's
#       NumPy 2.5 breaks numba-cuda 0.30.4 (np.row_stack is gone); and the fastloss
#       package of COMMIT (default: the last GPU-measured one, below) into .before/
#       (git-ignored), the "before" of the host-time comparison
#   the device call:             run(command="bash benchmarks/gpu_session.sh",
#                                    carry=[".whl", ".before"], timeout_s=600)
#       (expected ~560 s: environment 10, gpu_overhead up to 200, gpu_check ~120, tests ~230)
#
# Steps, each under its own time limit (seconds, FL_T_HOST / FL_T_CHECK / FL_T_TESTS), in
# the order that keeps the most valuable output if the time runs out:
#   1. versions and the GPU;
#   2. benchmarks.gpu_overhead: host time per call, .before/ against this tree with and
#      without its short kernel launches (child processes, in turn, twice; the table is
#      rewritten after each child, so a cut keeps the rounds done);
#   3. benchmarks.gpu_check --kernels --profile: parity on large inputs, speed vs PyTorch
#      (and JAX), the device time of each kernel and copy beside the wall time per call,
#      the host profile of small calls;
#   4. tests/test_cuda.py on the device ("small" and "default" launch configurations).
# Everything lands in $OUT (what the device tool brings back: at most 8 files):
# session.log, GPU_OVERHEAD.md, GPU_REPORT.md, gpu_results.csv, GPU_KERNELS.md,
# GPU_PROFILE.txt.
# Then, here: copy gpu_results.csv and GPU_REPORT.md into benchmarks/results/ and run
# `python -m benchmarks.report` to put the rows in the report.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--fetch" ]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "numpy==2.4.*" || exit 1
    # 14101c6: the tree whose host profile is benchmarks/results/h100-2026-12-05 (04023a2's code)
    rm -rf .before && mkdir -p .before && git archive "${2:-14101c6}" fastloss | tar -x -C .before || exit 1
    grep -qx "/.before/" .git/info/exclude 2>/dev/null || echo "/.before/" >> .git/info/exclude
    exit 0
fi

OUT="${OUT:-$PWD/gpu-session-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
T_HOST="${FL_T_HOST:-200}"  # 6 child processes, each compiling its kernels (numba-cuda has no disk cache here)
T_CHECK="${FL_T_CHECK:-300}"
T_TESTS="${FL_T_TESTS:-270}"  # tests/test_cuda.py took 188 s on an H100 (2026-12-05), with ~80 fewer tests
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

main() {
step "environment"
if ls .whl/numpy-*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "could not install the carried wheels"; return 1; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv || true
python3 - <<'EOF' || { echo "fastloss' CUDA backend does not load here: nothing more to run"; return 1; }
import importlib, platform
print("python", platform.python_version())
for m in ("numpy", "numba", "numba_cuda", "torch", "jax", "cupy"):
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as exc:  # noqa: BLE001
        print(m, "not importable:", type(exc).__name__, exc)
import fastloss
print("backends", fastloss.available_backends())
assert "cuda" in fastloss.available_backends(), "no cuda backend"
EOF

if [ -d .before/fastloss ]; then
    step "gpu_overhead: host time per call, .before/ vs now (limit ${T_HOST} s)"
    timeout "$T_HOST" python3 -m benchmarks.gpu_overhead --before .before --out "$OUT"
    echo "gpu_overhead exit $?"
fi

step "gpu_check (limit ${T_CHECK} s)"
timeout "$T_CHECK" python3 -m benchmarks.gpu_check --out "$OUT" --kernels --profile
echo "gpu_check exit $?"

step "tests/test_cuda.py on the device (limit ${T_TESTS} s)"
timeout "$T_TESTS" python3 -m pytest -q -x -p no:cacheprovider -p no:randomly tests/test_cuda.py
echo "tests exit $?"
step "done"
}

main 2>&1 | tee -a "$OUT/session.log"
