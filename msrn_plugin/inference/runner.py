"""Inference with trained MSRN checkpoints: ``load_msrn``, exact tiling, the ``MSRNer`` image runner, folder runs.

How the checkpoint is read and why the tiles are exact: docs/inference.md.
"""
import argparse
import cv2
import logging
import math
import numpy as np
import os
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from tqdm import tqdm
from typing import Callable, Dict, List, Optional, Tuple, Union

from msrn_plugin.inference.batch import BatchReport, collect_inputs, process_folder
from msrn_plugin.inference.ensemble import self_ensemble
from msrn_plugin.utils.checkpoint import CheckpointError, msrn_network_options, read_checkpoint
from msrn_plugin.utils.image_io import read_image, write_image
from msrn_plugin.utils.misc import PathType
from msrn_plugin.utils.outputs import check_no_overwrite

Forward = Callable[[torch.Tensor], torch.Tensor]
#: A box in LR pixels: (top, bottom, left, right), bottom and right exclusive.
Box = Tuple[int, int, int, int]

logger = logging.getLogger(__name__)

#: Precision names accepted by :class:`MSRNer` (and the CLI's --fp32/--fp16/--bf16).
DTYPES: Dict[str, torch.dtype] = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


class UnsupportedImageError(ValueError):
    """An image cannot be processed by this model (channel count, dtype); the message names the reason and the fix."""


# --------------------------------------------------------------------------------------------------------------------
# Checkpoint -> model
# --------------------------------------------------------------------------------------------------------------------
def load_msrn(model_path: PathType,
              scale: Optional[int] = None,
              device: Union[str, torch.device] = 'cpu',
              param_key: Optional[str] = None,
              img_range: Optional[float] = None,
              global_residual: Optional[bool] = None) -> Tuple[nn.Module, dict]:
    """Build MSRN from a checkpoint, with the configuration the checkpoint records (or infers from its weights).

    Checkpoints written by the plugin's training carry a network record (:func:`msrn_plugin.utils.checkpoint.
    network_record`): the network is built from it. Older files and bare state dicts get their shapes inferred from
    the weights; what the weights do not hold comes from ``img_range`` / ``global_residual``
    (:func:`msrn_plugin.utils.checkpoint.msrn_network_options`). Weights holding NaN/Inf are refused. The network is
    created through BasicSR's ``ARCH_REGISTRY`` (``build_network`` would also initialise BasicSR's root logger
    without a log file, which then stays file-less for a later ``train_pipeline`` in the same process).

    Args:
        model_path (str | PathLike): BasicSR checkpoint (``net_g_*.pth``) or bare state dict.
        scale (int | None): Expected scale; a checkpoint of another scale is refused. None: take the checkpoint's.
            Default: None.
        device (str | torch.device): Where the model goes. Default: 'cpu'.
        param_key (str | None): See :func:`msrn_plugin.utils.checkpoint.extract_state_dict`. Default: None.
        img_range (float | None): MSRN's ``img_range`` for files without a record (None: 255, the plugin's and the
            official code's); must agree with the record otherwise. Default: None.
        global_residual (bool | None): MSRN's ``global_residual`` for x1 files without a record (required there);
            must agree with the record otherwise. Default: None.

    Returns:
        tuple[nn.Module, dict]: The model in eval mode, and its complete network options (``type`` included).

    Raises:
        CheckpointError: If the file is unreadable, not MSRN, of the wrong scale, holds NaN/Inf, lacks what cannot
            be inferred, or does not load strictly.
    """
    source = os.fspath(model_path)
    state_dict, record = read_checkpoint(source, param_key)
    opt = msrn_network_options(state_dict, record, source, img_range=img_range, global_residual=global_residual)
    if scale is not None and scale != opt['upscale']:
        raise CheckpointError(f"{source}: this is an x{opt['upscale']} MSRN checkpoint, but scale {scale} was asked "
                              f"for; use an x{scale} checkpoint or drop the scale option (-s) to run at "
                              f"x{opt['upscale']}.")
    kwargs = {k: v for k, v in opt.items() if k != 'type'}
    try:
        net = ARCH_REGISTRY.get('MSRN')(**kwargs)
        net.load_state_dict(state_dict, strict=True)
    except (RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f'{source}: the weights do not fit MSRN({kwargs}): {str(err).splitlines()[0]}') from None
    logger.info(f'{source}: MSRN x{opt["upscale"]}, num_feat {opt["num_feat"]}, num_block {opt["num_block"]}, '
                f'{opt["num_in_ch"]} -> {opt["num_out_ch"]} channels, img_range {opt["img_range"]:g}, global_residual '
                f'{str(opt["global_residual"]).lower()} ({"recorded" if record else "inferred from the weights"}).')
    return net.eval().to(device), opt


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also yes/no, 1/0) for command-line flags."""
    value = str(text).strip().lower()
    if value in ('true', 'yes', '1'):
        return True
    if value in ('false', 'no', '0'):
        return False
    raise argparse.ArgumentTypeError(f'expected true or false, got {text!r}')


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """``--img_range`` and ``--global_residual``: what :func:`load_msrn` needs for checkpoints without a record."""
    parser.add_argument('--global_residual', type=parse_bool, default=None, metavar='true|false',
                        help='for x1 checkpoints without a network record (older files): whether the network was '
                        'trained with global_residual (the plugin\'s denoising/dehazing options: true)')
    parser.add_argument('--img_range', type=float, default=None,
                        help='for checkpoints without a network record: the img_range trained with (default 255)')


# --------------------------------------------------------------------------------------------------------------------
# Receptive field and exact tiling
# --------------------------------------------------------------------------------------------------------------------
def _conv_radius(conv: nn.Module) -> int:
    """Half-width of a stride-1, 'same'-padded convolution (its reach in its own feature map's pixels)."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f'expected nn.Conv2d, got {type(conv).__name__}')
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = conv.kernel_size, conv.dilation, conv.padding, conv.stride
    radius = max(dh * (kh - 1), dw * (kw - 1)) // 2
    if (sh, sw) != (1, 1) or kh % 2 == 0 or kw % 2 == 0 or (ph, pw) != (dh * (kh - 1) // 2, dw * (kw - 1) // 2):
        raise ValueError(f'{conv}: exact tiling needs odd kernels, stride 1 and "same" padding.')
    return radius


def msrn_receptive_radius(net: nn.Module) -> int:
    """Reach of an MSRN, in LR pixels: output pixels of an LR-aligned block depend only on input within this margin.

    Derived from the modules of ``net`` by following the interval of rows (or columns) that one LR pixel's output
    needs, from the last convolution back to the input:

    * ``conv_last`` (at HR resolution) widens the ``scale`` HR rows of one LR pixel by its radius;
    * each pixel shuffle by ``f`` maps HR rows ``[lo, hi]`` to ``[floor(lo / f), floor(hi / f)]`` at the coarser
      resolution, and each upsampler convolution widens by its radius there (the fractional LR reach of the HR-side
      convolutions, 1/s + 1/2 + ..., rounds up to whole LR pixels in this walk);
    * ``conv_after_fusion`` adds its radius; the 1x1 fusion and the skip connections add nothing;
    * each MSRB adds the larger radius of its first pair (3x3 / 5x5) plus that of its second pair;
    * ``conv_first`` adds its radius; the 1x1 mean shifts add nothing.

    For the paper's MSRN (3x3 head, 8 blocks of 5x5 + 5x5) this gives 36 at x2/x3/x4/x8 and 35 at x1.

    Args:
        net (nn.Module): An MSRN instance (``msrn_plugin.archs.msrn_arch.MSRN``).

    Returns:
        int: The minimal ``tile_pad`` for exact tiling.
    """
    for name in ('conv_first', 'body', 'conv_after_fusion', 'upsample', 'conv_last'):
        if not hasattr(net, name):
            raise TypeError(f'{type(net).__name__} is not MSRN (no {name!r}); give tile_pad explicitly.')
    lo, hi = 0, net.upscale - 1  # HR rows of LR row 0
    lo, hi = lo - _conv_radius(net.conv_last), hi + _conv_radius(net.conv_last)
    for module in reversed(list(net.upsample.children()) if isinstance(net.upsample, nn.Sequential) else []):
        if isinstance(module, nn.PixelShuffle):
            lo, hi = math.floor(lo / module.upscale_factor), math.floor(hi / module.upscale_factor)
        else:
            r = _conv_radius(module)
            lo, hi = lo - r, hi + r
    reach = _conv_radius(net.conv_after_fusion) + _conv_radius(net.conv_first)
    for block in net.body:
        reach += max(_conv_radius(block.conv_3_1), _conv_radius(block.conv_5_1))
        reach += max(_conv_radius(block.conv_3_2), _conv_radius(block.conv_5_2)) + _conv_radius(block.confusion)
    return max(-lo, hi) + reach


def tile_boxes(height: int, width: int, tile: int, tile_pad: int) -> List[Tuple[Box, Box]]:
    """The tiles of an image, each with its padded box: ``((y0, y1, x0, x1), (py0, py1, px0, px1))`` in LR pixels.

    Tiles are ``tile`` x ``tile`` (smaller at the right and bottom edges), row by row; the padded box adds
    ``tile_pad`` real neighbouring pixels on every side that has neighbours (none beyond the image border).
    """
    boxes = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            boxes.append(((y0, y1, x0, x1),
                          (max(y0 - tile_pad, 0), min(y1 + tile_pad, height), max(x0 - tile_pad, 0),
                           min(x1 + tile_pad, width))))
    return boxes


def tile_forward(forward: Forward,
                 x: torch.Tensor,
                 scale: int,
                 tile: int,
                 tile_pad: int,
                 out_device: Optional[torch.device] = None,
                 progress: bool = False) -> torch.Tensor:
    """Run ``forward`` tile by tile and stitch the outputs.

    Each ``tile`` x ``tile`` LR tile is cut out with ``tile_pad`` real neighbouring pixels on every side that has
    neighbours (at the image border nothing is added, so the network's own zero padding acts exactly as on the whole
    image); the padded part of the output is cropped away. With ``tile_pad`` at least the model's reach (for MSRN,
    :func:`msrn_receptive_radius`) the result equals ``forward(x)`` up to float rounding.

    Args:
        forward (Callable): Maps (N, C, h, w) to (N, C', scale * h, scale * w).
        x (Tensor): Input (N, C, H, W).
        scale (int): Upscaling factor of ``forward``.
        tile (int): Tile size in LR pixels (> 0).
        tile_pad (int): Overlap in LR pixels (>= 0).
        out_device (torch.device | None): Where the full output is assembled (e.g. the CPU while tiles run on a
            GPU). None: ``x.device``. Default: None.
        progress (bool): Show a tqdm bar over tiles. Default: False.

    Returns:
        Tensor: (N, C', scale * H, scale * W), float32 on ``out_device``.
    """
    if tile <= 0 or tile_pad < 0:
        raise ValueError(f'tile must be > 0 and tile_pad >= 0, got tile={tile}, tile_pad={tile_pad}')
    n, _, h, w = x.shape
    out_device = x.device if out_device is None else out_device
    boxes = tile_boxes(h, w, tile, tile_pad)
    output = None
    for (y0, y1, x0, x1), (py0, py1, px0, px1) in tqdm(boxes, desc='tiles', unit='tile',
                                                       disable=not progress or len(boxes) == 1, leave=False):
        out_tile = forward(x[:, :, py0:py1, px0:px1])
        if output is None:
            output = torch.empty((n, out_tile.shape[1], h * scale, w * scale), dtype=torch.float32, device=out_device)
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        output[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
            out_tile[:, :, oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale].to(out_device, torch.float32)
    return output


# --------------------------------------------------------------------------------------------------------------------
# Images in, images out
# --------------------------------------------------------------------------------------------------------------------
class MSRNer:
    """Upscale images as stored (gray / BGR / BGRA, uint8 / uint16) with a super-resolution network.

    Colour images go through the network in RGB order (BasicSR's convention); gray images are replicated to three
    channels for 3-channel models and converted back; the alpha channel of BGRA images is upscaled separately
    (bicubic, or by the network as a gray image). Outputs keep the input's layout and bit depth. The model is moved to
    ``device`` and cast to ``precision`` in place.

    Args:
        model (nn.Module): The network; maps (N, C, h, w) in [0, 1] to (N, C', scale * h, scale * w).
        scale (int): Its upscaling factor.
        tile (int): Tile size in LR pixels; 0 runs the whole image at once. Default: 0.
        tile_pad (int | None): Overlap in LR pixels. None: the exact minimum for MSRN
            (:func:`msrn_receptive_radius`); other models need it given when tiling. Default: None.
        ensemble (bool): Average the 8 flips/rotations (MSRN+). Default: False.
        precision (str): 'fp32', 'fp16' or 'bf16'. Default: 'fp32'.
        device (str | torch.device | None): None: the model's device. Default: None.
        alpha_upsampler (str): 'bicubic' (OpenCV bicubic, clipped) or 'model'. Default: 'bicubic'.
    """

    def __init__(self,
                 model: nn.Module,
                 scale: int,
                 tile: int = 0,
                 tile_pad: Optional[int] = None,
                 ensemble: bool = False,
                 precision: str = 'fp32',
                 device: Optional[Union[str, torch.device]] = None,
                 alpha_upsampler: str = 'bicubic') -> None:
        if precision not in DTYPES:
            raise ValueError(f'precision must be one of {sorted(DTYPES)}, got {precision!r}')
        if alpha_upsampler not in ('bicubic', 'model'):
            raise ValueError(f"alpha_upsampler must be 'bicubic' or 'model', got {alpha_upsampler!r}")
        if tile < 0:
            raise ValueError(f'tile must be >= 0 (0: no tiling), got {tile}')
        if device is None:
            device = next(model.parameters()).device
        device = torch.device(device)
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError('device cuda was asked for, but torch.cuda.is_available() is False; use the CPU.')
        self.dtype = DTYPES[precision]
        if self.dtype == torch.float16 and device.type == 'cpu':
            logger.warning('fp16 on the CPU is slow and less accurate; bf16 or fp32 is usually the better choice.')
        self.minimal_pad = None
        try:
            self.minimal_pad = msrn_receptive_radius(model)
        except TypeError:
            pass
        if tile_pad is None:
            if tile and self.minimal_pad is None:
                raise ValueError(f'{type(model).__name__}: no receptive-field rule is known; give tile_pad.')
            tile_pad = self.minimal_pad or 0
        elif tile and self.minimal_pad is not None and tile_pad < self.minimal_pad:
            logger.warning(f'tile_pad {tile_pad} is below the model reach {self.minimal_pad}: tile seams will differ '
                           'from the whole-image result.')
        if tile_pad < 0:
            raise ValueError(f'tile_pad must be >= 0, got {tile_pad}')
        self.model = model.to(device=device, dtype=self.dtype).eval()
        self.scale, self.tile, self.tile_pad = scale, tile, tile_pad
        self.ensemble, self.device, self.alpha_upsampler = ensemble, device, alpha_upsampler
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        self.num_in_ch = first.in_channels if first is not None else 3

    def _forward_once(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device, self.dtype)).float()

    def _forward_tile(self, x: torch.Tensor) -> torch.Tensor:
        return self_ensemble(self._forward_once, x) if self.ensemble else self._forward_once(x)

    @torch.no_grad()
    def forward_tensor(self, x: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Upscale a float batch (N, C, H, W) in [0, 1]; returns float32 (N, C', sH, sW) on ``x``'s device.

        Args:
            x (Tensor): Input batch.
            progress (bool): Show a bar over tiles. Default: False.
        """
        if self.tile:
            return tile_forward(self._forward_tile, x, self.scale, self.tile, self.tile_pad, x.device, progress)
        return self._forward_tile(x).to(x.device)

    def enhance(self, img: np.ndarray, progress: bool = False) -> np.ndarray:
        """Upscale one image as returned by :func:`msrn_plugin.utils.image_io.read_image`.

        With tiling, each padded tile goes through the whole conversion (float, network, rounding) on its own and
        its centre is written straight into the output array: memory is the output image in its own dtype plus one
        tile, whatever the image size (the stitched result is the same as the whole-image one).

        Args:
            img (np.ndarray): HxW, HxWx3 (BGR) or HxWx4 (BGRA); uint8 or uint16.
            progress (bool): Show a bar over tiles. Default: False.

        Returns:
            np.ndarray: The upscaled image, same layout and dtype.

        Raises:
            UnsupportedImageError: For other dtypes or channel counts, or colour images given to a 1-channel model.
        """
        if img.dtype not in (np.uint8, np.uint16):
            raise UnsupportedImageError(f'images must be uint8 or uint16, got {img.dtype}; convert the file to 8- or '
                                        '16-bit PNG.')
        num_ch = 1 if img.ndim == 2 else img.shape[2]
        if img.ndim not in (2, 3) or num_ch not in (1, 3, 4):
            raise UnsupportedImageError(f'images must be gray, BGR or BGRA, got shape {img.shape}.')
        if self.num_in_ch == 1 and num_ch >= 3:
            raise UnsupportedImageError('the model takes 1-channel (gray) images but this image is in colour; '
                                        'convert it to gray first or use a 3-channel checkpoint.')
        h, w = img.shape[:2]
        s, tile, pad = self.scale, self.tile, self.tile_pad
        if not tile or (h <= tile and w <= tile):
            return self._enhance_block(img)
        out = np.empty((h * s, w * s) + img.shape[2:], img.dtype)
        for (y0, y1, x0, x1), (py0, py1, px0, px1) in tqdm(tile_boxes(h, w, tile, pad), desc='tiles', unit='tile',
                                                           disable=not progress, leave=False):
            block = self._enhance_block(img[py0:py1, px0:px1])
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[y0 * s:y1 * s, x0 * s:x1 * s] = block[oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out

    def _enhance_block(self, img: np.ndarray) -> np.ndarray:
        """:meth:`enhance` of a whole image or of one padded tile, in one forward (checked input)."""
        max_value = float(np.iinfo(img.dtype).max)
        num_ch = 1 if img.ndim == 2 else img.shape[2]
        data = img.astype(np.float32) / max_value
        alpha = data[:, :, 3] if num_ch == 4 else None
        color = data[:, :, :3] if num_ch >= 3 else data
        out = self._run_image(color)
        if alpha is not None:
            if self.alpha_upsampler == 'model':
                out_alpha = self._run_image(alpha)
            else:
                h, w = alpha.shape
                out_alpha = cv2.resize(alpha, (w * self.scale, h * self.scale), interpolation=cv2.INTER_CUBIC)
            out = np.concatenate([out, np.clip(out_alpha, 0, 1)[:, :, None]], axis=2)
        return (np.clip(out, 0, 1) * max_value).round().astype(img.dtype)

    @torch.no_grad()
    def _run_image(self, data: np.ndarray) -> np.ndarray:
        """float32 HxW (gray) or HxWx3 (BGR) in [0, 1] -> the same layout upscaled, in one forward."""
        gray = data.ndim == 2
        if self.num_in_ch == 1:
            if not gray:
                raise UnsupportedImageError('1-channel model given a colour image.')
            chw = data[None]
        else:
            chw = np.repeat(data[None], 3, axis=0) if gray else data[:, :, ::-1].transpose(2, 0, 1)  # BGR -> RGB
        out = self._forward_tile(torch.from_numpy(np.ascontiguousarray(chw))[None])[0].cpu().numpy()
        if out.shape[0] == 1:
            return out[0]
        out = out.transpose(1, 2, 0)[:, :, ::-1]  # RGB -> BGR
        return cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2GRAY) if gray else np.ascontiguousarray(out)


def output_path_for(input_file: str, output_dir: str, suffix: str = '') -> str:
    """``output_dir/<input stem>[_<suffix>]<input extension>``."""
    stem, ext = os.path.splitext(os.path.basename(input_file))
    return os.path.join(output_dir, f'{stem}_{suffix}{ext}' if suffix else f'{stem}{ext}')


def upscale_path(input_path: PathType,
                 output_dir: PathType,
                 upsampler: MSRNer,
                 suffix: str = '',
                 show_progress: bool = True,
                 max_pixels: Optional[int] = None) -> BatchReport:
    """Upscale an image or every image in a folder; outputs keep the input's name (plus ``_suffix``).

    Runs through :func:`msrn_plugin.inference.batch.process_folder`: a file that cannot be read or processed is
    reported and the others go on; outputs are written atomically, so nothing half-written appears.

    Args:
        input_path (str | PathLike): Image or folder (not recursive).
        output_dir (str | PathLike): Output folder (created).
        upsampler (MSRNer): What upscales.
        suffix (str): Added to output names as ``_suffix``. Default: ''.
        show_progress (bool): Progress bars over files (and tiles). Default: True.
        max_pixels (int | None): Largest input image, in pixels; larger files are reported as failed from their
            header, before decoding (:func:`msrn_plugin.utils.image_io.max_pixels_limit`). Default: None
            (``$MSRN_MAX_PIXELS`` or 100 megapixels).

    Returns:
        BatchReport: Processed, failed and skipped files; ``results`` holds the output paths.

    Raises:
        FileNotFoundError: If ``input_path`` does not exist.
        ValueError: If any output would overwrite any input (real paths, links resolved; checked before anything is
            written).
    """
    output_dir = os.fspath(output_dir)
    images, _ = collect_inputs(input_path)
    check_no_overwrite([output_path_for(path, output_dir, suffix) for path in images], images,
                       hint='Choose another output folder (-o) or another --suffix.')

    def upscale_one(path: str) -> str:
        out_path = output_path_for(path, output_dir, suffix)
        write_image(out_path, upsampler.enhance(read_image(path, max_pixels), progress=show_progress))
        return out_path

    return process_folder(input_path, upscale_one, desc='Upscaling', show_progress=show_progress)
