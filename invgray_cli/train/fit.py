"""Stage train: the small nets' training loop (the code detector, the frame judge, the JPEG decoder): Adam under a
cosine learning rate, validation every few steps, and the best validated weights kept; and their
warm start from earlier weights."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from invgray_cli.errors import InvgrayError


@dataclass
class CompanionTrainConfig:
    """What every companion net's training (the code detector, the JPEG decoder) is given."""

    data: list[str]
    val: list[str] = field(default_factory=list)
    model: str | None = None  # codec model name; None = the default
    weights: str | None = None  # or a codec weights file
    steps: int = 1500
    batch: int = 32
    crop: int = 96
    lr: float = 1e-3
    seed: int = 0
    val_every: int = 500
    device: str = "auto"


def fit_best_validated(net: nn.Module, optimizer, steps: int, lr: float, step_loss: Callable[[], Tensor],
                       validate: Callable[[], dict] | None, val_every: int, log: Callable[[str], None],
                       log_every: int) -> list[dict]:
    """Take ``steps`` optimizer steps on ``step_loss()`` (one batch's loss). Every ``val_every`` steps
    and at the end, ``validate()`` (its "score": higher is better); ``net`` ends with the best
    validated weights (the last ones without ``validate``). Returns the validation history."""
    best_score, best_state, history = -1.0, None, []
    tick = time.perf_counter()
    for step in range(steps):
        rate = lr * 0.5 * (1.0 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = step_loss()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % log_every == 0:
            now = time.perf_counter()
            speed = log_every / (now - tick)
            log(f"step {done}/{steps} loss {float(loss.detach()):.4f} lr {rate:.1e} {speed:.1f} steps/s")
            tick = now
        if validate is not None and (done % val_every == 0 or done == steps):
            validation = validate()
            history.append({"step": done, **validation})
            log(f"step {done}: " + " ".join(f"{k} {v:.3f}" for k, v in validation.items()))
            if validation["score"] >= best_score:
                best_score, best_state = validation["score"], {k: v.clone() for k, v in net.state_dict().items()}
    if best_state is not None:
        net.load_state_dict(best_state)
    return history


def warm_start(model: nn.Module, path: str | Path) -> None:
    """Start ``model`` from weights (.safetensors or a training checkpoint) of a net of the same
    shape, or of one with fewer input planes (say, a colouriser before a new hint spread was added):
    their weights are copied and the new planes start at zero, so the start behaves exactly like
    the old net."""
    if str(path).endswith(".safetensors"):
        from invgray_cli.models.weights import read_tensors

        source = read_tensors(path)
    else:
        source = torch.load(path, map_location="cpu", weights_only=False)["model"]
    with torch.no_grad():
        for key, value in model.state_dict().items():
            old = source.get(key)
            if old is not None and old.shape == value.shape:
                value.copy_(old)
            elif old is not None and old.ndim == 4 and old.shape[0] == value.shape[0] and old.shape[2:] == value.shape[2:] \
                    and old.shape[1] < value.shape[1]:
                value.zero_()
                value[:, : old.shape[1]].copy_(old)
            else:
                raise InvgrayError(f"{path} does not fit this net at {key} "
                                   f"({None if old is None else tuple(old.shape)} vs {tuple(value.shape)})")
