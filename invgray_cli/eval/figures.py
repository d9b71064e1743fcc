"""Stage eval: the comparison strip ``invgray eval --save-dir`` writes per photo: input | gray |
restored | difference map | hidden pattern, side by side.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DIFF_RANGE = 32.0  # difference maps show |error| in [0, 32] over the full range, as the paper's figures
PATTERN_GAIN = 16  # the hidden-pattern panel shows |gray - luma| x 16: 16 gray levels of pattern = white


def difference_map(rgb: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """Per-pixel mean |RGB error| with [0, 32] stretched over 0..255, as uint8 HxW."""
    import numpy as np

    error = np.abs(rgb.astype(np.float32) - restored.astype(np.float32)).mean(axis=2)
    return np.round(np.clip(error / DIFF_RANGE, 0.0, 1.0) * 255.0).astype(np.uint8)


def pattern_map(rgb: np.ndarray, gray: np.ndarray, gain: int = PATTERN_GAIN) -> np.ndarray:
    """|gray - BT.601 luma| x gain as uint8 HxW, its scale written in the top-left corner:
    the hidden pattern made visible, so one sees where it would show."""
    import numpy as np
    from PIL import Image, ImageDraw

    from invgray_cli.colour import luma_bt601

    amplified = np.abs(gray.astype(np.float64) - luma_bt601(rgb)) * gain
    panel = Image.fromarray(np.round(np.clip(amplified, 0.0, 255.0)).astype(np.uint8))
    ImageDraw.Draw(panel).text((2, 1), f"|gray-luma| x{gain}", fill=255)
    return np.asarray(panel)


def comparison_strip(rgb: np.ndarray, gray: np.ndarray, restored: np.ndarray) -> np.ndarray:
    """input | gray | restored | difference map | hidden pattern, side by side, as one uint8 HxWx3 image."""
    import numpy as np

    def as_rgb(plane: np.ndarray) -> np.ndarray:
        return np.repeat(plane[:, :, None], 3, axis=2)

    # edge to edge, so the strip is exactly 5 x the input's width
    panels = [rgb, as_rgb(gray), restored, as_rgb(difference_map(rgb, restored)), as_rgb(pattern_map(rgb, gray))]
    return np.concatenate(panels, axis=1)
