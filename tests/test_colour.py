"""colour.py: the one home of the BT.601 maths; its numpy and torch forms agree."""
import numpy as np
import pytest
import torch

from invgray_cli import colour


def test_luma_bt601():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], np.uint8)
    np.testing.assert_allclose(colour.luma_bt601(rgb), [[0.299 * 255, 0.587 * 255, 0.114 * 255, 255.0]])
    with pytest.raises(ValueError, match="HxWx3"):
        colour.luma_bt601(np.zeros((4, 4)))


def test_the_lumas_of_one_photo_agree_in_every_form():
    rgb = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    reference = colour.luma_bt601(rgb)
    batch = torch.from_numpy(rgb).permute(2, 0, 1)[None].double()
    np.testing.assert_allclose(colour.rgb_to_luma(batch)[0, 0].numpy(), reference, rtol=0, atol=1e-9)
    np.testing.assert_allclose(colour.luma_plane(torch.from_numpy(rgb)).numpy(), reference, rtol=0, atol=1e-3)
    assert colour.luma_plane(torch.from_numpy(rgb)).dtype == torch.float32
    gray = colour.plain_gray(rgb)
    assert gray.dtype == np.uint8 and np.abs(gray - reference).max() <= 0.5


def test_chroma_and_back_keeps_colours_inside_the_cube():
    rgb = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    back = colour.chroma_to_rgb(colour.rgb_to_luma(rgb), colour.rgb_to_chroma(rgb))
    torch.testing.assert_close(back, rgb, atol=1e-5, rtol=0)
    yiq = torch.einsum("ij,bjhw->bihw", colour.RGB_TO_YIQ, rgb)
    torch.testing.assert_close(yiq[:, :1], colour.rgb_to_luma(rgb))
