"""The block code's lattice: 8x8 DCTs as matrix products, the slots of each 16x16 macroblock and their
lattice steps, and the embedding passes that move each slot's coefficient onto a lattice point of
the wanted parity (see block_code.py for what the bits say).

Tensor code on the gray's device, a band of macroblock rows at a time; each block's
DCT is a matrix product along each axis, in float64, and the 12 slots of every macroblock are
moved in one step. invgray 0.7 and before summed the DCTs in numpy's ``einsum`` order, and its
roundings meet exact ties often (a flat, clipped or mirrored block has AC coefficients of exactly
0, which is a tie when its bit is 1); a value within ``TIE_MARGIN`` of a tie is summed again in
that order, so the stored gray and the bits read are 0.7's bit for bit on the CPU
(tests/data/blockcode_reference.npz). On CUDA the macroblock colour is cuDNN's convolution, which
may round a mean on a level's boundary the other way.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

from invgray_cli.io.jpeg import jpeg_table

BLOCK = 8  # JPEG's DCT block
MACROBLOCK = 16  # pixels per coded colour, on each axis
SLOT_COEFFICIENTS = ((0, 1), (1, 0), (0, 2))  # (row, column) frequencies used in every 8x8 block
LATTICE_QUALITY = 75
LATTICE_MARGIN = 2.0  # lattice step over quality 75's quantisation step
EMBED_PASSES = 4  # at most; re-embedding after 8-bit rounding and clipping moved some coefficients


def _dct_matrix() -> np.ndarray:
    k, n = np.meshgrid(np.arange(BLOCK), np.arange(BLOCK), indexing="ij")
    matrix = np.sqrt(2.0 / BLOCK) * np.cos(np.pi * (2 * n + 1) * k / (2 * BLOCK))
    matrix[0] /= np.sqrt(2.0)
    return matrix


DCT = _dct_matrix()  # orthonormal: coefficients = DCT @ block @ DCT.T
LATTICE_STEPS = LATTICE_MARGIN * jpeg_table(LATTICE_QUALITY)
# slot k of a macroblock's bits: its block (row, column) within the macroblock and its coefficient;
# consecutive bits go to different blocks, so one block lost to clipping costs one bit per value
SLOTS = tuple(((k % 4) // 2, k % 2, SLOT_COEFFICIENTS[k // 4]) for k in range(4 * len(SLOT_COEFFICIENTS)))
# A value this near a rounding boundary (in the units it is rounded in) is summed again in the
# order invgray <= 0.7 summed it (numpy's einsum), so it rounds the same way: the matrix products
# err by ~1e-12; exact ties (a coefficient that is 0 in a flat, clipped or mirrored block) are common.
TIE_MARGIN = 1e-9
RESUMMED_BLOCKS = 256  # blocks summed again at a time (64 x 64 products each: about 8 MB of float64)


@functools.lru_cache(maxsize=8)
def _dct_on(device: torch.device) -> Tensor:
    return torch.from_numpy(DCT).to(device)


def _blocks(image: Tensor) -> Tensor:
    """(H,W) with H, W multiples of 8 -> its (H/8, 8, W/8, 8) view: [a, j, b, k] is entry (j, k) of block (a, b)."""
    return image.view(image.shape[0] // BLOCK, BLOCK, image.shape[1] // BLOCK, BLOCK)


def dct_coefficients(pixels: Tensor) -> Tensor:
    """(H,W) float64 with H, W multiples of 8 -> the DCT coefficients of each 8x8 block in its place
    (coefficient (u, v) of block (a, b) at [8a + u, 8b + v]): one matrix product along each axis."""
    height, width = pixels.shape
    dct = _dct_on(pixels.device)
    along_rows = (pixels.reshape(height, width // BLOCK, BLOCK) @ dct.T).reshape(height, width)
    return (dct @ along_rows.reshape(height // BLOCK, BLOCK, width)).reshape(height, width)


def inverse_dct(coefficients: Tensor) -> Tensor:
    """``_coefficients`` undone."""
    height, width = coefficients.shape
    dct = _dct_on(coefficients.device)
    along_rows = (coefficients.reshape(height, width // BLOCK, BLOCK) @ dct).reshape(height, width)
    return (dct.T @ along_rows.reshape(height // BLOCK, BLOCK, width)).reshape(height, width)


def _coefficients_in_old_order(blocks: Tensor, us: Tensor, vs: Tensor) -> Tensor:
    """(N,8,8) float64 blocks -> (N,): coefficient (us[n], vs[n]) of block n, summed as numpy's
    ``einsum("ij,abjk,lk->abil")`` did: (D[u,j] * x[j,k]) * D[v,k], the 8 of each row j summed
    first, then the rows, one after another."""
    dct = _dct_on(blocks.device)
    products = (dct[us][:, :, None] * blocks) * dct[vs][:, None, :]  # (N, j, k)
    rows = products[..., 0]
    for k in range(1, BLOCK):
        rows = rows + products[..., k]
    total = rows[..., 0]
    for j in range(1, BLOCK):
        total = total + rows[..., j]
    return total


def _pixels_in_old_order(coefficients: Tensor) -> Tensor:
    """(N,8,8) float64 coefficients -> (N,8,8) pixels, each summed as numpy's
    ``einsum("ji,abjk,kl->abil")`` did: (D[j,i] * c[j,k]) * D[k,l] over j, then k within it, in one run."""
    dct = _dct_on(coefficients.device)
    # products[n, i, l, j, k]
    products = (dct.T[None, :, None, :, None] * coefficients[:, None, None]) * dct.T[None, None, :, None, :]
    products = products.flatten(-2)
    total = products[..., 0]
    for term in range(1, BLOCK * BLOCK):
        total = total + products[..., term]
    return total


def _near_half(values: Tensor) -> Tensor:
    """Where ``values`` lie within TIE_MARGIN of a rounding boundary (an integer and a half)."""
    return (values - torch.floor(values) - 0.5).abs_() < TIE_MARGIN


def _macroblocks(image: Tensor) -> Tensor:
    """(H,W) with H, W multiples of 16 -> its (H/16, 2, 8, W/16, 2, 8) view: [r, a, j, c, b, k] is
    entry (j, k) of block (a, b) of macroblock (r, c)."""
    height, width = image.shape
    return image.view(height // MACROBLOCK, 2, BLOCK, width // MACROBLOCK, 2, BLOCK)


@functools.lru_cache(maxsize=8)
def _slots_on(device: torch.device) -> tuple[tuple, Tensor]:
    """The index of every slot's coefficient in a ``_macroblocks`` view (giving (slot, h, w)), and
    the slots' lattice steps (slot, 1, 1), on ``device``."""
    def column(values: list[int]) -> Tensor:
        return torch.tensor(values, dtype=torch.int64, device=device)

    rows, cols, us, vs = (column([slot[field] if field < 2 else slot[2][field - 2] for slot in SLOTS]) for field in range(4))
    steps = torch.tensor([LATTICE_STEPS[u, v] for _, _, (u, v) in SLOTS], dtype=torch.float64, device=device)
    return (slice(None), rows, us, slice(None), cols, vs), steps[:, None, None]


def slot_values(pixels: Tensor, coefficients: Tensor, ties_at: float) -> Tensor:
    """(slot, h, w): each slot's coefficient over its lattice step in every macroblock of ``pixels``
    whose ``coefficients`` are given; those within TIE_MARGIN of ``ties_at`` plus an integer (0.5
    where reading rounds them, 0 where embedding does) summed again in the old order, from pixels - 128
    as it took them (an AC coefficient is the same of both, bar the sums' rounding)."""
    index, steps = _slots_on(pixels.device)
    values = _macroblocks(coefficients)[index] / steps
    ties = _near_half(values + (0.5 - ties_at))
    if bool(ties.any()):
        slot, row, col = torch.nonzero(ties, as_tuple=True)
        _, rows, us, _, cols, vs = index
        centred = _macroblocks(pixels)[row, rows[slot], :, col, cols[slot], :] - 128.0
        values[ties] = _coefficients_in_old_order(centred, us[slot], vs[slot]) / steps[slot, 0, 0]
    return values


def embed_band(pixels: Tensor, wanted: Tensor, passes: int = EMBED_PASSES) -> Tensor:
    """The float64 pixels (whole macroblocks, 0..255) of one band with the bits ``wanted`` (slot, h,
    w; float64) in the parities of their slots' lattice indices. Each pass moves each slot's
    coefficient to the nearest lattice point of the wanted parity, then rounds and clips the pixels,
    which moves some coefficients again. A macroblock's pass depends on its pixels and bits alone
    (the few sums near a rounding boundary are redone in one fixed order), so one that a pass left
    unchanged stays so: later passes take only the macroblocks the last one changed."""
    moved = _embed_pass(pixels, wanted)
    if passes <= 1:
        return moved
    height, width = moved.shape
    changed = (moved != pixels).view(height // MACROBLOCK, MACROBLOCK, width // MACROBLOCK, MACROBLOCK).any(3).any(1)
    count = int(changed.sum())
    if count > changed.numel() // 2:  # gathering most of them costs more than the pass it saves
        return embed_band(moved, wanted, passes - 1)
    if count:
        rows, cols = torch.nonzero(changed, as_tuple=True)
        strip = embed_band(_macroblock_strip(moved, rows, cols), wanted[:, rows, cols][:, None, :], passes - 1)
        _macroblocks(moved)[rows, :, :, cols, :, :] = _macroblocks(strip)[0].permute(2, 0, 1, 3, 4)
    return moved


def _macroblock_strip(image: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """The macroblocks (rows[n], cols[n]) of ``image`` side by side: (16, 16 * n)."""
    picked = _macroblocks(image)[rows, :, :, cols, :, :]  # (n, 2, 8, 2, 8)
    return picked.permute(1, 2, 0, 3, 4).reshape(MACROBLOCK, MACROBLOCK * len(rows))


def _embed_pass(pixels: Tensor, wanted: Tensor) -> Tensor:
    """One pass of ``embed_band``: new pixels, rounded and clipped."""
    index, steps = _slots_on(pixels.device)
    coefficients = dct_coefficients(pixels)
    lattice = slot_values(pixels, coefficients, ties_at=0.0)  # (lattice - wanted) / 2 is rounded
    _macroblocks(coefficients)[index] = (2.0 * torch.round((lattice - wanted) / 2.0) + wanted) * steps
    moved = inverse_dct(coefficients)
    rounded = moved.round()
    near = moved.sub_(rounded).abs_() > 0.5 - TIE_MARGIN
    if bool(near.any()):
        _resum_near_ties(rounded, near, pixels, coefficients)
    return rounded.clamp_(0, 255)


def _resum_near_ties(rounded: Tensor, near: Tensor, pixels: Tensor, coefficients: Tensor) -> None:
    """The blocks of ``rounded`` (an embedding pass's pixels, rounded) with a pixel ``near`` a
    rounding boundary (a block of 4x4 flat quarters can make exact halves), recomputed as the old
    code did: the coefficients of its ``pixels`` - 128 and its inverse transform both summed in
    numpy's einsum order, the slots' new values (exact lattice points) taken from ``coefficients``;
    RESUMMED_BLOCKS at a time."""
    all_rows, all_cols = torch.nonzero(_blocks(near).any(dim=3).any(dim=1), as_tuple=True)
    frequencies = torch.arange(BLOCK * BLOCK, device=pixels.device)
    for start in range(0, len(all_rows), RESUMMED_BLOCKS):
        rows, cols = all_rows[start : start + RESUMMED_BLOCKS], all_cols[start : start + RESUMMED_BLOCKS]
        centred = (_blocks(pixels)[rows, :, cols, :] - 128.0).repeat_interleave(BLOCK * BLOCK, dim=0)
        us, vs = (frequencies // BLOCK).repeat(len(rows)), (frequencies % BLOCK).repeat(len(rows))
        old = _coefficients_in_old_order(centred, us, vs).view(-1, BLOCK, BLOCK)
        new = _blocks(coefficients)[rows, :, cols, :]
        for u, v in SLOT_COEFFICIENTS:
            old[:, u, v] = new[:, u, v]
        _blocks(rounded)[rows, :, cols, :] = (_pixels_in_old_order(old) + 128.0).round()
