"""Stage train: the frame judge of one codec model (see ``models/frame_judge.py`` and ``codec/frames.py``).

Each case is a crop of a training photo, encoded, then turned by one of the 8 orientations and
cropped by 0-3 px at the top and left. The round trip of ``codec/frames.py`` shortlists its frames; each
candidate is decoded on the judge's window and scored against the photo (PSNR). The judge learns
to give the right candidates (within ``RIGHT_MARGIN_DB`` of the true frame's) the highest logit. Cases
whose shortlist misses the right frame are counted, not learned from.

Validation cases come from whole validation photos, one turned-and-cropped case and one as
encoded per photo, so the identity preference of :func:`grid.find_frame` is measured too.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from invgray_cli.codec import frames as grid
from invgray_cli.codec.nets import Codec
from invgray_cli.devices import reproducible, resolve_device
from invgray_cli.errors import InvgrayError
from invgray_cli.models.frame_judge import FrameJudge, FrameJudgeConfig, judge_logits
from invgray_cli.train.data import find_images, load_all
from invgray_cli.train.fit import fit_best_validated
from invgray_cli.codec.encode import encode_array

RIGHT_MARGIN_DB = 0.5  # a candidate this close to the true frame's restores the photo as well
CASE_CROP = 256


@dataclass
class FrameTrainConfig:
    data: list[str]
    val: list[str] = field(default_factory=list)
    model: str | None = None
    weights: str | None = None
    cases_per_photo: int = 2
    steps: int = 2500
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0
    val_every: int = 500
    cache: str | None = None  # .npz of the training cases (and .val.npz beside it), made once and reused
    net: dict = field(default_factory=lambda: {"width": FrameJudgeConfig().width})
    device: str = "auto"  # where the judge trains; its cases are made on the CPU, by the fp32 codec


@dataclass
class Cases:
    views: np.ndarray  # (N, K, 4, S, S) uint8: gray and decoded colour of each candidate
    ratios: np.ndarray  # (N, K) round-trip score over the best
    psnr: np.ndarray  # (N, K) dB against the photo (padding: -inf)
    frames: np.ndarray  # (N, K, 3) orientation, offset_y, offset_x (padding: -1)
    as_encoded: np.ndarray  # (N,) bool: the case was not turned or cropped
    right_psnr: np.ndarray  # (N,) dB of the true frame's candidate

    @property
    def present(self) -> np.ndarray:
        """(N, K) bool: which candidates are real (not padding)."""
        return self.frames[..., 0] >= 0

    def save(self, path: Path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def load(cls, path: Path) -> "Cases":
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})


def transform(image: torch.Tensor, orientation: int, cut_y: int, cut_x: int) -> torch.Tensor:
    """What a user might do to (..., H, W): turn/mirror it, then crop rows and columns off the top-left."""
    return grid.orient(image, orientation)[..., cut_y:, cut_x:]


def true_frame(height: int, width: int, orientation: int, cut_y: int, cut_x: int, divisibility: int,
               cut_end: tuple[int, int] = (0, 0), ends: bool = False) -> grid.Frame:
    """The frame that undoes ``transform`` of an (height, width) gray and then a cut of ``cut_end`` =
    (rows, columns) off the bottom and right of the result: its orientation, and the grid offsets of
    the pixel that lands top-left once the orientation is undone; with ``ends`` also whether the
    edges of the encoded gray were cut (what the edge marks tell; the grid search never sets them)."""
    moved = transform(torch.arange(height * width).view(height, width), orientation, cut_y, cut_x)
    encoded = grid.unorient(moved[: moved.shape[0] - cut_end[0], : moved.shape[1] - cut_end[1]], orientation)
    corner, last = int(encoded[0, 0]), int(encoded[-1, -1])
    cut_edges = ((corner // width > 0, corner % width > 0, last // width < height - 1, last % width < width - 1)
                 if ends else (False, False, False, False))
    return grid.Frame(orientation, corner // width % divisibility, corner % width % divisibility, cut_edges)


def _window_psnr(view: torch.Tensor, truth: torch.Tensor, frame: grid.Frame, divisibility: int) -> float:
    target = grid.central_window(grid.into_frame(truth, frame), grid.JUDGE_WINDOW, divisibility)
    mse = float(((view[1:] - target[..., : view.shape[-2], : view.shape[-1]]) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-10))


def make_case(codec: Codec, rgb: np.ndarray, orientation: int, cut_y: int, cut_x: int):
    """(views, ratios, psnr, frames) of one encoded photo after ``transform``, for the shortlist, and
    the PSNR of the true frame's candidate (on the shortlist or not)."""
    model = codec.model
    gray = transform(torch.from_numpy(encode_array(codec, rgb)), orientation, cut_y, cut_x).float()[None] / 255.0
    truth = transform(torch.from_numpy(rgb).permute(2, 0, 1), orientation, cut_y, cut_x).float() / 255.0
    box = grid.probe_box(gray, grid.PROBE_REGION, model.divisibility)  # the first of the regions find_frame probes
    gray, truth = gray[(..., *box)], truth[(..., *box)]
    scores = grid.frame_scores(model, gray)
    frames = grid.shortlist(scores)
    views = grid.candidate_views(model, gray, frames)
    psnr = [_window_psnr(view, truth, frame, model.divisibility) for frame, view in zip(frames, views)]
    right = true_frame(*rgb.shape[:2], orientation, cut_y, cut_x, model.divisibility)
    right_psnr = psnr[frames.index(right)] if right in frames else \
        _window_psnr(grid.candidate_views(model, gray, [right])[0], truth, right, model.divisibility)
    ratios = grid.score_ratios(scores, frames)
    return (views * 255.0).round().byte().numpy(), np.array(ratios), np.array(psnr), \
        np.array([[f.orientation, f.offset_y, f.offset_x] for f in frames]), right_psnr


def make_cases(codec: Codec, images: list[np.ndarray], per_photo: int, seed: int, crop: int | None,
               as_encoded_share: float = 0.0, log: Callable[[str], None] = print) -> Cases:
    """Cases from ``images`` (random crops of ``crop`` px, or whole photos when None)."""
    rng = np.random.default_rng(seed)
    k = grid.SHORTLIST_SIZE
    rows = []
    tick = time.perf_counter()
    for index, image in enumerate(images):
        for _ in range(per_photo):
            rgb = image
            if crop is not None:
                y, x = (int(rng.integers(s - crop + 1)) for s in image.shape[:2])
                rgb = np.ascontiguousarray(image[y : y + crop, x : x + crop])
            as_encoded = rng.random() < as_encoded_share
            orientation, cut_y, cut_x = (0, 0, 0) if as_encoded else (int(v) for v in rng.integers((8, 4, 4)))
            views, ratios, psnr, frames, right_psnr = make_case(codec, rgb, orientation, cut_y, cut_x)
            rows.append((views, ratios, psnr, frames, right_psnr, as_encoded))
        if (index + 1) % 50 == 0:
            log(f"cases from {index + 1}/{len(images)} photos ({time.perf_counter() - tick:.0f} s)")
    n = len(rows)
    side = max(r[0].shape[-1] for r in rows)
    views = np.zeros((n, k, 4, side, side), np.uint8)
    ratios, psnr = np.zeros((n, k), np.float32), np.full((n, k), -np.inf, np.float32)
    frames = np.full((n, k, 3), -1, np.int64)
    for i, (v, r, p, f, _, _) in enumerate(rows):
        views[i, : len(v), :, : v.shape[-2], : v.shape[-1]] = v
        ratios[i, : len(r)], psnr[i, : len(p)], frames[i, : len(f)] = r, p, f
    return Cases(views, ratios, psnr, frames, np.array([r[5] for r in rows]), np.array([r[4] for r in rows], np.float32))


def right_candidates(cases: Cases) -> torch.Tensor:
    """(N, K) bool: candidates that restore as well as the true frame (to the margin)."""
    return torch.from_numpy(cases.psnr >= cases.right_psnr[:, None] - RIGHT_MARGIN_DB)


def case_logits(judge: FrameJudge, views: torch.Tensor, ratios: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(N, K) logits of the ``present`` candidates, padding at -inf."""
    n, k = ratios.shape
    logits = judge_logits(judge, views.flatten(0, 1).float() / 255.0, ratios.flatten().clamp_min(1.0)).view(n, k)
    return logits.masked_fill(~present.to(logits.device), -math.inf)


@torch.inference_mode()
def validate_judge(judge: FrameJudge, cases: Cases) -> dict:
    """Share of cases where the choice :func:`grid.find_frame` would make on the case's one probe
    region (it adds up three on a whole gray) restores within the margin,
    and the mean PSNR of the chosen candidates on the judge's window; for turned/cropped cases and
    cases as encoded separately."""
    judge.eval()
    views, ratios = torch.from_numpy(cases.views), torch.from_numpy(cases.ratios)
    psnr = torch.from_numpy(cases.psnr)
    present = torch.from_numpy(cases.present)
    logits = torch.cat([case_logits(judge, views[i : i + 8], ratios[i : i + 8], present[i : i + 8])
                        for i in range(0, len(psnr), 8)]).cpu()
    probabilities = torch.softmax(logits, dim=1)
    chosen = probabilities.argmax(dim=1)
    identity = torch.from_numpy((cases.frames == 0).all(axis=2))
    keep = (identity & present & (probabilities >= grid.IDENTITY_SHARE)).any(dim=1)
    chosen = torch.where(keep, identity.float().argmax(dim=1), chosen)
    best = torch.from_numpy(cases.right_psnr)
    picked = psnr.gather(1, chosen[:, None])[:, 0]
    right = picked >= best - RIGHT_MARGIN_DB
    result = {}
    for name, mask in (("moved", ~torch.from_numpy(cases.as_encoded)), ("as_encoded", torch.from_numpy(cases.as_encoded))):
        if mask.any():
            result[f"right_{name}"] = float(right[mask].float().mean())
            result[f"psnr_{name}"] = float(picked[mask].mean())
            result[f"true_{name}"] = float(best[mask].mean())
    result["shortlist_missed"] = float((~right_candidates(cases).any(dim=1)).float().mean())
    result["score"] = float(right.float().mean())
    judge.train()
    return result


def _cached(what: str, cache: Path | None, make: Callable[[], Cases], log: Callable[[str], None]) -> Cases:
    """The ``what`` cases kept in ``cache`` when it exists, else made (and kept there)."""
    if cache is not None and cache.exists():
        cases = Cases.load(cache)
        log(f"{len(cases.psnr)} {what} cases from {cache}")
        return cases
    cases = make()
    if cache is not None:
        cases.save(cache)
    return cases


def train_frame_judge(cfg: FrameTrainConfig, out: Path, log: Callable[[str], None] = print,
                      log_every: int = 100) -> tuple[FrameJudge, Codec]:
    """Make (or load) the cases, train, return the best validated judge and its codec."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = resolve_device(cfg.device)
    reproducible(device)
    # the judge serves grays made without the sync pattern
    codec = Codec.load(cfg.model, cfg.weights, device="cpu", precision="fp32").with_sync_pattern(False)

    def training_cases() -> Cases:
        images = load_all(find_images([Path(p) for p in cfg.data]), CASE_CROP, on_skip=log)
        if not images:
            raise InvgrayError(f"no training photos of at least {CASE_CROP} px on a side in {', '.join(cfg.data)}")
        return make_cases(codec, images, cfg.cases_per_photo, cfg.seed, CASE_CROP, log=log)

    def validation_cases() -> Cases:
        val_images = load_all(find_images([Path(p) for p in cfg.val]), 2 * grid.PROBE_SIZE, on_skip=log)
        return make_cases(codec, val_images, 2, cfg.seed + 1, None, as_encoded_share=0.5, log=log)

    cache = Path(cfg.cache) if cfg.cache else None
    cases = _cached("training", cache, training_cases, log)
    val_cache = cache.with_suffix(".val.npz") if cache is not None else None
    has_validation = bool(cfg.val) or (val_cache is not None and val_cache.exists())
    val_cases = _cached("validation", val_cache, validation_cases, log) if has_validation else None
    right = right_candidates(cases)
    usable = np.flatnonzero(right.any(dim=1).numpy())
    log(f"{len(usable)}/{len(right)} training cases have the right frame on their shortlist")
    judge = FrameJudge(FrameJudgeConfig(**cfg.net)).to(device)
    optimizer = torch.optim.Adam(judge.parameters(), lr=cfg.lr)

    def step_loss() -> torch.Tensor:
        pick = torch.from_numpy(rng.choice(usable, cfg.batch))
        views = torch.from_numpy(cases.views[pick.numpy()])
        if rng.random() < 0.5:
            views = views.flip(-1)  # a mirrored photo is as natural
        logits = case_logits(judge, views, torch.from_numpy(cases.ratios[pick.numpy()]),
                             torch.from_numpy(cases.present[pick.numpy()]))
        positive = logits.masked_fill(~right[pick].to(logits.device), -math.inf)
        return (torch.logsumexp(logits, dim=1) - torch.logsumexp(positive, dim=1)).mean()

    validate = None if val_cases is None else (lambda: validate_judge(judge, val_cases))
    history = fit_best_validated(judge, optimizer, cfg.steps, cfg.lr, step_loss, validate, cfg.val_every,
                                 log, log_every)
    judge = judge.cpu().eval()
    torch.save({"model": judge.state_dict(), "history": history, "config": asdict(cfg)}, out)
    return judge, codec
