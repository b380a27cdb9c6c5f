"""BasicSR's overlapping sub-image grid, aligned so that one HR database serves every scale (docs/data.md)."""
import math
from typing import List, Sequence, Tuple

from msrn_plugin.prep import PrepError


def scales_lcm(scales: Sequence[int]) -> int:
    """Least common multiple of the scales (1 for none)."""
    out = 1
    for s in scales:
        out = out * s // math.gcd(out, s)
    return out


def check_grid(crop_size: int, step: int, thresh_size: int, scales: Sequence[int]) -> None:
    """Validate sub-image settings for a set of scales.

    Args:
        crop_size (int): Sub-image size in HR pixels.
        step (int): Distance between sub-images in HR pixels.
        thresh_size (int): Leftover (in HR pixels) below which the last row/column of sub-images is dropped.
        scales (Sequence[int]): The scales one HR database must serve.

    Raises:
        PrepError: If a value is not positive or not a multiple of every scale.
    """
    if not scales or any(not isinstance(s, int) or s < 1 for s in scales):
        raise PrepError(f'scales must be positive integers, got {list(scales)}.')
    if crop_size < 1 or step < 1 or thresh_size < 0:
        raise PrepError(f'crop_size and step must be positive and thresh_size >= 0, got crop_size={crop_size}, '
                        f'step={step}, thresh_size={thresh_size}.')
    m = scales_lcm(scales)
    for name, value in (('crop_size', crop_size), ('step', step)):
        if value % m:
            lower, upper = value - value % m, value - value % m + m
            hint = f'{lower} or {upper}' if lower else str(upper)
            raise PrepError(f'{name}={value} is not a multiple of every scale in {sorted(scales)} (their least '
                            f'common multiple is {m}); use e.g. {hint}.')


def subimage_positions(h: int, w: int, crop_size: int, step: int, thresh_size: int = 0) -> List[Tuple[int, int]]:
    """Top-left corners of the sub-images of an h x w image, in BasicSR's order (row by row).

    Same rule as BasicSR's ``extract_subimages.worker``: a regular grid with ``step``, plus a last row/column flush
    with the border when more than ``thresh_size`` pixels would be left over.

    Args:
        h (int): Image height (already mod-cropped to the scales' LCM).
        w (int): Image width.
        crop_size (int): Sub-image size.
        step (int): Grid step.
        thresh_size (int): Threshold for the extra border row/column. Default: 0.

    Returns:
        list[tuple[int, int]]: (y, x) corners; empty when the image is smaller than ``crop_size``.
    """
    if h < crop_size or w < crop_size:
        return []

    def axis(n: int) -> List[int]:
        space = list(range(0, n - crop_size + 1, step))
        if n - (space[-1] + crop_size) > thresh_size:
            space.append(n - crop_size)
        return space

    return [(y, x) for y in axis(h) for x in axis(w)]
