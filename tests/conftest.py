from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_NAME, codec_entry, ship_only
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models.weights import save_weights

torch.set_num_threads(1)

DEVICES = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """"cpu", and "cuda" too where one is present: a codec or stage test taking it runs on each. On
    CUDA, fp32 means fp32 (no TF32), as the codec sets it."""
    if request.param == "cuda":
        from invgray_cli.devices import exact_fp32

        exact_fp32(torch.device("cuda"))
    return request.param


@pytest.fixture
def tiny_model() -> InvertibleGray:
    """A small randomly initialised net whose residual is non-zero, for mechanics tests."""
    torch.manual_seed(0)
    model = InvertibleGray(NetConfig(scale=2, width=8, encoder_blocks=1, decoder_blocks=1))
    for p in model.parameters():  # undo the zero init of the tails so outputs depend on the nets
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()

@pytest.fixture
def weights(tmp_path: Path, tiny_model) -> Path:
    """The tiny random model as a --weights file, outside the folders the tests encode."""
    path = tmp_path / "w" / "tiny.safetensors"
    path.parent.mkdir()
    save_weights(tiny_model, path, name=TINY_NAME)
    return path


@pytest.fixture
def registered(weights: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny model as the only shipped file (the default model, no companions, no colouriser), so
    no --weights is needed."""
    ship_only(monkeypatch, weights.parent, codec_entry(weights))
    return weights


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``thorough`` run only when -m names them (``pytest -m thorough``), so the
    default run stays short; each has a fast twin that runs by default."""
    if "thorough" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="thorough (minutes): run with -m thorough")
    for item in items:
        if item.get_closest_marker("thorough") is not None:
            item.add_marker(skip)
