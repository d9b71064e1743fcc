"""Stage 2 (models): a random-weight rebuild of the paper's network (Xia et al. 2018, Fig. 2), for
speed comparisons.

Only its cost matters here, not its output: ``invgray bench --paper`` times it beside ours
in the same run, and the issue's speed target is a ratio against it.

Layout (paper Sec. 4, with the widths and kernels that the figure shows but the text does
not; we took them from the authors' public TensorFlow release, whose layer names spell them:
k3n64s1, k3n128s2, k3n256s2, ...). All convolutions are 3x3 unless noted, "same" padded.

Encoder (RGB -> gray), "two down-convolution blocks, two up-convolution blocks, eight
residual blocks and two flat convolution layers":
    flat conv 3->64
    2 residual blocks, 64 channels, full resolution
    down block 1: conv 64->128 stride 2, conv 128->128 + ReLU       (1/2 resolution, skip A)
    down block 2: conv 128->256 stride 2, conv 256->256 + ReLU      (1/4 resolution)
    4 residual blocks, 256 channels, 1/4 resolution
    up block 1: nearest x2, conv 256->128, conv 128->128 + ReLU, + skip A
    up block 2: nearest x2, conv 128->64, conv 64->64 + ReLU, + full-resolution features
    2 residual blocks, 64 channels, full resolution
    flat conv 64->1, tanh
Decoder (gray -> RGB), "eight residual blocks and one flat convolution layer", all at
full resolution: conv 1->64, 8 residual blocks of 64 channels, conv 64->256, 1x1 conv 256->3, tanh.
A residual block is conv, ReLU, conv, plus its input.

Assumptions: the up-convolutions are nearest-neighbour upsampling followed by a convolution
(as in the authors' release; a 3x3 stride-2 transposed convolution would cost the same
up to a constant factor), no batch norm (the release leaves it out). Cost per 256x256 image
(FLOP = 2 x multiply-accumulate of the convolutions, counted by
``torch.utils.flop_counter``): encode 121.1 GFLOP + decode 96.8 GFLOP = 217.9 GFLOP,
the "about 220 GFLOP" of the issue. Run ``python -m invgray_cli.models.paper`` to print it.
"""
from __future__ import annotations

import copy
import importlib.util
import warnings

import torch
from torch import Tensor, nn
from torch.nn import functional as F

DIVISIBILITY = 4  # two stride-2 stages


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = _conv(width, width)
        self.conv2 = _conv(width, width)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _residual_stack(width: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*[_ResidualBlock(width) for _ in range(blocks)])


class _Down(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.reduce = _conv(cin, cout, stride=2)
        self.conv = _conv(cout, cout)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(self.reduce(x)))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.expand = _conv(cin, cout)
        self.conv = _conv(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.conv(self.expand(x))) + skip


class PaperEncoder(nn.Module):
    """(B,3,H,W) in [0,1] -> (B,1,H,W) in [0,1]; H and W multiples of 4."""

    def __init__(self) -> None:
        super().__init__()
        self.head = _conv(3, 64)
        self.pre = _residual_stack(64, 2)
        self.down1 = _Down(64, 128)
        self.down2 = _Down(128, 256)
        self.middle = _residual_stack(256, 4)
        self.up1 = _Up(256, 128)
        self.up2 = _Up(128, 64)
        self.post = _residual_stack(64, 2)
        self.tail = _conv(64, 1)

    def forward(self, rgb: Tensor) -> Tensor:
        full = self.pre(self.head(rgb * 2 - 1))
        half = self.down1(full)
        x = self.middle(self.down2(half))
        x = self.up2(self.up1(x, half), full)
        return torch.tanh(self.tail(self.post(x))) * 0.5 + 0.5


def can_prepack(device: torch.device) -> bool:
    """Whether ``prepacked`` can run on ``device``: a CPU whose torch has oneDNN, turned on."""
    mkldnn = torch.backends.mkldnn
    return (device.type == "cpu" and mkldnn.is_available() and mkldnn.enabled
            and importlib.util.find_spec("torch.utils.mkldnn") is not None)


def prepacked(convs: nn.Module) -> nn.Module:
    """A copy of ``convs`` (convolutions, ReLUs, residual sums) for CPU fp32 inference, its
    activations kept in oneDNN's blocked layout and its weights reordered once rather than at every
    convolution: the rebuild's decoder at its fastest (8.1 s instead of 11.9 at 1024² on a 2-core
    CPU). invgray's own decoder keeps its layout: prepacked it was 5 % faster, but not bit for bit
    on small single inputs, where torch's default path leaves oneDNN out."""
    with warnings.catch_warnings():  # its modules are TorchScript's, which torch now calls deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils import mkldnn

        return _Prepacked(mkldnn.to_mkldnn(copy.deepcopy(convs)))


class _Prepacked(nn.Module):
    def __init__(self, convs: nn.Module) -> None:
        super().__init__()
        self.convs = convs

    def forward(self, x: Tensor) -> Tensor:
        return self.convs(x.to_mkldnn()).to_dense()


class PaperDecoder(nn.Module):
    """(B,1,H,W) in [0,1] -> (B,3,H,W) in [0,1]; fully convolutional at full resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.Sequential(_conv(1, 64), _residual_stack(64, 8), _conv(64, 256), _conv(256, 3, kernel=1))

    def forward(self, gray: Tensor, convs: nn.Module | None = None) -> Tensor:
        """``convs``: its convolutions to run instead (their ``prepacked`` copy)."""
        return torch.tanh((self.convs if convs is None else convs)(gray * 2 - 1)) * 0.5 + 0.5


def paper_flops(h: int, w: int) -> dict[str, int]:
    """FLOP (2 x MAC) of one HxW image through the paper's encoder, decoder and both.

    Counted by torch's FlopCounterMode on meta tensors, so nothing is computed or allocated.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if h % DIVISIBILITY or w % DIVISIBILITY or h <= 0 or w <= 0:
        raise ValueError(f"height and width must be positive multiples of {DIVISIBILITY}, got {h}x{w}")
    counts = {}
    for name, net, channels in (("encode", PaperEncoder(), 3), ("decode", PaperDecoder(), 1)):
        net = net.to("meta")
        with FlopCounterMode(display=False) as counter:
            net(torch.empty(1, channels, h, w, device="meta"))
        counts[name] = int(counter.get_total_flops())
    counts["total"] = counts["encode"] + counts["decode"]
    return counts


if __name__ == "__main__":
    for size in (256, 512, 1024):
        f = paper_flops(size, size)
        print(
            f"{size}x{size}: encode {f['encode'] / 1e9:.1f} GFLOP, decode {f['decode'] / 1e9:.1f} GFLOP, "
            f"total {f['total'] / 1e9:.1f} GFLOP"
        )
