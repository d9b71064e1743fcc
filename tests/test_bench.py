import json

import pytest
import torch
from click.testing import CliRunner

from invgray_cli.bench import measure, parse_sizes, runs
from invgray_cli.models import paper
from invgray_cli.cli.app import cli
from invgray_cli.errors import InvgrayError
from invgray_cli.models.zoo import save_weights

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
    result = CliRunner().invoke(cli, [*FAST, "--weights", str(weights), "--tile", "16", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "invgray-bench" and report["description"]
    assert report["model"]["name"] == "tiny.test"
    assert set(report["versions"]) >= {"invgray", "torch"}
    assert report["threads"] >= 1 and report["devices"]["cpu"]["tile"] == 16
    assert report["devices"]["cpu"]["dtype"] == "float32" and report["devices"]["cpu"]["name"]
    (row,) = report["results"]
    assert (row["device"], row["width"], row["height"], row["tile"]) == ("cpu", 32, 32, 16)
    _timing_ok(row["encode"])
    _timing_ok(row["decode"])
    assert row["paper_table3"] is None and "paper_rebuild" not in row
    assert "invgray bench" in result.stderr


def test_bench_random_with_paper_rebuild_and_table3():
    result = CliRunner().invoke(cli, [*FAST[:2], "32,256x8", *FAST[3:], "--random", "--paper", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["name"] == "random-init"
    assert report["speed_target"] == {"ratio": 8.0, "size": [1024, 1024]}
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
    # a wide console: on a narrow one, slow (long) timings squeeze the MP/s column's header
    result = CliRunner().invoke(cli, [*FAST, "--weights", str(weights), "--batch", "3", "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (row,) = report["results"]
    assert report["batch"] == 3 and row["batch"] == 3
    for op in ("encode", "decode"):
        _timing_ok(row[op])
        assert row[op]["megapixels_per_s"] == pytest.approx(3 * 32 * 32 / 1e6 / row[op]["median_s"])
    assert "3 images per call" in result.stderr and "MP/s" in result.stderr
    assert CliRunner().invoke(cli, [*FAST, "--random", "--batch", "0"]).exit_code == 2
