"""Stage train: one step's losses for the codec nets (paper Table 1), the crops made as the codec path
makes grays: partial border blocks re-made as the tiler pads, a JPEG between the nets, lines cut off
after encoding as a crop would.
"""
from __future__ import annotations

from types import EllipsisType

import torch
from torch import Tensor

from invgray_cli.codec.frames import Frame, into_frame
from invgray_cli.codec.tiling import crop_padded
from invgray_cli.colour import rgb_to_luma
from invgray_cli.models.net import InvertibleGray
from invgray_cli.train import losses
from invgray_cli.train.jpeg import jpeg_gray


def remake_border(image: Tensor, cut: tuple[int, int]) -> Tensor:
    """Drop the last ``cut`` = (rows, columns) and mirror them back as the tiler pads: what the codec
    does to an image whose sides are not multiples of the block size."""
    height, width = image.shape[-2:]
    if not any(cut):
        return image
    return crop_padded(image[..., : height - cut[0], : width - cut[1]], 0, height, 0, width)


def received_gray(gray: Tensor, jpeg_qualities: list[int | None] | None) -> Tensor:
    """What decode reads: each crop's gray as stored, after a JPEG at its quality where one is given."""
    if not jpeg_qualities or not any(jpeg_qualities):
        return gray
    saved = jpeg_gray(gray, [q or 100 for q in jpeg_qualities])
    as_jpeg = torch.tensor([q is not None for q in jpeg_qualities], device=gray.device).view(-1, 1, 1, 1)
    return torch.where(as_jpeg, saved, gray)


def cut_after_encoding(gray: Tensor, cut: tuple[int, int, int, int],
                       divisibility: int) -> tuple[Tensor, tuple[int, int], tuple[EllipsisType, slice, slice]]:
    """A gray cut by ``cut`` = (top, left, bottom, right) lines after encoding (each less than two
    blocks), brought onto its grid as decode does: its top and left padded back to the grid
    (:func:`grid.into_frame`), its bottom and right mirrored to a whole block as the tiler pads.
    Returns it, the (rows, columns) of whole blocks the top and left cuts took (its first line is
    the encoded gray's line that far in), and the index of its lines that are real."""
    if not all(0 <= lines < 2 * divisibility for lines in cut):
        raise ValueError(f"cut {cut}: each side's lines must be less than two blocks of {divisibility}")
    top, left, bottom, right = cut
    height, width = gray.shape[-2:]
    kept = gray[..., top : height - bottom, left : width - right]
    framed = into_frame(kept, Frame(0, top % divisibility, left % divisibility), divisibility)
    rows, columns = framed.shape[-2:]
    whole = crop_padded(framed, 0, -(-rows // divisibility) * divisibility, 0, -(-columns // divisibility) * divisibility)
    return whole, (top - top % divisibility, left - left % divisibility), (..., slice(top % divisibility, rows),
                                                                          slice(left % divisibility, columns))


def near_cut_edges(size: tuple[int, int], cut: tuple[int, int, int, int], band: int,
                   scored: tuple[bool, bool, bool, bool] | None = None) -> Tensor:
    """(H,W) bool: the real lines (those ``cut`` = (top, left, bottom, right) lines from the sides
    leave) within ``band`` px of a ``scored`` edge (top, left, bottom, right; default: the top and
    the left when lines are cut there)."""
    top, left, bottom, right = cut
    height, width = size
    scored = scored if scored is not None else (top > 0, left > 0, False, False)
    rows = torch.arange(height)[:, None]
    columns = torch.arange(width)[None, :]
    real = (rows >= top) & (rows < height - bottom) & (columns >= left) & (columns < width - right)
    near = torch.zeros(height, width, dtype=torch.bool)
    for side_scored, lines_near in zip(scored, (rows < top + band, columns < left + band,
                                                rows >= height - bottom - band, columns >= width - right - band)):
        if side_scored:
            near = near | lines_near
    return real & near


def compute_losses(model: InvertibleGray, rgb: Tensor, weights: losses.LossWeights, quantiser: str,
                   vgg: torch.nn.Module | None = None, border_cut: tuple[int, int] = (0, 0),
                   jpeg_qualities: list[int | None] | None = None,
                   edge_cut: tuple[int, int, int, int] = (0, 0, 0, 0),
                   edge_band: int = 0, edge_all_cuts: bool = False,
                   strengths: Tensor | None = None, sync: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """The weighted loss and its terms. ``border_cut`` trains the partial edge blocks as the codec
    path makes them: the gray is stored at the image's size and its padding re-made at decode.
    ``jpeg_qualities`` (one per crop, None = lossless) put a JPEG round trip between the nets.
    ``edge_cut`` (top, left, bottom, right) cuts the stored gray as a crop after encoding would, and
    scores the colour of the lines left; with ``edge_band`` only those within that many px of a cut
    top or left edge (with ``edge_all_cuts`` of any cut edge). ``strengths`` (B,) scale each crop's
    residual (gray - luma) before it is stored, as the gray floor's guard does; the colour is still
    scored against the photo, and the gray terms see the encoder's own gray. ``sync`` (B,1,H,W), the
    sync pattern in gray units, is added to the gray the gray terms judge (not to what is decoded:
    decode takes it out exactly)."""
    rgb = remake_border(rgb, border_cut)
    gray = model.encode(rgb)
    luma = rgb_to_luma(rgb)
    written = gray if strengths is None else luma + strengths.view(-1, 1, 1, 1) * (gray - luma)
    stored = received_gray(losses.quantise(written, quantiser), jpeg_qualities)
    inside = (..., slice(0, rgb.shape[-2] - border_cut[0]), slice(0, rgb.shape[-1] - border_cut[1]))
    top, left, bottom, right = edge_cut
    cut = (top, left, max(bottom, border_cut[0]), max(right, border_cut[1]))
    target = rgb
    if any(edge_cut):  # its bottom and right lines are mirrored back: as border_cut's, or more
        stored, (shift_y, shift_x), inside = cut_after_encoding(stored, cut, model.divisibility)
        target = rgb[..., shift_y : shift_y + stored.shape[-2], shift_x : shift_x + stored.shape[-1]]
    else:
        stored = remake_border(stored, border_cut)
    restored = model.decode(stored)
    if edge_band and any(edge_cut):
        height, width = target.shape[-2:]
        beyond = (inside[1].start, inside[2].start, height - inside[1].stop, width - inside[2].stop)
        scored = tuple(lines > 0 for lines in edge_cut) if edge_all_cuts else None
        near = near_cut_edges((height, width), beyond, edge_band, scored).to(rgb.device)
        invertibility = ((restored - target) ** 2).mean(dim=1)[:, near].mean()
    else:
        invertibility = torch.mean((restored[inside] - target[inside]) ** 2)
    # the gray terms see the whole crop, its re-made border too (a few mirrored lines; the shipped
    # weights were trained so)
    shown = gray if sync is None else gray + sync
    lightness = losses.lightness_loss(shown, luma)
    contrast = vgg(shown, rgb) if vgg is not None else losses.contrast_loss(shown, luma)
    local_structure = losses.local_structure_loss(shown, luma)
    structure_windows = losses.structure_map(shown, luma)
    structure = structure_windows.mean(dim=(1, 2, 3))
    structure_hinge = torch.relu(weights.structure_target - structure).mean()
    window_hinge = losses.window_structure_hinge(structure_windows, weights.window_target)
    quantisation = losses.quantisation_loss(gray)
    conformity = (lightness + weights.contrast * contrast + weights.local_structure * local_structure
                  + weights.structure_hinge * structure_hinge + weights.window_hinge * window_hinge)
    total = weights.invertibility * invertibility + weights.conformity * conformity + weights.quantisation * quantisation
    terms = {"total": total, "mse": invertibility, "light": lightness, "contrast": contrast,
             "locvar": local_structure, "struct": structure.mean(), "window": window_hinge,
             "quant": quantisation}
    return total, {k: float(v.detach()) for k, v in terms.items()}
