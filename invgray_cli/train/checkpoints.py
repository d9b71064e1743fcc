"""Stage train: a codec training run's files. The checkpoint (the run, resumable bit for bit, even
after Ctrl-C inside a step) and the best validated net beside it (``NAME.best.ckpt``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from invgray_cli.errors import InvgrayError
from invgray_cli.models.net import InvertibleGray

if TYPE_CHECKING:
    from invgray_cli.train.config import TrainConfig


def best_path(out: Path) -> Path:
    return out.with_name(out.stem + ".best" + out.suffix)


def save_best(path: Path, model: InvertibleGray, step: int, validation: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"model": model.state_dict(), "net": model.config.to_dict(), "step": step,
                "validation": validation}, tmp)
    tmp.replace(path)


def save_checkpoint(path: Path, model: InvertibleGray, optimizer: torch.optim.Optimizer, step: int,
                    cfg: TrainConfig, rng: np.random.Generator, generator: torch.Generator,
                    history: list[dict]) -> None:
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
             "config": asdict(cfg), "numpy_rng": rng.bit_generator.state,
             "torch_rng": generator.get_state(), "torch_global_rng": torch.get_rng_state(),
             "history": history}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own file: holds RNG states


def resume(out: Path, cfg: TrainConfig, model: InvertibleGray, optimizer: torch.optim.Optimizer,
           rng: np.random.Generator, generator: torch.Generator, log: Callable[[str], None]) -> tuple[int, list[dict]]:
    """Load the checkpoint ``out`` into the model, optimiser and random generators; (its step, its
    validation history)."""
    state = load_checkpoint(out)
    if state["config"]["net"] != cfg.net:
        raise InvgrayError(f"checkpoint {out} was trained with net {state['config']['net']}; "
                           "pass the same --scale/--width/--blocks or a new --out")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    start, history = state["step"], state.get("history", [])
    rng.bit_generator.state = state["numpy_rng"]
    generator.set_state(state["torch_rng"])
    torch.set_rng_state(state["torch_global_rng"])
    log(f"resumed from {out} at step {start}")
    return start, history


@dataclass
class RunProgress:
    """Where a run stands, so an interrupt can save a checkpoint that resumes bit for bit."""

    completed: int  # optimiser steps applied to the model
    saved: int  # the step of the checkpoint on disk
    rng_at_step_start: tuple | None = None  # RNG states before the step in flight drew its batch

    def step_starts(self, rng: np.random.Generator, generator: torch.Generator) -> None:
        self.rng_at_step_start = (rng.bit_generator.state, generator.get_state(), torch.get_rng_state())

    def step_applied(self, step: int) -> None:
        self.completed, self.rng_at_step_start = step, None

    def restore_rng(self, rng: np.random.Generator, generator: torch.Generator) -> None:
        numpy_state, torch_state, global_state = self.rng_at_step_start
        rng.bit_generator.state = numpy_state
        generator.set_state(torch_state)
        torch.set_rng_state(global_state)
