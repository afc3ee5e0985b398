"""Developer tool, no GPU needed: the host-side cost of fastloss' CUDA device
path (validation, views, scratch buffers, parameter vectors, the read-back),
per call, with every kernel launch replaced by a no-op.

Runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` is set here, before
numba is imported). The reset kernels still run, as plain Python, because the
path reads their output back. What it measures is fastloss' own Python plus
the simulator's array objects; on a GPU numba-cuda's views, launches and
copies cost more (see ``benchmarks.gpu_check --profile`` there). Use it to see
whether a change to the host path adds or removes work, not as a GPU figure.

    python -m benchmarks.cuda_host_overhead [--calls 2000]
"""

import argparse
import os
import time

os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402


def _stub_launches():
    """Kernel launches become no-ops, except the reset kernels (run directly)."""
    from numba.cuda.simulator import kernel as SK

    def getitem(self, cfg):
        if self.fn.__name__.startswith("_reset"):
            return lambda *a: self.fn(*a)
        return lambda *a: None

    SK.FakeCUDAKernel.__getitem__ = getitem


def cases(rng):
    from fastloss import losses as L

    f32 = np.float32
    boxes_t = np.tile([0.0, 0.0, 1.0, 1.0], (256, 1)).astype(f32)
    return [
        ("SCCE logits 256x10 (thread per row)", L.SparseCategoricalCrossentropy(from_logits=True),
         rng.integers(0, 10, 256), rng.standard_normal((256, 10)).astype(f32)),
        ("SCCE logits 256x40 (register kernel)", L.SparseCategoricalCrossentropy(from_logits=True),
         rng.integers(0, 40, 256), rng.standard_normal((256, 40)).astype(f32)),
        ("Huber 256x1", L.Huber(), rng.standard_normal((256, 1)).astype(f32), rng.standard_normal((256, 1)).astype(f32)),
        ("CosineSimilarity 256x40", L.CosineSimilarity(), rng.standard_normal((256, 40)).astype(f32),
         rng.standard_normal((256, 40)).astype(f32)),
        ("GIoU 256", L.GIoULoss(), boxes_t, boxes_t * 2),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=2000)
    args = ap.parse_args(argv)
    _stub_launches()
    from numba import cuda

    rng = np.random.default_rng(0)
    print(f"host path per call, kernels stubbed (simulator), {args.calls} calls each, grad_out given")
    for name, obj, y, x in cases(rng):
        dy, dx = cuda.to_device(y), cuda.to_device(x)
        dg = cuda.device_array_like(x)
        for _ in range(50):
            obj.value_and_grad(dy, dx, grad_out=dg)
        t = time.perf_counter()
        for _ in range(args.calls):
            obj.value_and_grad(dy, dx, grad_out=dg)
        print(f"  {name}: {(time.perf_counter() - t) / args.calls * 1e6:.1f} us")


if __name__ == "__main__":
    main()
