import json

import pytest
import torch
from click.testing import CliRunner

from invgray_cli.bench import measure, parse_sizes, runs
from invgray_cli.models import paper
from invgray_cli.cli.app import cli
from invgray_cli.errors import InvgrayError
from invgray_cli.models.weights import save_weights

FAST = ["bench", "--sizes", "32", "--repeats", "1", "--warmup", "0", "--device", "cpu"]


def test_paper_arch_costs_about_220_gflop_at_256():
    flops = paper.paper_flops(256, 256)
    assert flops["total"] == flops["encode"] + flops["decode"]
    assert flops["total"] == pytest.approx(220e9, rel=0.2)
    assert flops["encode"] > flops["decode"] > 0


def test_paper_arch_shapes_and_range():
    rgb = torch.rand(1, 3, 12, 20)
    with torch.inference_mode():
        gray = paper.PaperEncoder()(rgb)
        restored = paper.PaperDecoder()(gray)
    assert gray.shape == (1, 1, 12, 20) and restored.shape == (1, 3, 12, 20)
    assert 0 <= gray.min() and gray.max() <= 1 and 0 <= restored.min() and restored.max() <= 1


def test_the_rebuilds_prepacked_decoder_runs_its_convolutions_on_onednn(monkeypatch):
    """bench --paper times the rebuild's decoder with its convolutions prepacked (its fastest layout
    on a CPU): oneDNN convolution modules, the same colours up to float rounding."""
    device = torch.device("cpu")
    if not paper.can_prepack(device):
        pytest.skip("this torch has no oneDNN")
    torch.manual_seed(0)
    decoder = paper.PaperDecoder().eval()
    convs = paper.prepacked(decoder.convs)
    kinds = {type(module).__name__ for module in convs.modules()}
    assert "MkldnnConv2d" in kinds and "Conv2d" not in kinds
    gray = torch.rand(2, 1, 32, 48)
    with torch.inference_mode():
        assert torch.allclose(decoder(gray, convs), decoder(gray), atol=1e-5)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert not paper.can_prepack(device)


def test_paper_flops_refuses_sizes_it_cannot_run():
    with pytest.raises(ValueError):
        paper.paper_flops(255, 256)


# ---------------------------------------------------------------- invgray bench


def _timing_ok(entry: dict) -> None:
    assert entry["min_s"] <= entry["median_s"] and len(entry["times_s"]) == 1
    assert entry["peak_mib"] is None or entry["peak_mib"] > 0


def test_bench_json_with_weights(tmp_path, tiny_model):
    weights = tmp_path / "tiny.safetensors"
    save_weights(tiny_model, weights, name="tiny.test")
    result = CliRunner().invoke(cli, [*FAST, "--weights", str(weights), "--tile", "32", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "invgray-bench" and report["description"]
    assert report["model"]["name"] == "tiny.test"
    assert set(report["versions"]) >= {"invgray", "torch"}
    assert report["threads"] >= 1 and report["devices"]["cpu"]["tile"] == 32
    assert report["devices"]["cpu"]["precision"] == "fp32" and report["devices"]["cpu"]["name"]  # what it ran
    (row,) = report["results"]
    assert (row["device"], row["width"], row["height"], row["tile"]) == ("cpu", 32, 32, 32)
    _timing_ok(row["encode"])
    _timing_ok(row["decode"])
    assert row["paper_table3"] is None and "paper_rebuild" not in row
    assert "invgray bench" in result.stderr


def test_bench_random_with_paper_rebuild_and_table3():
    result = CliRunner().invoke(cli, [*FAST[:2], "32,256x8", *FAST[3:], "--random", "--paper", "--json"],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["name"] == "random-init"
    assert report["speed_target"] == {"ratio": 25.0, "size": [1024, 1024]}  # the bar bench checks
    assert "speed-up >= 25x" in " ".join(result.stderr.split()) and "…" not in result.stderr
    first, second = report["results"]
    _timing_ok(first["paper_rebuild"]["encode"])
    assert first["speedup"]["encode"] == pytest.approx(
        first["paper_rebuild"]["encode"]["median_s"] / first["encode"]["median_s"]
    )
    assert (second["width"], second["height"]) == (256, 8)
    assert "speed-up" in result.stderr


def test_table3_figures_at_paper_sizes():
    assert runs._paper_table3("cpu", (1024, 1024)) == {"encode_s": 15.117, "decode_s": 13.133}
    assert runs._paper_table3("cuda", (256, 256)) == {"encode_s": 0.034, "decode_s": 0.029}
    assert runs._paper_table3("cpu", (300, 256)) is None


def test_measure_does_not_time_warmups():
    calls = []
    entry = measure(lambda: calls.append(1), torch.device("cpu"), warmup=2, repeats=3)
    assert len(calls) == 5 and len(entry["times_s"]) == 3


@pytest.mark.parametrize("text", ["", "abc", "0", "256,", "12x", "1x2x3", "99999"])
def test_bad_sizes(text):
    with pytest.raises(InvgrayError, match="--sizes"):
        parse_sizes(text)


def test_sizes_parse():
    assert parse_sizes("256, 640x480") == [(256, 256), (640, 480)]


def test_bad_sizes_on_the_command_line():
    result = CliRunner().invoke(cli, ["bench", "--sizes", "big", "--random"])
    assert result.exit_code == 1 and "bad size 'big'" in result.stderr


def test_random_and_weights_together_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, [*FAST, "--random", "--weights", str(tmp_path / "w.safetensors")])
    assert result.exit_code == 2 and "--random" in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu():
    result = CliRunner().invoke(cli, ["bench", "--sizes", "32", "--device", "cuda", "--random"])
    assert result.exit_code == 1 and "no CUDA GPU" in result.stderr




def test_bench_batch_reports_megapixels_per_second(tmp_path, tiny_model):
    weights = tmp_path / "tiny.safetensors"
    save_weights(tiny_model, weights, name="tiny.test")
    result = CliRunner().invoke(cli, [*FAST, "--weights", str(weights), "--batch", "3", "--json"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["results"]
    assert report["batch"] == 3 and row["batch"] == 3
    for op in ("encode", "decode"):
        _timing_ok(row[op])
        assert row[op]["megapixels_per_s"] == pytest.approx(3 * 32 * 32 / 1e6 / row[op]["median_s"])
    flat = " ".join(result.stderr.split())  # the title wraps where the machine's CPU name puts it
    assert "3 images per call" in flat and "MP/s" in flat
    assert CliRunner().invoke(cli, [*FAST, "--random", "--batch", "0"]).exit_code == 2


def _report(batch: int = 1, paper: bool = True) -> dict:
    """A bench report with the longest cells a run gives: two devices, 1024² beside the paper, an 8K size."""
    def timing(median: float, low: float, peak: float | None = 5555.4, growth: float = 2900.2) -> dict:
        return {"median_s": median, "min_s": low, "peak_mib": peak, "growth_mib": growth,
                "megapixels_per_s": 123.45}

    rows = []
    for device in ("cpu", "cuda:0"):
        for size, seconds in (((1024, 1024), 0.5123), ((7680, 4320), 19.08)):
            row = {"device": device, "width": size[0], "height": size[1], "tile": 1024, "batch": batch,
                   "encode": timing(seconds, seconds * 0.9), "decode": timing(0.9999, 0.9876, peak=None),
                   "paper_table3": runs._paper_table3("cpu", size)}
            if paper:
                row["paper_rebuild"] = {"encode": timing(12.12, 11.0), "decode": timing(123.45, 120.0)}
                row["speedup"] = {"encode": 23.66, "decode": 135.2}
            rows.append(row)
    devices = {"cpu": {"name": "AMD EPYC 9654 96-Core Processor", "tile": 1024, "precision": "fp32"},
               "cuda:0": {"name": "NVIDIA H200", "tile": 2048, "precision": "fp16"}}
    return {"model": {"name": "igray_s4w96.invisible_v2"}, "threads": 16, "repeats": 5, "batch": batch,
            "devices": devices, "results": rows}


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("batch,paper", [(1, True), (1, False), (4, True)])
def test_bench_tables_show_every_cell_whole(width, batch, paper):
    from rich.console import Console

    from invgray_cli.bench.table import render_bench_tables

    console = Console(width=width, record=True, force_terminal=False)
    console.print(render_bench_tables(_report(batch, paper)))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width and "…" not in text, text
    rows = [line.split() for line in text.splitlines()]
    assert ["1024x1024", "encode", "512.3", "(461.1)", "ms", "5555", "(+2900)"] == rows_starting(rows, "1024x1024")[0][:7]
    assert ["decode", "999.9", "(987.6)", "ms", "–"] == rows_starting(rows, "decode")[0][:5]
    assert ["7680x4320", "encode", "19.08", "(17.17)", "s"] == rows_starting(rows, "7680x4320")[0][:5]
    assert sum("invgray bench on" in line for line in text.splitlines()) == 2  # one table per device
    assert ("NVIDIA H200" in text) and ("fp16" in text)
    flat = " ".join(text.split())
    if paper:
        assert rows_starting(rows, "1024x1024")[0][-3:] == ["12.12", "s", "23.7x"]
        assert f"speed-up >= {runs.SPEED_TARGET:g}x" in flat
    assert ("15.117 s" in flat) == (batch == 1) and ("123.5" in flat) == (batch > 1)  # paper T3, or MP/s


def rows_starting(rows: list[list[str]], first: str) -> list[list[str]]:
    return [row for row in rows if row and row[0] == first]
