"""Stage train: the optional VGG-19 conv4_4 contrast term (paper Eq. 6), from a local file only — never downloaded."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# torchvision's vgg19 "features" indices up to conv4_4 (index 25) and its ReLU (26)
_VGG19_UP_TO_CONV4_4 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG19_UP_TO_CONV4_4:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    return nn.Sequential(*layers)


class VGGContrast(nn.Module):
    """L1 distance of conv4_4 features between the gray (as RGB) and the colour input."""

    def __init__(self, weights_path: Path) -> None:
        super().__init__()
        self.features = _build_features()
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        kept = {k: v for k, v in state.items() if k in self.features.state_dict()}
        self.features.load_state_dict(kept)
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, gray: Tensor, rgb: Tensor) -> Tensor:
        def feats(x: Tensor) -> Tensor:
            return self.features((x - self.mean) / self.std)

        return (feats(gray.expand(-1, 3, -1, -1)) - feats(rgb)).abs().mean()
