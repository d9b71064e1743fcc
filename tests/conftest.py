import pytest
import torch

from invgray_cli.models import InvertibleGray, NetConfig

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
