"""The PyTorch peers of ``benchmarks/gpu_check.py`` (run there on a GPU) are
checked here on the CPU against fastloss' CPU backend, so that the GPU table
compares like with like. Skipped where PyTorch is not installed (CI)."""

import numpy as np
import pytest

from fastloss import losses as L

try:
    import torch
except ImportError:  # CI
    torch = None
gpu_check = pytest.importorskip("benchmarks.gpu_check")
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def test_kernel_names_demangled():
    """Names as Numba mangles them (its own mangler, not a copied string) come
    out as ``module.function``; runtime names (copies) pass as they are."""
    from numba.core import itanium_mangler, types

    regs = itanium_mangler.mangle("fastloss.backends.numba_cuda.crossentropy._make_regs.<locals>.kern$241",
                                  [types.float32[:, ::1], types.int64])
    wsum = itanium_mangler.mangle("fastloss.backends.numba_cuda.device._wsum", [types.float32[::1]],
                                  abi_tags=("v1",))
    assert gpu_check._short_kernel_name(regs) == "_make_regs.kern"
    assert gpu_check._short_kernel_name(wsum) == "device._wsum"
    assert gpu_check._short_kernel_name("Memcpy DtoH (Device -> Pageable)") == "Memcpy DtoH (Device -> Pageable)"


def test_kernel_table_per_call():
    """Totals over ``calls`` calls become per-call figures, slowest first;
    host-only entries (no device time) are left out of the table and the sum."""
    lines, total = gpu_check.kernel_table(
        [("Memcpy DtoH (Device -> Pageable)", 10, 20.0), ("cudaLaunchKernel", 20, 0.0), ("big", 20, 300.0)], 10)
    assert lines == ["| big | 2 | 30.0 |", "| Memcpy DtoH (Device -> Pageable) | 1 | 2.0 |"]
    assert total == 32.0


@needs_torch
def test_torch_batch_hard_matches_fastloss():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8))
    lab = np.repeat(np.arange(8), 8)  # every row has positives and negatives
    rng.shuffle(lab)
    ref_l, ref_g = L.TripletHardLoss(margin=1.0).value_and_grad(lab, x)
    xt = torch.tensor(x, requires_grad=True)
    lo = gpu_check.torch_batch_hard(xt, torch.tensor(lab), margin=1.0)
    (g,) = torch.autograd.grad(lo, xt)
    np.testing.assert_allclose(float(lo.detach()), ref_l, rtol=1e-10)
    np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-8, atol=1e-12)


@needs_torch
def test_torch_giou_matches_fastloss():
    t, p = gpu_check._boxes(257, torch.device("cpu"), seed=3)
    t, p = t.double(), p.double()
    ref_l, ref_g = L.GIoULoss(box_format="xyxy").value_and_grad(t.numpy(), p.numpy())
    pp = p.clone().requires_grad_(True)
    lo = gpu_check.torch_giou_loss(pp, t)
    (g,) = torch.autograd.grad(lo, pp)
    np.testing.assert_allclose(float(lo.detach()), ref_l, rtol=1e-10)
    np.testing.assert_allclose(g.numpy(), ref_g, rtol=1e-7, atol=1e-12)


@needs_torch
def test_giou_boxes_have_no_coordinate_tied_with_the_target():
    """At a tie of a predicted and a target coordinate the gradient of max / min
    is a convention (PyTorch splits it, TF gives it to one argument): the
    parity boxes have none, their corners ordered, and fastloss' float32
    gradient on them is within float32 rounding of the float64 reference."""
    t, p = gpu_check._boxes(4194304, torch.device("cpu"))  # the size gpu_check times
    assert not (p == t).any()
    assert (p[:, 2:] > p[:, :2]).all() and (t[:, 2:] > t[:, :2]).all()
    _, g = L.GIoULoss(box_format="xyxy").value_and_grad(t.numpy(), p.numpy())
    pp = p.double().requires_grad_(True)
    (rg,) = torch.autograd.grad(gpu_check.torch_giou_loss(pp, t.double()), pp)
    assert np.abs(g - rg.numpy()).max() / np.abs(rg.numpy()).max() < 1e-5


@needs_torch
def test_vs_peer_on_the_cpu():
    """The timing/parity helper every gpu_check section uses, run with CPU
    tensors: both sides measured, both errors small against the float64
    autograd reference."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(4)
    t = torch.randn(64, 3, generator=g)
    x = torch.randn(64, 3, generator=g) * 2
    res, errs, (ref, rg) = gpu_check._vs_peer(
        L.Huber(), t, x, lambda xx: F.huber_loss(xx, t.double()), lambda xx: F.huber_loss(xx, t), lambda: None)
    assert set(res) == {"fastloss", "fastloss grad_out=", "PyTorch"}
    assert all(p50 > 0 for p50, _, _ in res.values())
    assert errs["fastloss"] < 1e-6 and errs["PyTorch"] < 1e-6
    assert rg.shape == x.shape and ref.dtype == torch.float64


def test_gpu_overhead_table():
    """benchmarks/gpu_overhead.py's table: the median over rounds per case, the
    rounds' range, now / before, and a dash where a configuration has no number
    (a child that failed or was cut by the time limit)."""
    go = pytest.importorskip("benchmarks.gpu_overhead")
    results = {"before": [{"SCCE 256x10": 600.0}, {"SCCE 256x10": 640.0}, {"SCCE 256x10": 620.0}],
               "now, numba-cuda launches": [],
               "now": [{"SCCE 256x10": 150.0, "Huber 256x1": 90.0}, {"SCCE 256x10": 160.0}]}
    text = go._table(results, {"now": {"fast": 10, "numba": 2, "bound": 2, "refused": 0}})
    row = next(line for line in text.splitlines() if line.startswith("| SCCE 256x10 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "620.0 [600.0-640.0]" and cells[2] == "-" and cells[3] == "155.0 [150.0-160.0]"
    assert cells[4] == f"{155.0 / 620.0:.2f}"
    huber = next(line for line in text.splitlines() if line.startswith("| Huber 256x1 |"))
    assert huber.rstrip().endswith("| - |")  # no "before" number: no ratio
    assert '"refused": 0' in text


def test_variants_switch_real_settings_where_their_kernel_runs():
    """Each timed variant names settings that exist in the CUDA cross-entropy
    module and differ from their defaults (a misspelt flag would time the
    default under another name), and is timed at the class counts its kernel
    serves: below 32 the staged kernel, 32-4096 the register kernels, beyond
    4096 the block-per-row kernel."""
    G = pytest.importorskip("fastloss.backends.numba_cuda.crossentropy")
    for kernel, (settings, applies, label) in {**gpu_check.VARIANTS, **gpu_check.DENSE_VARIANTS}.items():
        assert settings and all(hasattr(G, k) and getattr(G, k) != v for k, v in settings.items()), kernel
        sparse = kernel.startswith("scce_logits_")
        assert (sparse or kernel.startswith("cce_logits_")) and label.startswith("SCCE logits (" if sparse else "CCE")
    dense = {C: {k for k, v in gpu_check.DENSE_VARIANTS.items() if v[1](C)} for C in (10, 1000, 32000)}
    assert dense == {10: {"cce_logits_block_rows"}, 1000: set(), 32000: {"cce_logits_threepass"}}
    runs = {C: {k for k, v in gpu_check.VARIANTS.items() if v[1](C)} for C in (10, 31, 32, 1000, 4096, 4097, 32000)}
    short, regs = {"scce_logits_thread_rows"}, {"scce_logits_guarded_loads"}
    long_ = {"scce_logits_unroll1", "scce_logits_unroll8", "scce_logits_rows1024", "scce_logits_unroll8_rows1024",
             "scce_logits_l2_full", "scce_logits_smem_rows", "scce_logits_smem_rows_unroll8"}
    assert runs == {10: short, 31: short, 32: regs, 1000: regs, 4096: regs, 4097: long_, 32000: long_}


@needs_torch
def test_dense_cce_section_on_the_cpu():
    """The one-hot CCE section, run with CPU tensors (the CPU backend): fastloss
    and PyTorch's probability-target cross entropy against the float64
    reference, rows named and sized for the report (floor: logits and targets
    read, gradient written)."""
    meta = dict(machine="cpu", cores=1, python="", numpy="", numba="", numba_cuda="", fastloss="", torch="")
    rows = gpu_check._cce_rows("50x10,20x40", torch.device("cpu"), lambda: None, 1e9, meta)
    assert [(r["kernel"], r["size"]) for r in rows] == [("cce_logits", s) for s in ["50x10"] * 3 + ["20x40"] * 3]
    assert {r["provider"] for r in rows} == {"fastloss", "fastloss_grad_out", "torch_eager"}
    assert all(r["max_rel_err"] < 1e-5 for r in rows)
    assert rows[0]["floor_bytes"] == 3 * 50 * 10 * 4 and rows[3]["n_elements"] == 800


@needs_torch
def test_grad_hess_section_on_the_cpu():
    """The SCCE grad_hess section with CPU tensors: fastloss' and the PyTorch
    peer's gradient and Hessian against the float64 softmax formulas."""
    meta = dict(machine="cpu", cores=1, python="", numpy="", numba="", numba_cuda="", fastloss="", torch="")
    rows = gpu_check._grad_hess_rows("64x10", torch.device("cpu"), lambda: None, 1e9, meta)
    assert [(r["kernel"], r["provider"]) for r in rows] == [("scce_gh", "fastloss"), ("scce_gh", "torch_eager")]
    assert all(r["max_rel_err"] < 1e-6 for r in rows)
    assert rows[0]["floor_bytes"] == 8 * 64 + 3 * 64 * 10 * 4


def test_a_failing_variant_is_reported_and_its_settings_restored(capsys):
    """gpu_check times kernel variants by switching module settings; one that
    raises (a launch refused, say) gives None and a printed line, and the
    settings are back to what they were either way."""
    import types

    mod = types.ModuleType("fake_settings")
    mod.UNROLL, mod.ROWS_TPB = 4, 512

    def boom():
        assert (mod.UNROLL, mod.ROWS_TPB) == (8, 1024)
        raise RuntimeError("too many resources requested for launch")

    assert gpu_check._with_settings(mod, {"UNROLL": 8, "ROWS_TPB": 1024}, boom) is None
    assert (mod.UNROLL, mod.ROWS_TPB) == (4, 512)
    assert "too many resources" in capsys.readouterr().out
    assert gpu_check._with_settings(mod, {"UNROLL": 1}, lambda: mod.UNROLL) == 1 and mod.UNROLL == 4
