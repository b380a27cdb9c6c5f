"""Inference with trained MSRN checkpoints: the image runner with exact tiling, self-ensemble, ONNX export.

``from msrn_plugin.inference import MSRNer, load_msrn, upscale_path`` is the public API (docs/inference.md).
"""
import warnings
from typing import Any

from msrn_plugin.inference.runner import (DTYPES, MSRNer, UnsupportedImageError, add_network_arguments, load_msrn,
                                          msrn_receptive_radius, output_path_for, tile_forward, upscale_path)
from msrn_plugin.utils.checkpoint import extract_state_dict, msrn_config_from_state_dict

__all__ = [
    'DTYPES', 'MSRNer', 'UnsupportedImageError', 'add_network_arguments', 'extract_state_dict', 'load_msrn',
    'msrn_config_from_state_dict', 'msrn_receptive_radius', 'output_path_for', 'tile_forward', 'upscale_path'
]


def __getattr__(name: str) -> Any:
    """Old names kept for one release, with a deprecation warning."""
    if name == 'Upsampler':
        warnings.warn('msrn_plugin.inference.Upsampler was renamed MSRNer; the old name goes in the next release.',
                      DeprecationWarning, stacklevel=2)
        return MSRNer
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
