"""Stage 2 (models): the colouriser of a plain gray: luma plus sparse colour hints in, BT.601 chroma out.

A U-Net after Zhang et al. 2017 (seed 002): the gray and the user's hints (their Cb/Cr and a mask)
go in at full resolution, with dense guesses of the colour spread from the hints (``guide``):
normalised convolution over boxes, and edge-aware spreads in bilateral grids (Chen et al. 2007),
where a hint reaches pixels that are near it *and* of similar gray. The bilateral spread alone
restores 30.6 dB from 100 random hints on `val`, against 25.6 dB for the box spread; the net then
corrects both. The output is chroma only: the luma stays the input gray (see
``colour.chroma_to_rgb``), so colourisation never changes the picture's tones.

Two later kinds of plane, each behind a config field so that older weights keep their planes bit
for bit. ``follow_edges``: the box spreads, whose cell-aligned squares showed as rectangles with
straight edges in the colours, become geodesic spreads along the gray (a domain-transform filter,
Gastal and Oliveira 2011: a hint reaches what it is connected to without crossing an edge), and the
bilateral grids share each hint among the grid nodes around it instead of snapping it to its cell.
``palette_planes``: a palette, colours present in the picture without positions (seed 002), read
at each pixel by luma: the palette colours whose own luma is near the pixel's gray, their mean
chroma and how near they are. Alone, with a photo's own 5 dominant colours, that guess restores
28.8 dB on `val` against 23.6 dB for the gray.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from invgray_cli.colour import rgb_to_chroma, rgb_to_luma
from invgray_cli.models.unet import UNet

SPREAD_SCALES = (8, 32)  # box sizes of the normalised-convolution hint maps
# bilateral grids: (cell size in pixels, gray-level bins, passes of a [1 2 1] blur along each axis)
BILATERAL_GRIDS = ((16, 16, 4), (32, 8, 3), (64, 8, 3))
GUIDE_CHANNELS = 4 + 3 * len(SPREAD_SCALES) + 3 * len(BILATERAL_GRIDS)
HINT_PLANES = slice(1, 4)  # in ``guide``'s planes: hint Cb, Cr, mask
# follow_edges: the geodesic spreads that take the boxes' places. In a flat region a hint's weight
# falls by about e^-1.4 over one scale (in pixels); a gray step of GEODESIC_GRAY_STEP (0-1) costs as
# much as a scale's distance, whatever the scale. Chosen by eye on synthetic edges and coffee.
GEODESIC_SCALES = (16.0, 64.0)
GEODESIC_GRAY_STEP = 0.1
GEODESIC_SMOOTHING = 1  # 3x3 box blurs of the gray before its steps are measured
GEODESIC_ROUNDS = 3  # rounds of a pass down and a pass across, each round at a smaller scale
GEODESIC_HALF_CONFIDENCE = 0.1  # a weight this part of a lone hint's own gives a confidence of 1/2
# palette_planes: widths (in gray, 0-1) of the luma match between a pixel and each palette colour
PALETTE_LUMA_WIDTHS = (0.03, 0.1)
PALETTE_CHANNELS = 3 * len(PALETTE_LUMA_WIDTHS)


@dataclass(frozen=True)
class ColorizerConfig:
    width: int = 32  # channels at full resolution; doubled at each of the levels below
    levels: int = 3  # 2x downsamplings
    bottom_blocks: int = 2  # residual blocks at the coarsest level
    follow_edges: bool = False  # hint spreads that stop at the gray's edges and have no cell-aligned shape
    palette_planes: bool = False  # the palette's planes follow the others (PALETTE_CHANNELS more)

    def to_dict(self) -> dict:
        """The config as its weights file's metadata has it: the later planes' fields only when set,
        so that a net without them writes (and older invgray reads) the same config as before."""
        fields = asdict(self)
        for later in ("follow_edges", "palette_planes"):
            if not fields[later]:
                del fields[later]
        return fields

    @property
    def guide_channels(self) -> int:
        """How many planes ``guide`` gives the net."""
        return GUIDE_CHANNELS + (PALETTE_CHANNELS if self.palette_planes else 0)


def spread_hints(hints: Tensor, mask: Tensor) -> Tensor:
    """Normalised convolution of the hint colours at each of SPREAD_SCALES: (B, 3*scales, H, W),
    per scale the mean hint Cb, Cr within the box and how much hint there was (its confidence)."""
    height, width = hints.shape[-2:]
    maps = []
    for size in SPREAD_SCALES:
        pooled_mask = F.avg_pool2d(mask, size, ceil_mode=True)
        pooled = F.avg_pool2d(hints * mask, size, ceil_mode=True) / pooled_mask.clamp(min=1e-6)
        confidence = (pooled_mask * size * size).clamp(max=1.0)
        coarse = torch.cat([pooled, confidence], dim=1)
        maps.append(F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False))
    return torch.cat(maps, dim=1)


def bilateral_spread(luma: Tensor, hints: Tensor, mask: Tensor, cell: int, bins: int, passes: int,
                     smooth_splat: bool = False) -> Tensor:
    """Hint chroma spread edge-aware: (B,3,H,W) of Cb, Cr and a confidence in [0, 1).

    Hints are splatted into a grid over (gray level, y, x), blurred there, and read back at each
    pixel's own position and gray level, so colour does not leak across strong edges. Each hint goes
    to its own cell and gray bin, or with ``smooth_splat`` to the 4 nearest grid nodes of its bin with
    tent weights, so that its spread is centred on it rather than on its cell.
    """
    batch, _, height, width = luma.shape
    grid_h, grid_w = -(-height // cell), -(-width // cell)
    if smooth_splat:
        grid = splat_tent(luma, hints, mask, cell, bins, grid_h, grid_w)
    else:
        grid = splat_nearest(luma, hints, mask, cell, bins, grid_h, grid_w)
    grid = grid.view(batch, 3, bins, grid_h, grid_w)
    kernel = grid.new_tensor((0.25, 0.5, 0.25))
    for _ in range(passes):
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = 3
            padding = [0, 0, 0]
            padding[axis] = 1
            grid = F.conv3d(grid, kernel.view(shape).expand(3, *shape[1:]), padding=tuple(padding), groups=3)
    xs = ((torch.arange(width, device=luma.device) + 0.5) / (grid_w * cell) * 2 - 1).view(1, 1, width)
    ys = ((torch.arange(height, device=luma.device) + 0.5) / (grid_h * cell) * 2 - 1).view(1, height, 1)
    where = torch.stack([xs.expand(batch, height, width), ys.expand(batch, height, width),
                         luma[:, 0].float() * 2 - 1], dim=-1).unsqueeze(1)
    spread = F.grid_sample(grid, where, mode="bilinear", align_corners=False)[:, :, 0]
    weight = spread[:, 2:3]
    # one hint a cell away weighs ~0.01-0.03 after the blur
    return torch.cat([spread[:, :2] / weight.clamp(min=1e-8), weight / (weight + 0.01)], dim=1)


def splat_nearest(luma: Tensor, hints: Tensor, mask: Tensor, cell: int, bins: int, grid_h: int, grid_w: int) -> Tensor:
    """(B, 3, bins * grid_h * grid_w): each pixel's hint Cb, Cr and mask added into its cell and gray bin."""
    batch, _, height, width = luma.shape
    rows = torch.arange(height, device=luma.device).div(cell, rounding_mode="floor").view(1, 1, height, 1)
    cols = torch.arange(width, device=luma.device).div(cell, rounding_mode="floor").view(1, 1, 1, width)
    levels = (luma * bins).floor().clamp(0, bins - 1).long()
    cells = ((levels * grid_h + rows) * grid_w + cols).flatten(2).expand(batch, 3, -1)
    values = torch.cat([hints * mask, mask], dim=1).flatten(2).float()
    return values.new_zeros(batch, 3, bins * grid_h * grid_w).scatter_add_(2, cells, values)


def splat_tent(luma: Tensor, hints: Tensor, mask: Tensor, cell: int, bins: int, grid_h: int, grid_w: int) -> Tensor:
    """As ``splat_nearest``, but each hint pixel is shared among the 4 grid nodes around its position
    with tent (bilinear) weights, the nodes where ``bilateral_spread`` reads them; its gray bin is
    its own. Only hint pixels are visited: a few hundred, not every pixel."""
    batch = luma.shape[0]
    nodes = bins * grid_h * grid_w
    grid = torch.zeros(batch * nodes, 3, device=luma.device)
    image, y, x = (mask[:, 0] > 0).nonzero(as_tuple=True)
    values = torch.cat([hints[image, :, y, x] * mask[image, :, y, x], mask[image, :, y, x]], dim=1).float()
    level = (luma[image, 0, y, x] * bins).floor().clamp(0, bins - 1).long()
    rows, cols = (y + 0.5) / cell - 0.5, (x + 0.5) / cell - 0.5  # in node units
    for below, right in ((0, 0), (0, 1), (1, 0), (1, 1)):
        row, col = rows.floor() + below, cols.floor() + right
        weight = (1 - (rows - row).abs()) * (1 - (cols - col).abs())
        row, col = row.clamp(0, grid_h - 1).long(), col.clamp(0, grid_w - 1).long()
        index = ((image * bins + level) * grid_h + row) * grid_w + col
        grid.index_add_(0, index, values * weight[:, None])
    return grid.view(batch, nodes, 3).permute(0, 2, 1)


def geodesic_spread(luma: Tensor, hints: Tensor, mask: Tensor, scales: tuple[float, ...] = GEODESIC_SCALES) -> Tensor:
    """Hint chroma spread along the gray: (B, 3*scales, H, W), per scale Cb, Cr and a confidence in [0, 1).

    Recursive filters after the domain transform (Gastal and Oliveira 2011): passes down and across
    the image carry each hint's weight from pixel to pixel, less of it the farther *and* the larger
    the gray step between the two, so a hint reaches what it is connected to and stops at the gray's
    edges. Weight held back by an edge (or the picture's border) is lost, not handed back to the
    near side, so the confidence, the weight arriving against what a lone hint keeps at its own
    pixel in a flat picture, is high near a hint and across smooth regions and low behind an edge.
    In a flat region a spread falls off alike on every side of its hint: no cells, no straight edges.
    """
    batch, _, height, width = luma.shape
    count = len(scales)
    values = torch.cat([hints * mask, mask], dim=1).float()
    # rows layout (H, 3, W, B, scales): a pass down the image updates one contiguous row at a time;
    # its plain 2-D transpose, the columns layout (3, W, B, scales, H), serves the passes across
    rows = values.permute(2, 1, 3, 0).unsqueeze(4).expand(height, 3, width, batch, count).contiguous()
    gray = smooth_gray(luma)[:, 0]
    step_across = F.pad((gray[..., 1:] - gray[..., :-1]).abs(), (1, 0)).unsqueeze(1)  # (B,1,H,W), into each pixel
    step_down = F.pad((gray[..., 1:, :] - gray[..., :-1, :]).abs(), (0, 0, 1, 0)).unsqueeze(1)
    scale = gray.new_tensor(scales).view(1, count, 1, 1)
    for shrink in domain_transform_shrinks(GEODESIC_ROUNDS):
        gain = flat_gain(scale.flatten(), shrink)
        down = carry_weights(step_down, scale, shrink)  # (B, scales, H, W)
        recursive_pass(rows, down.permute(2, 3, 0, 1).unsqueeze(1).contiguous(), gain, dim=0)
        columns = rows.view(height, -1).t().contiguous().view(3, width, batch, count, height)
        across = carry_weights(step_across, scale, shrink)
        recursive_pass(columns, across.permute(3, 0, 1, 2).unsqueeze(0).contiguous(), gain.view(count, 1), dim=1)
        rows = columns.view(-1, height).t().contiguous().view(height, 3, width, batch, count)
    spread = rows.permute(3, 4, 1, 0, 2)  # (B, scales, 3, H, W)
    weight = spread[:, :, 2:]
    peaks = gray.new_tensor([lone_hint_peak(s) for s in scales]).view(1, count, 1, 1, 1)
    confidence = weight / (weight + GEODESIC_HALF_CONFIDENCE * peaks)
    planes = torch.cat([spread[:, :, :2] / weight.clamp(min=1e-30), confidence], dim=2)
    return planes.reshape(batch, 3 * count, height, width)


def smooth_gray(luma: Tensor, passes: int = GEODESIC_SMOOTHING) -> Tensor:
    """The gray blurred by ``passes`` 3x3 box filters (about a Gaussian of 0.8 px per pass): fine
    texture and noise then cost the spreads less, while an edge keeps its whole gray step."""
    gray = luma.float()
    for _ in range(passes):
        gray = F.avg_pool2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return gray


def domain_transform_shrinks(rounds: int) -> list[float]:
    """Each round's scale as a share of the whole (Gastal and Oliveira's eq. 14): the rounds' variances
    add up to the scale's, the first round the widest."""
    return [math.sqrt(3) * 2 ** (rounds - round_ - 1) / math.sqrt(4**rounds - 1) for round_ in range(rounds)]


def carry_weights(step: Tensor, scale: Tensor, shrink: float) -> Tensor:
    """How much of a pixel's weight carries into its neighbour in one round: exp(-sqrt 2 * distance /
    round scale), the distance one pixel plus the gray step between them weighed by
    ``scale / GEODESIC_GRAY_STEP``."""
    distance = 1.0 + scale / GEODESIC_GRAY_STEP * step
    return torch.exp(-math.sqrt(2.0) / (scale * shrink) * distance)


def flat_gain(scale: Tensor, shrink: float) -> Tensor:
    """(1 - a) / (1 + a) for a flat region's carry a: one pass then keeps a flat picture flat, far from
    its border."""
    flat = torch.exp(-math.sqrt(2.0) / (scale * shrink))
    return (1.0 - flat) / (1.0 + flat)


def recursive_pass(values: Tensor, carry: Tensor, gain: Tensor, dim: int = 0) -> None:
    """In place along ``dim``: each value becomes ``gain`` times the sum of all values along the line,
    each weighed by the product of the carries between it and here (``carry``, broadcast against
    ``values``; its entry at index n joins n - 1 and n): one sweep forward, one backward."""
    length = values.shape[dim]
    if length < 2:
        values.mul_(gain)
        return
    ahead = torch.zeros_like(values)  # what reaches each index from the indices before it
    torch.mul(carry.narrow(dim, 1, length - 1), values.narrow(dim, 0, length - 1), out=ahead.narrow(dim, 1, length - 1))
    for n in range(2, length):
        ahead.select(dim, n).addcmul_(carry.select(dim, n), ahead.select(dim, n - 1))
    for n in range(length - 2, -1, -1):
        values.select(dim, n).addcmul_(carry.select(dim, n + 1), values.select(dim, n + 1))
    values.add_(ahead).mul_(gain)


@functools.lru_cache(maxsize=16)
def lone_hint_peak(scale: float) -> float:
    """The weight a lone hint keeps at its own pixel after ``geodesic_spread``'s passes in a flat
    region far from the border (the 1-D peak squared: the passes along the two axes act apart)."""
    radius = math.ceil(12 * scale)
    line = torch.zeros(2 * radius + 1, 1, dtype=torch.float64)
    line[radius] = 1.0
    for shrink in domain_transform_shrinks(GEODESIC_ROUNDS):
        flat = math.exp(-math.sqrt(2.0) / (scale * shrink))
        recursive_pass(line, torch.full_like(line, flat), line.new_tensor((1.0 - flat) / (1.0 + flat)))
    return float(line[radius]) ** 2


def palette_guess(luma: Tensor, palette: Tensor | None) -> Tensor:
    """A palette read by luma: (B, PALETTE_CHANNELS, H, W), per width of PALETTE_LUMA_WIDTHS the mean
    Cb, Cr of the palette colours weighted by how near their luma is to the pixel's gray, and the
    nearest one's weight (1 where a palette colour has the pixel's very gray; 0 with no palette).

    ``palette``: (B, K, 4), each colour's R, G, B in [0, 1] and 1 (or 0 for an empty slot); None or
    K = 0 for none.
    """
    batch, _, height, width = luma.shape
    if palette is None or palette.shape[1] == 0:
        return luma.new_zeros(batch, PALETTE_CHANNELS, height, width)
    colours = palette[..., :3].transpose(1, 2).unsqueeze(-1).to(luma)  # (B, 3, K, 1), as an image
    colour_luma = rgb_to_luma(colours)[:, 0, :, 0]  # (B, K)
    colour_chroma = rgb_to_chroma(colours)[..., 0]  # (B, 2, K)
    present = palette[..., 3].to(luma)  # (B, K)

    def gap(k: int) -> Tensor:  # (B,1,H,W): squared luma distance to colour k; an empty slot is far off
        far = (1.0 - present[:, k]) * 1e4
        return (luma - colour_luma[:, k].view(batch, 1, 1, 1)) ** 2 + far.view(batch, 1, 1, 1)

    nearest = functools.reduce(torch.minimum, (gap(k) for k in range(palette.shape[1])))
    totals = [torch.zeros_like(luma) for _ in PALETTE_LUMA_WIDTHS]
    chromas = [luma.new_zeros(batch, 2, height, width) for _ in PALETTE_LUMA_WIDTHS]
    for k in range(palette.shape[1]):
        behind = nearest - gap(k)  # <= 0: weights relative to the nearest colour's cannot all underflow
        for total, chroma, luma_width in zip(totals, chromas, PALETTE_LUMA_WIDTHS):
            weight = torch.exp(behind / (2 * luma_width**2)) * present[:, k].view(batch, 1, 1, 1)
            total += weight
            chroma += weight * colour_chroma[:, :, k].view(batch, 2, 1, 1)
    planes = []
    for total, chroma, luma_width in zip(totals, chromas, PALETTE_LUMA_WIDTHS):
        planes += [chroma / total.clamp(min=1e-12), torch.exp(-nearest / (2 * luma_width**2))]
    return torch.cat(planes, dim=1)


def guide(luma: Tensor, hints: Tensor, mask: Tensor, palette: Tensor | None = None,
          config: ColorizerConfig = ColorizerConfig()) -> Tensor:
    """The net's input planes (B, config.guide_channels, H, W): the gray, the hints, their spreads,
    and with ``config.palette_planes`` the palette's (zero without a palette).

    The spreads reach far (a 64-px grid cell blurred thrice), so this runs on the whole image
    even when the net itself runs in tiles.
    """
    near = geodesic_spread(luma, hints, mask) if config.follow_edges else spread_hints(hints, mask)
    planes = [luma - 0.5, hints * mask, mask, near]
    planes += [bilateral_spread(luma, hints, mask, *grid, smooth_splat=config.follow_edges) for grid in BILATERAL_GRIDS]
    if config.palette_planes:
        planes.append(palette_guess(luma, palette))
    return torch.cat(planes, dim=1)


class Colorizer(UNet):
    """luma (B,1,H,W) in [0,1], hint chroma (B,2,H,W), hint mask (B,1,H,W) and, for a net with
    palette planes, a palette (B,K,4) (see ``palette_guess``) -> chroma (B,2,H,W).

    ``forward`` is ``planes`` then ``body``; the codec calls them apart to tile the body.
    """

    def __init__(self, config: ColorizerConfig = ColorizerConfig()) -> None:
        super().__init__(config.guide_channels, 2, config.width, config.levels, config.bottom_blocks)
        self.config = config

    @property
    def takes_palette(self) -> bool:
        """Whether ``forward`` reads a palette (a net with palette planes)."""
        return self.config.palette_planes

    def forward(self, luma: Tensor, hints: Tensor, mask: Tensor, palette: Tensor | None = None) -> Tensor:
        return self.body(self.planes(luma, hints, mask, palette))

    def planes(self, luma: Tensor, hints: Tensor, mask: Tensor, palette: Tensor | None = None) -> Tensor:
        """``guide`` with this net's config."""
        return guide(luma, hints, mask, palette, self.config)

    def body(self, planes: Tensor) -> Tensor:
        """``guide``'s planes -> chroma; where a hint is given, the colour is the hint's."""
        hints, mask = planes[:, HINT_PLANES].split((2, 1), dim=1)
        return torch.where(mask > 0, hints, self.run(planes))
