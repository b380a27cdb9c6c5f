"""A faithful re-statement of the official MSRN network (MIVRC/MSRN-PyTorch ``model/msrn.py`` and EDSR's
``model/common.py``), used only to check the checkpoint conversion. Same module names, so same state-dict keys."""
import math
import torch
from torch import nn


def default_conv(in_channels, out_channels, kernel_size, bias=True):
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=(kernel_size // 2), bias=bias)


class MeanShift(nn.Conv2d):

    def __init__(self, rgb_range, rgb_mean, rgb_std, sign=-1):
        super().__init__(3, 3, kernel_size=1)
        std = torch.Tensor(rgb_std)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        self.bias.data = sign * rgb_range * torch.Tensor(rgb_mean) / std
        self.requires_grad = False  # the official bug: a module attribute, the parameters stay trainable


class Upsampler(nn.Sequential):

    def __init__(self, conv, scale, n_feats):
        m = []
        if (scale & (scale - 1)) == 0:
            for _ in range(int(math.log(scale, 2))):
                m.append(conv(n_feats, 4 * n_feats, 3))
                m.append(nn.PixelShuffle(2))
        elif scale == 3:
            m.append(conv(n_feats, 9 * n_feats, 3))
            m.append(nn.PixelShuffle(3))
        super().__init__(*m)


class OfficialMSRB(nn.Module):

    def __init__(self, n_feats=64):
        super().__init__()
        self.conv_3_1 = default_conv(n_feats, n_feats, 3)
        self.conv_3_2 = default_conv(n_feats * 2, n_feats * 2, 3)
        self.conv_5_1 = default_conv(n_feats, n_feats, 5)
        self.conv_5_2 = default_conv(n_feats * 2, n_feats * 2, 5)
        self.confusion = nn.Conv2d(n_feats * 4, n_feats, 1, padding=0, stride=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        output_3_1 = self.relu(self.conv_3_1(x))
        output_5_1 = self.relu(self.conv_5_1(x))
        input_2 = torch.cat([output_3_1, output_5_1], 1)
        output_3_2 = self.relu(self.conv_3_2(input_2))
        output_5_2 = self.relu(self.conv_5_2(input_2))
        input_3 = torch.cat([output_3_2, output_5_2], 1)
        output = self.confusion(input_3)
        output += x
        return output


class OfficialMSRN(nn.Module):

    def __init__(self, scale=4, n_feats=64, n_blocks=8, n_colors=3, rgb_range=255):
        super().__init__()
        rgb_mean = (0.4488, 0.4371, 0.4040)
        rgb_std = (1.0, 1.0, 1.0)
        self.n_blocks = n_blocks
        self.sub_mean = MeanShift(rgb_range, rgb_mean, rgb_std)
        self.head = nn.Sequential(default_conv(n_colors, n_feats, 3))
        self.body = nn.ModuleList([OfficialMSRB(n_feats) for _ in range(n_blocks)])
        self.tail = nn.Sequential(
            nn.Conv2d(n_feats * (n_blocks + 1), n_feats, 1, padding=0, stride=1), default_conv(n_feats, n_feats, 3),
            Upsampler(default_conv, scale, n_feats), default_conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, rgb_mean, rgb_std, 1)

    def forward(self, x):
        x = self.sub_mean(x)
        x = self.head(x)
        res = x
        outs = []
        for i in range(self.n_blocks):
            x = self.body[i](x)
            outs.append(x)
        outs.append(res)
        x = self.tail(torch.cat(outs, 1))
        return self.add_mean(x)
