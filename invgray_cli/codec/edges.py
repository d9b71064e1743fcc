"""Stage 3 (codec): decoding a gray in its frame: on the code's grid after a crop, mirror or turn, with the lines
beside a cut edge decoded again by the edge decoder (or, without one, the cut blocks mended).
"""
from __future__ import annotations

import numpy as np
import torch

from invgray_cli.codec.frames import Frame, into_frame, out_of_frame
from invgray_cli.codec.nets import Codec, as_tensor, check_array
from invgray_cli.codec.tiling import ProgressFn
from invgray_cli.colour import rgb_to_luma
from invgray_cli.models.net import EdgeDecoder

# Lines beside a crop's cut edge that the edge decoder re-decodes: the band the shipped
# edge decoders were trained on (`invgray train --edge-band`); beyond it the model's own decoder errs no more.
EDGE_BAND = 20


def decode_plain(codec: Codec, gray: np.ndarray, on_tile: ProgressFn | None = None) -> np.ndarray:
    """uint8 HxW gray -> uint8 HxWx3 by the net alone, the gray taken as it comes."""
    check_array(gray, 1, "gray")
    return codec.run_decoder(as_tensor(gray)[None, None], on_tile)[0]


def decode_in_frame(codec: Codec, gray: np.ndarray, frame: Frame, on_tile: ProgressFn | None = None) -> np.ndarray:
    """The colour of a uint8 HxW gray brought onto its grid by ``frame``, back in the gray's own
    frame. Where the model has an edge decoder, it decodes the lines beside a cut top or left edge
    off the grid again, and beside any cut edge if it serves every cut."""
    edge = codec.edge_decoder_for_cuts() if frame.is_cut else None  # loaded only when an edge was cut
    if frame.is_identity:
        return decode_plain(codec, gray, on_tile)
    writable = torch.from_numpy(np.array(gray))  # gray may be read-only or reversed
    framed = into_frame(writable, frame, codec.model.divisibility).contiguous().numpy()
    colour = torch.from_numpy(decode_plain(codec, framed, on_tile)).permute(2, 0, 1).float()
    if edge is None:
        colour = mend_cut_blocks(colour, frame, codec.model.divisibility)
    else:
        colour = decode_edges(codec, colour, framed, frame, edge)
    return np.ascontiguousarray(out_of_frame(colour, frame).round().byte().permute(1, 2, 0).numpy())


def decode_edges(codec: Codec, colour: torch.Tensor, framed: np.ndarray, frame: Frame, edge: EdgeDecoder) -> torch.Tensor:
    """(3,H,W) colour of the ``framed`` gray with the lines within EDGE_BAND px of a cut top or
    left edge off the grid (the padded lines before it too), and when ``edge`` serves every cut
    (``all_cuts``) of any cut edge, decoded again by ``edge`` from strips that reach its
    receptive field beyond them. The model's decoder errs there for ~16 px: it learned the
    encoder's own edges, and a crop's edge lacks what the encoder saw beyond it."""
    reach = edge.net.decoder_receptive_field
    block = codec.model.divisibility
    top, left, bottom, right = frame.cut_edges
    for axis, offset, start_cut, end_cut in ((1, frame.offset_y, top, bottom), (2, frame.offset_x, left, right)):
        lines = colour.shape[axis]
        if offset or (start_cut and edge.all_cuts):
            strip_end = min(lines, offset + EDGE_BAND + reach)
            redone = _decode_lines(codec, framed, axis, 0, strip_end, edge).narrow(axis, 0, min(offset + EDGE_BAND, strip_end))
            colour = torch.cat([redone, colour.narrow(axis, redone.shape[axis], lines - redone.shape[axis])], dim=axis)
        if end_cut and edge.all_cuts:
            strip_start = max(lines - EDGE_BAND - reach, 0) // block * block  # on the grid
            kept = max(lines - EDGE_BAND, 0)
            redone = _decode_lines(codec, framed, axis, strip_start, lines, edge).narrow(axis, kept - strip_start, lines - kept)
            colour = torch.cat([colour.narrow(axis, 0, kept), redone], dim=axis)
    return colour


def _decode_lines(codec: Codec, framed: np.ndarray, axis: int, start: int, end: int, edge: EdgeDecoder) -> torch.Tensor:
    """(3, ...) colour the edge decoder gives lines ``start:end`` of the framed gray along ``axis`` (1: rows)."""
    strip = framed[start:end] if axis == 1 else framed[:, start:end]
    decoded = codec.run_decoder(as_tensor(np.ascontiguousarray(strip))[None, None], None, edge.net)[0]
    return torch.from_numpy(decoded).permute(2, 0, 1).float()


def mend_cut_blocks(colour: torch.Tensor, frame: Frame, divisibility: int) -> torch.Tensor:
    """(3,H,W) colour decoded in ``frame``: the real lines of the blocks the crop cut (the rest of
    each is padding copied from the next block, so their chroma is unreliable) take the chroma of
    the first whole block's first line, keeping their own luma."""
    for axis, offset in ((1, frame.offset_y), (2, frame.offset_x)):
        if offset == 0 or colour.shape[axis] <= divisibility:
            continue
        cut = colour.narrow(axis, offset, divisibility - offset)
        whole = colour.narrow(axis, divisibility, 1)
        luma_change = rgb_to_luma(cut[None])[0] - rgb_to_luma(whole[None])[0]
        mended = (whole + luma_change).clamp(0.0, 255.0)
        colour = torch.cat([colour.narrow(axis, 0, offset), mended,
                            colour.narrow(axis, divisibility, colour.shape[axis] - divisibility)], dim=axis)
    return colour
