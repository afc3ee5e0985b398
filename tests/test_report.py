"""Tests of the benchmark report generator (benchmarks/report.py) on recorded sample rows.

No benchmark is run here: the rows below are written by hand, so every ratio in
the report can be checked against arithmetic done by hand.
"""

import json
import sys
from pathlib import Path

import pytest

try:
    from benchmarks import report
except ImportError:  # plain `pytest` does not put the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import report

COPY_BW = 2.0e10  # bytes/s, "measured" in the sample run
# SCCE logits 4096x1000: int64 labels + float32 logits + float32 gradient
SCCE_FLOOR_BYTES = 4096 * 8 + 2 * 4096 * 1000 * 4  # 32_800_768
# SigmoidFocal 1048576x1: float32 y_true + y_pred + gradient
FOCAL_FLOOR_BYTES = 3 * 1048576 * 4  # 12_582_912

META = {
    "device": "cpu",
    "dtype": "float32",
    "repeats": 7,
    "number": 1,
    "mem_method": "rss_hwm",
    "copy_bw_Bps": COPY_BW,
    "machine": "Test CPU (2 cores, 24 GiB; avx2/avx512f; Linux x86_64)",
    "cores": 2,
    "python": "3.11.7",
    "numpy": "2.4.0",
    "numba": "0.68.0",
    "numba_layer": "omp, 2 threads",
    "numba_cuda": "",
    "keras": "3.15.0",
    "fastloss": "0.1.0",
    "tfa": "",
    "torch": "",
    "jax": "",
    "date": "2026-11-25T10:00:00+00:00",
}


def _row(kernel, size, provider, p50, backend="", tensorflow="2.21.0", **kw):
    n, c = (int(v) for v in size.split("x"))
    r = dict(META)
    r.update(
        kernel=kernel,
        provider=provider,
        backend=backend,
        size=size,
        n_elements=n * c,
        p20_s=p50 * 0.9,
        p50_s=p50,
        p80_s=p50 * 1.1,
        warmup_s=0.5,
        peak_mem_bytes=16 * 2**20,
        floor_bytes=SCCE_FLOOR_BYTES if kernel == "scce_logits" else FOCAL_FLOOR_BYTES,
        max_rel_err=1e-7,
        tensorflow=tensorflow if provider.startswith("tf") else "",
    )
    r.update(kw)
    return r


def sample_rows(with_tf=True):
    rows = [
        _row("scce_logits", "4096x1000", "fastloss", 0.010, backend="numba"),
        _row("scce_logits", "4096x1000", "fastloss_grad_out", 0.005, backend="numba"),
        _row("scce_logits", "4096x1000", "numpy", 0.020),
        _row("sigmoid_focal", "1048576x1", "fastloss", 0.004, backend="numba"),
        _row("sigmoid_focal", "1048576x1", "fastloss_grad_out", 0.002, backend="numba"),
    ]
    if with_tf:
        rows += [
            _row("scce_logits", "4096x1000", "tf_function", 0.025),
            _row("scce_logits", "4096x1000", "tf_eager", 0.030),
            _row("sigmoid_focal", "1048576x1", "tf_function", 0.012),
            _row("sigmoid_focal", "1048576x1", "tf_eager", 0.050),
            _row("sigmoid_focal", "1048576x1", "tfa_function", 0.040, tensorflow="2.15.1", tfa="0.23.0",
                 python="3.11.7", numpy="1.26.4"),
            _row("sigmoid_focal", "1048576x1", "tfa_eager", 0.080, tensorflow="2.15.1", tfa="0.23.0",
                 python="3.11.7", numpy="1.26.4"),
        ]
    return rows


def _line(md, start):
    hits = [ln for ln in md.splitlines() if ln.startswith(start)]
    assert hits, f"no line starting with {start!r} in:\n{md}"
    return hits[0]


def test_ratios_by_hand():
    rows = sample_rows()
    key = ("scce_logits", "4096x1000")
    assert report.speedup(rows, key, "numba", "tf_function") == pytest.approx(2.5)  # 25 ms / 10 ms
    assert report.speedup(rows, key, "numba", "tf_eager") == pytest.approx(3.0)  # 30 ms / 10 ms
    fl = next(r for r in rows if r["provider"] == "fastloss" and r["kernel"] == "scce_logits")
    # 32_800_768 B / 2e10 B/s = 1.64003840 ms; / 10 ms = 0.164
    assert report.floor_time(fl) == pytest.approx(1.6400384e-3)
    assert report.floor_fraction(fl) == pytest.approx(0.16400384)


def test_markdown_has_expected_rows_and_ratios(tmp_path):
    md = report.render_markdown(sample_rows(), tmp_path, plots=False)
    assert (tmp_path / "REPORT.md").read_text() == md
    # header: machine, date, versions, copy bandwidth
    assert "Test CPU" in md and "2026-11-25T10:00:00+00:00" in md
    assert "TensorFlow 2.21.0 (Keras 3.15.0)" in md
    assert "Numba 0.68.0 (threading layer omp, 2 threads)" in md
    assert "TF Addons 0.23.0" in md and "TF 2.15.1" in md
    assert "NumPy copy bandwidth:** 20.0 GB/s" in md and "bytes copied per second it is 10.0 GB/s" in md
    assert "TensorFlow is absent" not in md
    # summary rows: time per provider, then floor, speed-ups, floor fractions
    scce = _line(md, "| SCCE logits 4096x1000 | numba |")
    cells = [c.strip() for c in scce.strip("|").split("|")]
    # case, backend, fastloss, grad_out, TF fn, TF eager, TFA fn, TFA eager, NumPy, floor,
    # x TF fn, x TF eager, x TFA fn, x TFA eager, floor fraction, floor fraction (grad_out)
    assert cells == [
        "SCCE logits 4096x1000", "numba", "10 ms", "5 ms", "25 ms", "30 ms", "", "", "20 ms", "1.64 ms",
        "2.5x", "3.0x", "", "", "0.16", "0.33",
    ]
    focal = _line(md, "| SigmoidFocal 1048576x1 | numba |")
    cells = [c.strip() for c in focal.strip("|").split("|")]
    # floor 12_582_912 / 2e10 = 0.629 ms; 0.629/4 = 0.157; 0.629/2 = 0.315
    assert cells == [
        "SigmoidFocal 1048576x1", "numba", "4 ms", "2 ms", "12 ms", "50 ms", "40 ms", "80 ms", "", "629 us",
        "3.0x", "12.5x", "10.0x", "20.0x", "0.16", "0.31",
    ]
    # per-case detail table: TF eager row with its speed-up and peak memory
    eager = _line(md, "| TF eager | - | 30 ms |")
    assert "| 3.0x |" in eager and "16.0 MiB" in eager and "27 ms - 33 ms" in eager
    assert _line(md, "| TFA eager (TF 2.15.1, TFA 0.23.0) | - | 80 ms |")
    assert "Plots not requested." in md


def test_summary_printed_by_from_csv(tmp_path, capsys):
    rows = sample_rows()
    csv_path = tmp_path / "rows.csv"
    report.write_csv(rows, csv_path)
    out = tmp_path / "out"
    assert report.main(["--from-csv", str(csv_path), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "| SCCE logits 4096x1000 | numba | 10 ms | 5 ms | 25 ms | 30 ms |" in printed
    assert (out / "REPORT.md").exists()
    assert not (out / "results.csv").exists()  # --from-csv only regenerates the report


def test_csv_and_json_round_trip(tmp_path):
    rows = sample_rows()
    report.write_csv(rows, tmp_path / "r.csv")
    back = report.read_csv(tmp_path / "r.csv")
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        for k in report.COLUMNS:
            if k in report.FLOAT_COLS:
                assert b[k] == pytest.approx(a[k], rel=1e-12), k
            else:
                assert b[k] == a[k], k
        assert isinstance(b["n_elements"], int) and isinstance(b["p50_s"], float)
    # a second pass is byte-identical
    report.write_csv(back, tmp_path / "r2.csv")
    assert (tmp_path / "r.csv").read_text() == (tmp_path / "r2.csv").read_text()
    report.write_json(rows, tmp_path / "r.json")
    loaded = json.loads((tmp_path / "r.json").read_text())
    assert [r["provider"] for r in loaded] == [r["provider"] for r in rows]
    assert loaded[0]["p50_s"] == rows[0]["p50_s"] and set(loaded[0]) == set(report.COLUMNS)


def test_plots_are_nonempty_png(tmp_path):
    pytest.importorskip("matplotlib")
    md = report.render_markdown(sample_rows(), tmp_path, plots=True)
    for name in ("time_vs_size.png", "speedup.png", "floor_fraction.png"):
        p = tmp_path / name
        assert p.exists(), name
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name
        assert f"![{name}]({name})" in md


def test_without_matplotlib_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    md = report.render_markdown(sample_rows(), tmp_path, plots=True)
    assert "matplotlib is not installed" in md
    assert not list(tmp_path.glob("*.png"))


def test_no_tensorflow_path(tmp_path, capsys):
    rows = sample_rows(with_tf=False)
    md = report.render_markdown(rows, tmp_path, plots=False)
    assert "TensorFlow is absent" in md
    assert "TensorFlow absent" in md  # in the versions line
    head = _line(md, "| case | backend |")
    assert "TF tf.function" not in head and "x TF" not in head
    assert "copy floor" in head and "floor fraction" in head
    # fastloss against the copy floor alone: 1.64 ms floor / 10 ms
    scce = _line(md, "| SCCE logits 4096x1000 | numba |")
    assert "| 1.64 ms |" in scce and "| 0.16 |" in scce
    csv_path = tmp_path / "rows.csv"
    report.write_csv(rows, csv_path)
    assert report.main(["--from-csv", str(csv_path), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "TensorFlow is absent" in capsys.readouterr().out


# ---------------------------------------------------------------- GPU rows

# Recorded on the lent H100 by `python -m benchmarks.gpu_check --out benchmarks/results` (2026-11-25);
# the p50s are those of benchmarks/results/gpu_results.csv, rounded.
GPU_BW = 2.963e12  # device copy, (bytes read + bytes written) / time
GPU_META = dict(
    META, device="cuda", machine="NVIDIA H100 80GB HBM3", cores=16, python="3.12.3", numpy="2.4.6",
    numba="0.68.0", numba_layer="", numba_cuda="0.30.4", keras="", torch="2.11.0+cu130", jax="0.11",
    copy_bw_Bps=GPU_BW, repeats=20, warmup_s=None, peak_mem_bytes=None, mem_method="",
    date="2026-11-25T10:59:44+00:00",
)
GPU_FLOOR_BYTES = 65536 * 8 + 2 * 65536 * 1000 * 4  # int64 labels + logits + gradient


def gpu_rows():
    def row(provider, p50, backend="", err=None):
        r = dict(GPU_META)
        r.update(kernel="scce_logits", provider=provider, backend=backend, size="65536x1000", n_elements=65536000,
                 p20_s=p50 * 0.9, p50_s=p50, p80_s=p50 * 1.1, floor_bytes=GPU_FLOOR_BYTES, max_rel_err=err,
                 tensorflow="")
        return r

    return [
        row("fastloss_grad_out", 1.587e-3, "cuda", 3.0e-8),
        row("fastloss", 1.926e-3, "cuda", 3.0e-8),
        row("torch_eager", 0.696e-3),
        row("jax_jit", 0.551e-3),
    ]


def _gpu_part(md):
    i = md.index("## GPU")
    return md[i:md.index("## Plots", i)]


def test_gpu_section_from_recorded_rows(tmp_path):
    md = report.render_markdown(sample_rows() + gpu_rows(), tmp_path, plots=False)
    assert "## GPU: NVIDIA H100 80GB HBM3" in md
    gpu = _gpu_part(md)
    cpu = md[:md.index("## GPU")]
    # the CPU part is unchanged by GPU rows: no cuda backend, no GPU peers
    assert "| cuda |" not in cpu and "H100" not in cpu
    assert _line(cpu, "| SCCE logits 4096x1000 | numba |").startswith("| SCCE logits 4096x1000 | numba | 10 ms |")
    assert "Device copy bandwidth:** 2.96 TB/s" in gpu
    assert "PyTorch 2.11.0+cu130" in gpu and "JAX 0.11" in gpu and "numba-cuda 0.30.4" in gpu
    head = _line(gpu, "| case | backend |")
    assert "PyTorch eager" in head and "JAX jit" in head and "TF" not in head
    cells = [c.strip() for c in _line(gpu, "| SCCE logits 65536x1000 | cuda |").strip("|").split("|")]
    # floor 524_812_288 B / 2.963e12 B/s = 177.1 us; x PyTorch = 0.696 / 1.926 = 0.36; 0.551 / 1.926 = 0.29
    # floor fractions 0.1771 / 1.926 = 0.09, 0.1771 / 1.587 = 0.11
    assert cells == [
        "SCCE logits 65536x1000", "cuda", "1.93 ms", "1.59 ms", "696 us", "551 us", "177 us",
        "0.36x", "0.29x", "0.09", "0.11",
    ]
    assert _line(gpu, "| JAX jit | - | 551 us |")
    assert "3.0e-08" in _line(gpu, "| fastloss | cuda | 1.93 ms |")


def test_gpu_csv_picked_up_in_from_csv_mode(tmp_path, capsys):
    cpu_csv, gpu_csv = tmp_path / "results.csv", tmp_path / "gpu_results.csv"
    report.write_csv(sample_rows(), cpu_csv)
    report.write_csv(gpu_rows(), gpu_csv)
    out = tmp_path / "out"
    assert report.main(["--from-csv", str(cpu_csv), "--gpu-csv", str(gpu_csv), "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "GPU (NVIDIA H100 80GB HBM3, recorded):" in printed
    assert "| SCCE logits 65536x1000 | cuda | 1.93 ms | 1.59 ms | 696 us | 551 us |" in printed
    md = (out / "REPORT.md").read_text()
    assert "## GPU: NVIDIA H100 80GB HBM3" in md and "### GPU: SCCE logits 65536x1000" in md
    # --no-gpu leaves them out
    assert report.main(["--from-csv", str(cpu_csv), "--gpu-csv", str(gpu_csv), "--out", str(out), "--no-plots",
                        "--no-gpu"]) == 0
    assert "## GPU" not in (out / "REPORT.md").read_text()


def test_default_gpu_csv_is_read(tmp_path, monkeypatch):
    gpu_csv = tmp_path / "gpu_results.csv"
    report.write_csv(gpu_rows(), gpu_csv)
    monkeypatch.setattr(report, "DEFAULT_GPU_CSV", gpu_csv)
    cpu_csv = tmp_path / "results.csv"
    report.write_csv(sample_rows(), cpu_csv)
    assert report.main(["--from-csv", str(cpu_csv), "--out", str(tmp_path / "o"), "--no-plots"]) == 0
    assert "## GPU: NVIDIA H100 80GB HBM3" in (tmp_path / "o" / "REPORT.md").read_text()


def test_committed_gpu_csv_has_report_columns():
    path = Path(report.__file__).resolve().parent / "results" / "gpu_results.csv"
    if not path.exists():
        pytest.skip("no recorded GPU results")
    header = path.read_text().splitlines()[0].split(",")
    assert header == report.COLUMNS
    rows = report.read_csv(path)
    assert rows and all(report.is_gpu(r) and r["machine"] and r["p50_s"] > 0 for r in rows)
    assert {r["provider"] for r in rows} <= set(report.PROVIDER_LABELS)


def test_gpu_plots(tmp_path):
    pytest.importorskip("matplotlib")
    md = report.render_markdown(sample_rows() + gpu_rows(), tmp_path, plots=True)
    for name in ("gpu_time_vs_size.png", "gpu_speedup.png", "gpu_floor_fraction.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"![{name}]({name})" in md


def test_cpu_peers_torch_and_jax_columns(tmp_path):
    rows = sample_rows() + [
        _row("scce_logits", "4096x1000", "torch_eager", 0.020, torch="2.13.0+cpu"),
        _row("scce_logits", "4096x1000", "jax_jit", 0.005, jax="0.10.2"),
    ]
    md = report.render_markdown(rows, tmp_path, plots=False)
    assert "PyTorch 2.13.0+cpu (2 threads)" in md and "JAX 0.10.2" in md
    assert "CPU peers not run" not in md
    head = [c.strip() for c in _line(md, "| case | backend |").strip("|").split("|")]
    assert head.index("PyTorch eager") < head.index("JAX jit") < head.index("NumPy")
    cells = dict(zip(head, (c.strip() for c in _line(md, "| SCCE logits 4096x1000 | numba |").strip("|").split("|"))))
    assert cells["PyTorch eager"] == "20 ms" and cells["JAX jit"] == "5 ms"
    assert cells["x PyTorch eager"] == "2.0x" and cells["x JAX jit"] == "0.50x"
    assert "PyTorch and JAX CPU peers not run" in report.render_markdown(sample_rows(), tmp_path, plots=False)
