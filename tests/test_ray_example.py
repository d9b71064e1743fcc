"""examples/ray_encode.py on a local Ray with 2 CPUs: every photo becomes a gray that decode reads."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import photo, run

ray = pytest.importorskip("ray", reason="the Ray example needs `pip install invgray[ray]`")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ray_encode.py"


def _example():
    spec = importlib.util.spec_from_file_location("ray_encode", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_ray_example_encodes_a_folder_that_decode_reads(weights, tmp_path):
    source = tmp_path / "photos"
    photo(source / "a.png", 32, 24, seed=1)
    photo(source / "sub" / "b.jpg", 20, 28, seed=2)
    (source / "broken.png").write_bytes(b"not an image")
    (source / "a.gray.png").write_bytes(b"an earlier output: skipped")
    out = tmp_path / "grays"
    example = _example()
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        rows = example.encode_folder(source, out, workers=2, weights=str(weights))
    finally:
        ray.shutdown()
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert set(status) == {"a.png", "b.jpg", "broken.png"}
    assert status["a.png"].startswith("ok: 32x24") and status["b.jpg"].startswith("ok: 20x28")
    assert status["broken.png"].startswith("error:")
    # a second run skips what exists: the actors' own code, called here (a second Ray run costs as much as the first)
    items = example.photo_items(source.resolve())
    batch = {key: np.array([item[key] for item in items]) for key in ("path", "rel")}
    again = example.EncodeBatch(str(out.resolve()), None, str(weights), "cpu", False)(batch)
    assert [Path(p).name for p, s in zip(again["path"], again["status"]) if s == "skipped: exists"] == ["a.png", "b.jpg"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a.gray.png", "sub/b.gray.png"]
    result = run("decode", out / "sub" / "b.gray.png", "-o", tmp_path / "b.png", "--weights", weights)
    assert result.exit_code == 0, result.stderr
    from PIL import Image

    assert np.asarray(Image.open(tmp_path / "b.png")).shape == (28, 20, 3)
