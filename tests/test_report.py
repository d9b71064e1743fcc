"""eval, bench and encode/decode --json print one report shape."""
from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import TINY_NAME, photo, run
from invgray_cli.models.weights import file_sha256

COMMON = ["name", "description", "model", "versions", "device"]


def test_every_report_has_the_same_envelope(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.png")
    reports = {
        "invgray-eval": run("eval", tmp_path / "a.png", "--weights", weights, "--json", "--device", "cpu"),
        "invgray-bench": run("bench", "--sizes", "32", "--repeats", "1", "--warmup", "0", "--device", "cpu",
                             "--weights", weights, "--json"),
        "invgray-encode": run("encode", tmp_path / "a.png", "-o", tmp_path / "a.gray.png", "--weights", weights,
                              "--json", "--device", "cpu"),
        "invgray-decode": run("decode", tmp_path / "a.gray.png", "-o", tmp_path / "b.png", "--weights", weights,
                              "--json", "--device", "cpu"),
    }
    for name, result in reports.items():
        assert result.exit_code == 0, (name, result.stderr)
        doc = json.loads(result.stdout)
        keys = list(doc)
        assert keys[:5] == COMMON and keys[-1] == "results", (name, keys)
        assert doc["name"] == name and doc["description"]
        assert doc["model"]["name"] == TINY_NAME and set(doc["model"]) == {"name", "sha256"}
        assert {"invgray", "torch", "numpy", "pillow", "python"} <= set(doc["versions"])
        assert doc["device"] == "cpu"  # the device the run used, not the one asked for
        assert doc["model"]["sha256"] == file_sha256(weights), name


def test_encode_report_names_the_device_auto_resolved_to(tmp_path: Path, weights: Path) -> None:
    import torch

    photo(tmp_path / "a.png")
    result = run("encode", tmp_path / "a.png", "-o", tmp_path / "g.png", "--weights", weights, "--json")
    device = json.loads(result.stdout)["device"]
    assert device.startswith("cuda") if torch.cuda.is_available() else device == "cpu"


def test_a_run_that_loaded_no_model_names_none(tmp_path: Path, weights: Path) -> None:
    photo(tmp_path / "a.png")
    (tmp_path / "g.png").write_bytes(b"x")
    result = run("encode", tmp_path / "a.png", "-o", tmp_path / "g.png", "--weights", weights, "--json",
                 "--skip-existing")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["model"] == {"name": None, "sha256": None} and doc["device"] is None
