"""Geometric self-ensemble (the "+" in MSRN+/EDSR+): average the outputs over the 8 flips/rotations."""
import torch
from typing import Callable

Forward = Callable[[torch.Tensor], torch.Tensor]


def _transform(x: torch.Tensor, k: int) -> torch.Tensor:
    """Transform ``k`` in 0..7: rotate by ``k % 4`` quarter turns, then flip horizontally when ``k >= 4``."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1, )) if k >= 4 else x


def _inverse(x: torch.Tensor, k: int) -> torch.Tensor:
    if k >= 4:
        x = torch.flip(x, dims=(-1, ))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def self_ensemble(forward: Forward, x: torch.Tensor) -> torch.Tensor:
    """Run ``forward`` on the 8 dihedral transforms of ``x`` and average the back-transformed outputs.

    Works for any model whose output is spatially aligned with its input (SR at any scale, restoration at x1).
    The transforms run one after another, so peak memory is that of a single forward pass.

    Args:
        forward (Callable): Maps an (N, C, H, W) tensor to (N, C', sH, sW).
        x (Tensor): Input batch (N, C, H, W).

    Returns:
        Tensor: The averaged output.
    """
    out = None
    for k in range(8):
        y = _inverse(forward(_transform(x, k)), k)
        out = y if out is None else out + y
    return out / 8
