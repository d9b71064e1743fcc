import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from invgray_cli import metrics


def _pair(shape: tuple[int, ...], noise: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.integers(-3, 4, shape), axis=0)  # some structure, not only noise
    a = np.clip(smooth - smooth.min() + 40, 0, 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, shape), 0, 255).astype(np.uint8)
    return a, b


def _skimage_ssim(a: np.ndarray, b: np.ndarray, **kwargs) -> float:
    return structural_similarity(
        a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **kwargs
    )


@pytest.mark.parametrize("shape", [(40, 57, 3), (11, 11, 3), (64, 23, 3)])
def test_ssim_matches_skimage_rgb(shape):
    a, b = _pair(shape)
    assert metrics.ssim(a, b) == pytest.approx(_skimage_ssim(a, b, channel_axis=-1), abs=1e-4)


def test_ssim_matches_skimage_gray_and_float_input():
    a, b = _pair((30, 33))
    expected = _skimage_ssim(a, b)
    assert metrics.ssim(a, b) == pytest.approx(expected, abs=1e-4)
    assert metrics.ssim(a / 255.0, b / 255.0, data_range=1.0) == pytest.approx(expected, abs=1e-4)


def test_ssim_identical_is_one_and_tiny_images_work():
    a, b = _pair((5, 8, 3))
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert 0 < metrics.ssim(a, b) < 1
    one = np.full((1, 1, 3), 7, np.uint8)
    assert metrics.ssim(one, one) == pytest.approx(1.0)


def test_psnr_matches_skimage_and_identical_is_inf():
    a, b = _pair((20, 21, 3))
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-9)
    assert metrics.psnr(a, a) == math.inf


def test_mae_on_255_scale():
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 3, np.uint8)
    assert metrics.mae(a, b) == 3.0
    assert metrics.mae(b, a) == 3.0  # no uint8 wrap-around


def test_gray_structure_identical_is_one_noisy_is_less():
    a, b = _pair((32, 32))
    luma = a.astype(np.float64)
    assert metrics.gray_structure(a, luma) == pytest.approx(1.0, abs=1e-9)
    assert metrics.gray_structure(b, luma) < 0.99
    # structure ignores a change of brightness and contrast, which SSIM would punish
    shifted = np.clip(a.astype(np.float64) * 0.8 + 30, 0, 255)
    assert metrics.gray_structure(shifted, luma) == pytest.approx(1.0, abs=1e-6)
    assert metrics.gray_psnr(a, luma) == math.inf


@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.ssim(np.zeros((4, 4, 3)), np.zeros((4, 5, 3))),
        lambda: metrics.psnr(np.zeros((4,)), np.zeros((4,))),
        lambda: metrics.mae(np.zeros((0, 3)), np.zeros((0, 3))),
        lambda: metrics.gray_structure(np.zeros((4, 4, 3)), np.zeros((4, 4, 3))),
        lambda: metrics.ssim_torch(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)),
    ],
)
def test_bad_shapes_raise(call):
    with pytest.raises(ValueError):
        call()


def test_torch_versions_match_numpy_on_a_batch():
    pairs = [_pair((24, 30, 3), seed=s) for s in range(3)]
    x = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a, _ in pairs]).float() / 255
    y = torch.stack([torch.from_numpy(b).permute(2, 0, 1) for _, b in pairs]).float() / 255
    got = metrics.ssim_torch(x, y, data_range=1.0)
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), [metrics.ssim(a, b) for a, b in pairs], atol=1e-5)

    grays, lumas = x[:, :1], y[:, 1:2]
    got = metrics.gray_structure_torch(grays, lumas, data_range=1.0)
    expected = [
        metrics.gray_structure(g[0].double().numpy() * 255, l[0].double().numpy() * 255)
        for g, l in zip(grays, lumas)
    ]
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_torch_ssim_is_differentiable():
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    metrics.ssim_torch(x, torch.rand(2, 3, 16, 16)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_local_moments_in_place_sums_and_kept_moments_are_the_same_bits(device):
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 40, 50, generator=gen) * 255).to(device)
    y = (torch.rand(2, 3, 40, 50, generator=gen) * 255).to(device)
    taps = metrics._gaussian_taps(11, metrics.SSIM_SIGMA)
    size, rows = len(taps), 40 - 10
    term_by_term = sum(t * x[..., k : k + rows, :] for k, t in enumerate(taps))  # a fresh tensor per term
    assert torch.equal(metrics._weighted_sum([x[..., k : k + rows, :] for k in range(size)], taps), term_by_term)
    plain = metrics.local_moments(x, y)
    kept = metrics.local_moments(x, y, metrics.local_mean_variance(x))
    for a, b in zip(plain, kept):
        assert torch.equal(a, b)
    leaf = x.clone().requires_grad_(True)  # training's SSIM keeps its graph
    metrics.ssim_torch(leaf, y).sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
