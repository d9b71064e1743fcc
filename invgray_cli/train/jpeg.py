"""Stage train: a differentiable baseline JPEG of a one-channel gray, for training with JPEG in the loop.

A gray JPEG has one component and no chroma subsampling, so its loss is all in one place:
8x8 blocks, DCT (JPEG's is the orthonormal DCT-II), each coefficient rounded to a multiple of
the quality-scaled table entry, inverse DCT, 8-bit rounding. The roundings pass gradients
straight through. Pillow (libjpeg) pads partial blocks itself; training crops are multiples of 8.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

BLOCK = 8
# ITU-T T.81 Annex K, table K.1: the luminance quantisation table libjpeg scales by quality
LUMINANCE_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)


def quality_table(quality: int) -> Tensor:
    """The 8x8 table libjpeg uses at ``quality`` 1..100 (jpeg_quality_scaling, baseline clamp 1..255)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (torch.tensor(LUMINANCE_TABLE, dtype=torch.float64) * scale + 50).div(100).floor()
    return table.clamp(1, 255).float()


def dct_matrix(size: int = BLOCK) -> Tensor:
    """Orthonormal DCT-II matrix: coefficients = M @ block @ M.T."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    n = torch.arange(size, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * n + 1) * k / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


def _round_straight_through(values: Tensor) -> Tensor:
    return values + (torch.round(values) - values).detach()


def jpeg_gray(gray: Tensor, qualities: list[int]) -> Tensor:
    """(B,1,H,W) gray in [0,1], H and W multiples of 8 -> what a decoder reads back after each
    image is saved as a gray JPEG at ``qualities[b]`` (differentiable; rounding straight-through)."""
    batch, _, height, width = gray.shape
    if height % BLOCK or width % BLOCK:
        raise ValueError(f"jpeg_gray needs sides that are multiples of {BLOCK}, got {height}x{width}")
    with torch.autocast(gray.device.type, enabled=False):  # bf16 matmuls would swamp the JPEG's own error
        return _jpeg_fp32(gray.float(), qualities)


def _jpeg_fp32(gray: Tensor, qualities: list[int]) -> Tensor:
    batch, _, height, width = gray.shape
    matrix = dct_matrix().to(gray)
    tables = torch.stack([quality_table(q) for q in qualities]).to(gray).view(batch, 1, 1, BLOCK, BLOCK)
    pixels = _round_straight_through(gray * 255.0) - 128.0
    blocks = pixels.view(batch, height // BLOCK, BLOCK, width // BLOCK, BLOCK).transpose(2, 3)
    coefficients = matrix @ blocks @ matrix.T
    coefficients = _round_straight_through(coefficients / tables) * tables
    restored = (matrix.T @ coefficients @ matrix).transpose(2, 3).reshape(batch, 1, height, width)
    return _round_straight_through(restored + 128.0).clamp(0.0, 255.0) / 255.0
