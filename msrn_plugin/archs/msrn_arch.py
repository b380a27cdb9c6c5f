import torch
from basicsr.archs.arch_util import Upsample
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F
from typing import Sequence

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
SUPPORTED_SCALES = (1, 2, 3, 4, 8)


class MeanShift(nn.Module):
    """Fixed per-pixel affine colour transform ``y = W x + b`` (a 1x1 convolution held in buffers).

    The official MSRN code builds its mean shift as a 1x1 ``nn.Conv2d`` and means to freeze it, but sets
    ``module.requires_grad = False`` (a plain attribute), so the released checkpoints may carry trained, non-identity
    values. Holding ``weight`` and ``bias`` as buffers keeps them in the ``state_dict`` (so converted official
    checkpoints load strictly and reproduce the official output) while no optimizer ever updates them.

    Args:
        mean (Sequence[float]): Per-channel mean in [0, 1].
        img_range (float): Pixel range the network works in.
        sign (int): -1 subtracts ``img_range * mean`` (input side), +1 adds it back (output side).
    """

    def __init__(self, mean: Sequence[float], img_range: float, sign: int) -> None:
        super().__init__()
        num_ch = len(mean)
        self.register_buffer('weight', torch.eye(num_ch).view(num_ch, num_ch, 1, 1))
        self.register_buffer('bias', sign * img_range * torch.tensor(mean, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class MSRB(nn.Module):
    """Multi-scale residual block (MSRB) of MSRN.

    Two parallel branches with 3x3 and 5x5 convolutions share information: after the first pair, their outputs are
    concatenated and fed to both convolutions of the second pair (``2 * num_feat`` channels each). A ReLU follows each
    of these four convolutions; a 1x1 convolution fuses the concatenated ``4 * num_feat`` channels back to
    ``num_feat``, and a local residual connection adds the block input.

    Args:
        num_feat (int): Channel number of intermediate features. Default: 64.
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv_3_1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_5_1 = nn.Conv2d(num_feat, num_feat, 5, 1, 2)
        self.conv_3_2 = nn.Conv2d(num_feat * 2, num_feat * 2, 3, 1, 1)
        self.conv_5_2 = nn.Conv2d(num_feat * 2, num_feat * 2, 5, 1, 2)
        self.confusion = nn.Conv2d(num_feat * 4, num_feat, 1, 1, 0)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_3_1 = self.relu(self.conv_3_1(x))
        out_5_1 = self.relu(self.conv_5_1(x))
        feat = torch.cat([out_3_1, out_5_1], dim=1)
        out_3_2 = self.relu(self.conv_3_2(feat))
        out_5_2 = self.relu(self.conv_5_2(feat))
        return self.confusion(torch.cat([out_3_2, out_5_2], dim=1)) + x


@ARCH_REGISTRY.register()
class MSRN(nn.Module):
    """MSRN: Multi-scale Residual Network for Image Super-Resolution.

    Paper: Li, Fang, Mei, Zhang, "Multi-scale Residual Network for Image Super-Resolution", ECCV 2018.

    Head conv, ``num_block`` MSRBs, hierarchical feature fusion (all block outputs and the head output concatenated
    into a 1x1 bottleneck), a 3x3 conv, a pixel-shuffle upsampler (x2/x4/x8 as repeated x2 stages, x3 as one stage)
    and a last conv. With the defaults the trainable parameter count equals the official network's (x2 5,930,307,
    x3 6,114,947, x4 6,078,019, x8 6,225,731); the two mean shifts are buffers, not parameters.

    Input and output are in [0, 1]; internally the network works in ``[0, img_range]`` like the official code
    (``rgb_range 255``), so ``MSRN(x) == official(255 * x) / 255`` for converted official weights.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of MSRBs. Default: 8.
        upscale (int): Upsampling factor: 2, 3, 4 or 8; 1 for restoration (denoising, dehazing). Default: 4.
        img_range (float): Image range the network works in. Default: 255.
        rgb_mean (Sequence[float]): Channel means subtracted at the input and added at the output; one value per
            channel (``num_in_ch`` and ``num_out_ch`` must equal its length). Default: DIV2K's
            (0.4488, 0.4371, 0.4040).
        global_residual (bool): Only for ``upscale=1`` with ``num_in_ch == num_out_ch``: predict the residual, so the
            output is ``x + tail(x) / img_range`` (the output mean shift is then not applied, since the residual has
            no image mean). Recommended for denoising and dehazing. Default: False.
    """

    def __init__(self,
                 num_in_ch: int = 3,
                 num_out_ch: int = 3,
                 num_feat: int = 64,
                 num_block: int = 8,
                 upscale: int = 4,
                 img_range: float = 255.,
                 rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
                 global_residual: bool = False) -> None:
        super().__init__()
        if upscale not in SUPPORTED_SCALES:
            raise ValueError(f'MSRN: upscale must be one of {SUPPORTED_SCALES}, got {upscale!r}.')
        if num_block < 1 or num_feat < 1:
            raise ValueError(f'MSRN: num_block and num_feat must be positive, got {num_block} and {num_feat}.')
        rgb_mean = tuple(float(v) for v in rgb_mean)
        for key, num_ch in (('num_in_ch', num_in_ch), ('num_out_ch', num_out_ch)):
            if len(rgb_mean) != num_ch:
                raise ValueError(f'MSRN: rgb_mean has {len(rgb_mean)} values but {key} is {num_ch}; give one mean per '
                                 f'channel (e.g. rgb_mean: [0.5] for gray images).')
        if global_residual and (upscale != 1 or num_in_ch != num_out_ch):
            raise ValueError('MSRN: global_residual needs upscale: 1 and num_in_ch == num_out_ch, got '
                             f'upscale={upscale}, num_in_ch={num_in_ch}, num_out_ch={num_out_ch}.')
        self.upscale = upscale
        self.img_range = float(img_range)
        self.num_block = num_block
        self.global_residual = global_residual

        self.sub_mean = MeanShift(rgb_mean, self.img_range, sign=-1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.ModuleList([MSRB(num_feat) for _ in range(num_block)])
        self.conv_fusion = nn.Conv2d(num_feat * (num_block + 1), num_feat, 1, 1, 0)
        self.conv_after_fusion = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(upscale, num_feat) if upscale > 1 else nn.Identity()
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.add_mean = MeanShift(rgb_mean, self.img_range, sign=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(self.sub_mean(x * self.img_range))
        outs = []
        body_feat = feat
        for block in self.body:
            body_feat = block(body_feat)
            outs.append(body_feat)
        outs.append(feat)
        out = self.conv_after_fusion(self.conv_fusion(torch.cat(outs, dim=1)))
        out = self.conv_last(self.upsample(out))
        if self.global_residual:
            return x + out / self.img_range
        return self.add_mean(out) / self.img_range
