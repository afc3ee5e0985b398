"""The second half of tests/test_cuda.py in the CUDA simulator.

A file of its own so that pytest-xdist (``--dist loadfile`` sends each file to
one worker) can run the two halves of the simulator run, the suite's longest
job, on different workers.
"""

import pytest

from test_cuda import ON_DEVICE, SIM_CHILD, SIM_SHARDS, run_in_simulator


@pytest.mark.skipif(ON_DEVICE or SIM_CHILD, reason="runs the CUDA tests in the simulator when there is no GPU")
def test_cuda_kernels_in_simulator_second_half():
    assert SIM_SHARDS == 2  # one file per shard: add a file if this grows
    run_in_simulator(1)
