"""Stage train: validation of the codec nets in training, through the real codec path, and the rule a
kept checkpoint meets (the gray rule on every validation set, then the best score).
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from invgray_cli import metrics
from invgray_cli.codec.decode import decode_array
from invgray_cli.codec.edges import decode_in_frame
from invgray_cli.codec.encode import encode_array
from invgray_cli.codec.frames import Frame
from invgray_cli.codec.sync_pattern import add_sync_pattern
from invgray_cli.colour import luma_bt601
from invgray_cli.models.net import EdgeDecoder, InvertibleGray

if TYPE_CHECKING:
    from invgray_cli.train.config import TrainConfig


def _validation_codec(model: InvertibleGray, edge_of: InvertibleGray | None = None, all_cuts: bool = False):
    """The codec path around the nets being trained; with ``edge_of``, ``model`` is an edge decoder
    (of every cut edge with ``all_cuts``) and the codec is ``edge_of``'s with
    it. Nets are copied (the copies go to eval mode)."""
    from invgray_cli.codec.nets import Codec
    from invgray_cli.models.zoo import ModelInfo

    device = next(model.parameters()).device
    info = ModelInfo("in-training", "", model.divisibility, model.receptive_field)
    # the nets alone: the sync pattern (sync_pattern.py) is added and taken out exactly around them
    if edge_of is not None:
        codec = Codec.from_model(copy.deepcopy(edge_of), info, device=str(device))
        return replace(codec, edge_decoder=EdgeDecoder(copy.deepcopy(model).eval(), all_cuts)).with_sync_pattern(False)
    return Codec.from_model(copy.deepcopy(model), info, device=str(device)).with_sync_pattern(False)


# (top, left, bottom, right) lines cut off the validation grays in turn when training on cut edges;
# the second list for an edge decoder of every cut edge
VAL_CUTS = ((1, 0, 0, 0), (0, 2, 0, 0), (3, 3, 0, 0), (2, 1, 0, 0))
VAL_CUTS_ALL_SIDES = ((1, 0, 0, 0), (0, 0, 1, 2), (3, 3, 0, 0), (0, 0, 3, 3), (4, 0, 0, 5), (1, 1, 1, 1), (0, 6, 4, 0))


def _score(codec, images: list[np.ndarray], jpeg_quality: int | None = None, cut: bool = False) -> dict[str, float]:
    """``cut``: also the PSNR decoded in the true frame after cutting lines off the gray's edges."""
    from invgray_cli.io.jpeg import jpeg_round_trip

    psnrs, structures, jpeg_psnrs, cut_psnrs = [], [], [], []
    for index, image in enumerate(images):
        gray = encode_array(codec, image)
        psnrs.append(metrics.psnr(decode_in_frame(codec, gray, Frame()), image))  # with an edge decoder's bands
        structures.append(metrics.gray_structure(add_sync_pattern(gray), luma_bt601(image)))  # as stored
        if jpeg_quality is not None:
            jpeg_psnrs.append(metrics.psnr(decode_array(codec, jpeg_round_trip(gray, jpeg_quality)), image))
        if cut:
            all_sides = codec.edge_decoder is not None and codec.edge_decoder.all_cuts
            cuts = VAL_CUTS_ALL_SIDES if all_sides else VAL_CUTS
            top, left, bottom, right = cuts[index % len(cuts)]
            kept = (slice(top, gray.shape[0] - bottom), slice(left, gray.shape[1] - right))
            d = codec.model.divisibility
            frame = Frame(0, top % d, left % d, (top > 0, left > 0, bottom > 0, right > 0))
            cut_psnrs.append(metrics.psnr(decode_in_frame(codec, np.ascontiguousarray(gray[kept]), frame), image[kept]))
    score = {"psnr": float(np.mean(psnrs)), "gray_structure": float(np.mean(structures)),
             "gray_structure_min": float(np.min(structures))}
    if jpeg_psnrs:
        score["psnr_jpeg"] = float(np.mean(jpeg_psnrs))
    if cut_psnrs:
        score["psnr_cut"] = float(np.mean(cut_psnrs))
    return score


def validate(model: InvertibleGray, images: list[np.ndarray], jpeg_quality: int | None = None) -> dict[str, float]:
    """The photos through the codec path as `invgray eval` runs it (whole photos at their own
    sizes, tiled, 8-bit gray, 8-bit colour): mean PSNR, mean and minimum gray structure of the gray
    as stored (the sync pattern added; the nets decode it taken out, as decode does); with
    ``jpeg_quality`` also the mean PSNR after saving each gray as a JPEG (``psnr_jpeg``)."""
    return _score(_validation_codec(model), images, jpeg_quality)


def validate_sets(model: InvertibleGray, sets: dict[str, list[np.ndarray]], jpeg_quality: int | None = None,
                  cut: bool = False, edge_of: InvertibleGray | None = None, all_cuts: bool = False) -> dict:
    """`validate` on each named set (one copy of the net for all); the top level holds the means
    over sets and the worst minimum, so no one kind of content (textured photos, smooth photos,
    digital art) outweighs the others."""
    codec = _validation_codec(model, edge_of, all_cuts)
    per_set = {name: _score(codec, images, jpeg_quality, cut) for name, images in sets.items()}
    result = {"psnr": float(np.mean([v["psnr"] for v in per_set.values()])),
              "gray_structure": float(np.mean([v["gray_structure"] for v in per_set.values()])),
              "gray_structure_min": float(min(v["gray_structure_min"] for v in per_set.values())),
              "sets": per_set}
    for key in ("psnr_jpeg", "psnr_cut"):
        if all(key in v for v in per_set.values()) and per_set:
            result[key] = float(np.mean([v[key] for v in per_set.values()]))
    return result


def meets_gray_rule(validation: dict, cfg: TrainConfig) -> bool:
    """Every validation set keeps its mean gray structure and its worst image above the floors.
    (Histories of older checkpoints have no per-set or per-image figures: their mean stands in.)"""
    per_set = validation.get("sets") or {"all": validation}
    return all(v["gray_structure"] >= cfg.gray_mean_floor
               and v.get("gray_structure_min", v["gray_structure"]) >= cfg.gray_image_floor
               for v in per_set.values())


def selection_score(validation: dict) -> float:
    """What a kept checkpoint maximises: PSNR after the validation JPEG when there is one; else the
    mean of the clean and the cut PSNR when there is a cut one; else PSNR."""
    if "psnr_jpeg" in validation:
        return validation["psnr_jpeg"]
    return (validation["psnr"] + validation["psnr_cut"]) / 2 if "psnr_cut" in validation else validation["psnr"]


def is_best(validation: dict, earlier: list[dict], cfg: TrainConfig) -> bool:
    """Highest validation score so far among results that meet the gray rule. With ``decoder_only``
    the grays are the --init model's, already judged, so the rule is not asked again."""
    def allowed(result: dict) -> bool:
        return cfg.decoder_only or meets_gray_rule(result, cfg)

    if not allowed(validation):
        return False
    # only like with like: a run resumed with --val-jpeg added must not weigh JPEG PSNR against lossless
    same_kind = [h for h in earlier if all((k in h) == (k in validation) for k in ("psnr_jpeg", "psnr_cut"))]
    eligible = [selection_score(h) for h in same_kind if allowed(h)]
    return not eligible or selection_score(validation) > max(eligible)
