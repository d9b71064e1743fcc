import importlib.util
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _paper_arch():
    spec = importlib.util.spec_from_file_location("paper_arch", REPO / "benchmarks" / "paper_arch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paper_arch_costs_about_220_gflop_at_256():
    flops = _paper_arch().paper_flops(256, 256)
    assert flops["total"] == flops["encode"] + flops["decode"]
    assert flops["total"] == pytest.approx(220e9, rel=0.2)
    assert flops["encode"] > flops["decode"] > 0


def test_paper_arch_shapes_and_range():
    paper = _paper_arch()
    rgb = torch.rand(1, 3, 12, 20)
    with torch.inference_mode():
        gray = paper.PaperEncoder()(rgb)
        restored = paper.PaperDecoder()(gray)
    assert gray.shape == (1, 1, 12, 20) and restored.shape == (1, 3, 12, 20)
    assert 0 <= gray.min() and gray.max() <= 1 and 0 <= restored.min() and restored.max() <= 1


def test_paper_flops_refuses_sizes_it_cannot_run():
    with pytest.raises(ValueError):
        _paper_arch().paper_flops(255, 256)
