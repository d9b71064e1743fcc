"""The frame judge: of a few frames in which a gray decodes consistently, which one is right?

The 4-px Walsh carriers are symmetric: a mirror or turn plus a shift of the grid can turn a valid
code into the valid code of the same picture with a chroma channel's sign flipped. The round trip
of ``grid.py`` cannot tell those frames apart; what tells them apart is whether the colours look
like a photo's (blue skies, green leaves, skin). This small CNN sees each candidate (the gray and
its decoded colours, in the candidate's frame) with its round-trip score relative to the best, and
gives one logit per candidate. Trained per codec model by ``invgray train-frames``.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from invgray_cli.models.zoo import CompanionEntry, load_module, save_module, shipped_companion

FRAME_JUDGE_FORMAT = "invgray-frame-judge/1"


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


# Each file is made by `invgray train-frames` (recipe in the model card of the codec model it serves).
FRAME_JUDGES: list[CompanionEntry] = [
    CompanionEntry(  # igray_s4w96.invisible_v2
        model_sha256="5ee4bae484eda4cd6ea76b76784834f4b887df73bdf98582deb5f7183bc137e1",
        file="igray_s4w96_invisible_v2.frames-30fbd979.safetensors",
        sha256="30fbd979ef3607a6b82fc0ad7769774d62ae373d29102db74cad7e8f6663da51",
    ),
]


@functools.lru_cache(maxsize=4)
def shipped_frame_judge(model_sha256: str) -> FrameJudge | None:
    """The shipped frame judge for the codec model with this sha256, or None if it has none."""
    return shipped_companion(FRAME_JUDGES, model_sha256, "frame judge",
                             lambda path, sha: load_frame_judge(path, sha)[0])


def save_frame_judge(model: FrameJudge, path, model_sha256: str, name: str | None = None) -> str:
    """Write ``model`` as safetensors with its config and the codec model it serves; returns sha256."""
    return save_module(model, path, FRAME_JUDGE_FORMAT, model_sha256=model_sha256, name=name)


def load_frame_judge(path, expected_sha256: str | None = None) -> tuple[FrameJudge, str]:
    """(judge, sha256 of the codec model it was trained for), checked against ``expected_sha256``."""
    model, metadata, _ = load_module(path, FRAME_JUDGE_FORMAT, lambda config: FrameJudge(FrameJudgeConfig(**config)),
                                     "frame judge", expected_sha256)
    return model, metadata.get("model_sha256", "")
