"""Hints that follow the picture (issue 25, item 4): with ``follow_edges`` a hint's spread stops at the
gray's edges and has no cell-aligned shape; the box spread it replaces fails both checks."""
from __future__ import annotations

import pytest
import torch

from invgray_cli.colorize.session import Hint, hint_planes
from invgray_cli.models.colorizer import (GEODESIC_HALF_CONFIDENCE, GEODESIC_SCALES, SPREAD_SCALES, ColorizerConfig,
                                          bilateral_spread, geodesic_spread, guide, spread_hints)

RED = (220, 40, 30)


def confidences(spread: torch.Tensor) -> torch.Tensor:
    """(scales, H, W): the confidence planes of a spread of one image (Cb, Cr, confidence per scale)."""
    return spread[0, 2::3]


def two_regions(device: str = "cpu", height: int = 96, width: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """A dark and a light region split by a strong slanted edge (gray 64 | 191), and the light side's mask."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    light = xs + 0.5 * ys >= 80
    luma = torch.where(light, 191 / 255, 64 / 255).float().view(1, 1, height, width)
    return luma.to(device), light


def leak(confidence: torch.Tensor, other_side: torch.Tensor) -> float:
    """The most confidence any spread plane gives a pixel beyond the edge."""
    return float(confidence[:, other_side].max())


def asymmetry(confidence: torch.Tensor) -> float:
    """How far the planes of a hint at the centre of a square picture are from mirror images of
    themselves left-right, up-down and across the diagonal: 0 for a spread centred on its hint that
    falls off alike on every side, large for one shaped by a grid of cells."""
    return max(float((confidence - confidence.flip(-1)).abs().max()), float((confidence - confidence.flip(-2)).abs().max()),
               float((confidence - confidence.transpose(-1, -2)).abs().max()))


def steepest_step(confidence: torch.Tensor) -> float:
    """The largest confidence change between two neighbouring pixels: a straight edge in the spread."""
    return max(float(confidence.diff(dim=-1).abs().max()), float(confidence.diff(dim=-2).abs().max()))


def test_a_hint_stops_at_the_gray_s_edge(device):
    luma, light = two_regions(device)
    hints, mask = hint_planes([Hint(40, 48, RED)], *light.shape)
    hints, mask = hints.to(device), mask.to(device)
    followed = geodesic_spread(luma, hints, mask)
    assert followed.device.type == device
    near = confidences(followed).cpu()
    assert leak(near, light) < 0.01  # beyond the edge: nothing
    assert float(near[:, 48, 30].min()) > 0.5 and float(near[-1, 10:86, 5:30].min()) > 0.1  # on its own side: reached
    assert torch.allclose(followed[0, :2, 48, 30].cpu(), hints[0, :, 48, 40].cpu(), atol=1e-4)  # the hint's colour
    boxed = confidences(spread_hints(hints, mask)).cpu()  # what hints_v1's box spreads do: straight across it
    assert leak(boxed, light) > 0.5


def test_a_hint_spreads_alike_on_every_side_in_a_flat_region():
    size, centre = 97, 48
    luma = torch.full((1, 1, size, size), 0.5)
    hints, mask = hint_planes([Hint(centre, centre, RED)], size, size)
    followed = confidences(geodesic_spread(luma, hints, mask))
    assert asymmetry(followed) < 1e-4 and steepest_step(followed) < 0.05
    for plane in followed:  # its peak is the hint itself, with about a lone hint's confidence there
        assert divmod(int(plane.argmax()), size) == (centre, centre)  # (a little less: the border takes some)
        assert float(plane[centre, centre]) == pytest.approx(1 / (1 + GEODESIC_HALF_CONFIDENCE), abs=0.01)
    boxed = confidences(spread_hints(hints, mask))  # cell-aligned squares with bilinear ramps between
    assert asymmetry(boxed) > 0.3 and steepest_step(boxed) > 0.1
    assert len(GEODESIC_SCALES) == len(SPREAD_SCALES)  # the geodesic planes take the boxes' places


def test_the_bilateral_grid_spread_is_centred_on_its_hint_not_its_cell(device):
    size, at = 256, 116  # a hint 3.5 px off the centre of its 16-px cell
    luma = torch.full((1, 1, size, size), 0.5, device=device)
    hints, mask = (plane.to(device) for plane in hint_planes([Hint(at, at, RED)], size, size))

    def centre(smooth: bool) -> float:
        row = bilateral_spread(luma, hints, mask, cell=16, bins=16, passes=4, smooth_splat=smooth)[0, 2, at].cpu()
        return float((row * torch.arange(size)).sum() / row.sum())

    assert abs(centre(True) - at) < 1.0 and abs(centre(False) - at) > 2.5


def test_follow_edges_changes_only_the_spreads():
    torch.manual_seed(0)
    luma = torch.round(torch.rand(1, 1, 40, 56) * 255) / 255
    hints, mask = torch.rand(1, 2, 40, 56) - 0.5, (torch.rand(1, 1, 40, 56) < 0.03).float()
    old, new = guide(luma, hints, mask), guide(luma, hints, mask, config=ColorizerConfig(follow_edges=True))
    assert old.shape == new.shape and torch.equal(old[:, :4], new[:, :4])
    assert torch.equal(new[:, 4:10], geodesic_spread(luma, hints, mask))
    nothing = geodesic_spread(luma, hints, torch.zeros_like(mask))
    assert float(nothing.abs().max()) == 0.0 and bool(torch.isfinite(new).all())
