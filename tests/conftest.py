from pathlib import Path

import pytest
import torch

from cli_helpers import TINY_NAME
from invgray_cli.models import InvertibleGray, NetConfig
from invgray_cli.models import zoo as registry
from invgray_cli.models.zoo import WeightsEntry, save_weights

torch.set_num_threads(1)


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
    """The tiny model as the one shipped (default) model, so no --weights is needed."""
    model = registry.load_weights(weights)
    entry = WeightsEntry(TINY_NAME, weights.name, registry.file_sha256(weights), model.config.to_dict(),
                         model.divisibility, model.receptive_field, "tiny random test model", "MIT")
    monkeypatch.setenv(registry.WEIGHTS_DIR_ENV, str(weights.parent))
    monkeypatch.setattr(registry, "REGISTRY", [entry])
    return weights
