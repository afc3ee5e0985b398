"""Developer tool: kernel-only time of fastloss' CUDA cross-entropy kernels
(CUDA events around back-to-back launches) vs the end-to-end call."""
import time

import numpy as np
import torch
from numba import cuda

from fastloss import losses as L
from fastloss.backends.numba_cuda import crossentropy as G

dev = torch.device("cuda")
scce = L.SparseCategoricalCrossentropy(from_logits=True)
big = torch.empty(1 << 28, device=dev)
dst = torch.empty_like(big)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(10):
    dst.copy_(big)
e.record(); e.synchronize()
bw = 2 * big.numel() * 4 / (s.elapsed_time(e) / 10 / 1e3)
del big, dst
print(f"copy {bw / 1e12:.2f} TB/s")
for R, C in ((256, 10), (1048576, 10), (65536, 1000), (8192, 32000)):
    x = torch.randn(R, C, device=dev)
    y = torch.randint(0, C, (R,), device=dev)
    g = torch.empty_like(x)
    xd, yd, gd = cuda.as_cuda_array(x), cuda.as_cuda_array(y), cuda.as_cuda_array(g)
    w = cuda.to_device(np.ones(1, np.float32))
    loss = cuda.device_array(R, np.float32)
    info = cuda.to_device(np.array([0, 2**62], np.int64))
    prm = np.array([1.0 / R, 1e-7, 1 - 1e-7, 1, 0, 0, 0, 0, 0, 0])
    if SMALL := (C < G.SMALL_C):
        k = lambda: G.scce_logits_thread_per_row[max(1, (R + 127) // 128), 128](xd, yd, cuda.to_device(prm), w, 0, loss, gd, True, info)
        dprm = cuda.to_device(prm)
        k = lambda: G.scce_logits_thread_per_row[max(1, (R + 127) // 128), 128](xd, yd, dprm, w, 0, loss, gd, True, info)
    elif C <= G.WARP_ROW_MAX:
        k = lambda: G.scce_logits_warp[max(1, (R * 32 + 255) // 256), 256](xd, yd, 1.0 / R, 0.0, False, w, 0, loss, gd, True, info)
    else:
        dprm = cuda.to_device(prm)
        sm, l2 = G._device_limits()
        blocks = min(R, sm * max(1, min(4, (l2 // 2) // (sm * C * 4))))
        k = lambda: G._block_rows(np.float32)[0][blocks, 512](xd, yd, dprm, w, 0, loss, gd, True, info)
    for _ in range(3):
        k()
    cuda.synchronize()
    ev0, ev1 = cuda.event(), cuda.event()
    ev0.record()
    for _ in range(20):
        k()
    ev1.record(); ev1.synchronize()
    kt = cuda.event_elapsed_time(ev0, ev1) / 20
    t = time.perf_counter()
    for _ in range(20):
        k()
    cuda.synchronize()
    lt = (time.perf_counter() - t) / 20 * 1e3
    for _ in range(3):
        scce.value_and_grad(y, x, grad_out=g)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(20):
        scce.value_and_grad(y, x, grad_out=g)
    torch.cuda.synchronize()
    et = (time.perf_counter() - t) / 20 * 1e3
    floor = 2 * R * C * 4 / bw * 1e3
    print(f"{R}x{C}: kernel {kt:.3f} ms (floor {floor:.3f} ms, fraction {floor / kt:.2f}); launch loop {lt:.3f} ms; end-to-end {et:.3f} ms")
