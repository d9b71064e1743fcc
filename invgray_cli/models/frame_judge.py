"""Stage 2 (models): the frame judge: of a few frames in which a gray decodes consistently, which one is right?

The 4-px Walsh carriers are symmetric: a mirror or turn plus a shift of the grid can turn a valid
code into the valid code of the same picture with a chroma channel's sign flipped. The round trip
of ``codec/frames.py`` cannot tell those frames apart; what tells them apart is whether the colours look
like a photo's (blue skies, green leaves, skin). This small CNN sees each candidate (the gray and
its decoded colours, in the candidate's frame) with its round-trip score relative to the best, and
gives one logit per candidate. Trained per codec model by ``invgray train-frames``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FrameJudgeConfig:
    width: int = 32

    def to_dict(self) -> dict:
        return asdict(self)


class FrameJudge(nn.Module):
    """(K, 4, S, S) candidates (gray, R, G, B in [0,1]) and (K,) log round-trip ratios -> (K,) logits."""

    def __init__(self, config: FrameJudgeConfig = FrameJudgeConfig()) -> None:
        super().__init__()
        self.config = config
        w = config.width

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.ReLU(inplace=True)]

        # a 2x2 pooled map keeps where colours are (a sky is on top in an upright photo)
        self.features = nn.Sequential(*down(4, w), *down(w, 2 * w), *down(2 * w, 2 * w), *down(2 * w, 4 * w),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(16 * w + 1, 2 * w), nn.ReLU(inplace=True), nn.Linear(2 * w, 1))

    def forward(self, views: Tensor, log_ratios: Tensor) -> Tensor:
        features = self.features(views - 0.5)
        return self.head(torch.cat([features, log_ratios[:, None]], dim=1))[:, 0]


def judge_logits(judge: FrameJudge, views: Tensor, ratios: Tensor) -> Tensor:
    """Logits for candidates ``views`` (K,4,S,S) whose round-trip scores are ``ratios`` x the best."""
    parameter = next(judge.parameters())
    return judge(views.to(parameter), torch.log(ratios.clamp_min(1.0)).to(parameter))
