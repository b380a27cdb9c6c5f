"""ONNX export of a super-resolution network and its check against PyTorch (optional ``onnx``/``onnxruntime``).

Exporter, opset and dynamic axes: docs/inference.md.
"""
import importlib
import numpy as np
import os
import torch
import warnings
from torch import nn

from msrn_plugin.utils.atomic import atomic_path
from msrn_plugin.utils.misc import PathType

INPUT_NAME, OUTPUT_NAME = 'lq', 'sr'


def require(package: str):
    """Import an optional package or raise ImportError saying how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f'{package} is not installed; `pip install {package}` to use ONNX export/checks '
                          '(optional dependency).') from None


def export_onnx(model: nn.Module,
                output_path: PathType,
                num_in_ch: int = 3,
                sample_size: int = 32,
                opset: int = 17,
                dynamic: bool = True) -> str:
    """Export ``model`` (float32, CPU, eval) to ONNX, atomically (temporary file, then rename).

    Args:
        model (nn.Module): Maps (N, C, H, W) in [0, 1] to the upscaled image.
        output_path (str | PathLike): The ``.onnx`` file; its folder is created.
        num_in_ch (int): Input channels. Default: 3.
        sample_size (int): Side of the example input used for tracing (and the fixed size when not dynamic).
            Default: 32.
        opset (int): ONNX opset. Default: 17.
        dynamic (bool): Batch, height and width dynamic. Default: True.

    Returns:
        str: ``output_path``.

    Raises:
        ImportError: If ``onnx`` is missing (used to validate the file).
        onnx.checker.ValidationError: If the exported graph is invalid (nothing is left under ``output_path``).
    """
    onnx = require('onnx')
    output_path = os.fspath(output_path)
    folder = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(folder, exist_ok=True)
    model = model.float().cpu().eval()
    example = torch.rand(1, num_in_ch, sample_size, sample_size)
    axes = {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'},
            OUTPUT_NAME: {0: 'batch', 2: 'out_height', 3: 'out_width'}} if dynamic else None
    with atomic_path(output_path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')  # the TorchScript exporter announces its deprecation
            torch.onnx.export(model, (example, ), tmp, dynamo=False, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset)
        onnx.checker.check_model(tmp)
    return output_path


def onnx_forward(onnx_path: PathType, x: np.ndarray) -> np.ndarray:
    """Run an exported model with onnxruntime's CPU provider on a float32 NCHW array."""
    ort = require('onnxruntime')
    session = ort.InferenceSession(os.fspath(onnx_path), providers=['CPUExecutionProvider'])
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def compare_onnx(onnx_path: PathType, model: nn.Module, x: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs for ``x`` (values in [0, 1]).

    Args:
        onnx_path (str | PathLike): Exported model.
        model (nn.Module): The PyTorch model it came from.
        x (Tensor): Input (N, C, H, W), float32 in [0, 1].
    """
    with torch.no_grad():
        ref = model.float().cpu().eval()(x.float().cpu()).numpy()
    out = onnx_forward(onnx_path, x.float().cpu().numpy())
    if out.shape != ref.shape:
        raise ValueError(f'{onnx_path}: onnxruntime output shape {out.shape} != PyTorch {ref.shape}.')
    return float(np.abs(out - ref).max())
