"""MSRN architecture: every registered plugin model at every scale, parameter counts, gradients, mean shift."""
import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from msrn_plugin.archs.msrn_arch import DIV2K_RGB_MEAN, MSRB, MSRN

PLUGIN_ARCHS = sorted(name for name in ARCH_REGISTRY.keys()
                      if ARCH_REGISTRY.get(name).__module__.startswith('msrn_plugin'))
SCALES = (1, 2, 3, 4, 8)
TINY = dict(num_feat=8, num_block=2)


def test_plugin_registers_msrn():
    assert PLUGIN_ARCHS == ['MSRN']


@pytest.mark.parametrize('arch', PLUGIN_ARCHS)
@pytest.mark.parametrize('scale', SCALES)
def test_forward_shape_every_scale(arch, scale):
    net = build_network({'type': arch, 'upscale': scale, **TINY})
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 3, 7 * scale, 9 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize('arch', PLUGIN_ARCHS)
@pytest.mark.parametrize('scale', SCALES)
def test_gradients_reach_every_parameter(arch, scale):
    net = build_network({'type': arch, 'upscale': scale, **TINY})
    out = net(torch.rand(2, 3, 6, 6))
    (out - torch.rand_like(out)).abs().mean().backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, f'zero gradient for {name}'


@pytest.mark.parametrize('scale, count', [(2, 5_930_307), (3, 6_114_947), (4, 6_078_019), (8, 6_225_731)])
def test_default_parameter_count_matches_official(scale, count):
    net = MSRN(upscale=scale)
    assert sum(p.numel() for p in net.parameters()) == count
    # the 2 x 12 mean-shift values are buffers, not parameters
    assert sum(b.numel() for name, b in net.named_buffers() if 'mean' in name) == 24


def test_defaults_follow_basicsr_names():
    net = MSRN()
    assert (net.upscale, net.img_range, net.num_block) == (4, 255., 8)
    assert len(net.body) == 8 and all(isinstance(b, MSRB) for b in net.body)
    assert net.conv_first.out_channels == 64 and net.conv_fusion.in_channels == 64 * 9


def test_msrb_structure_and_local_residual():
    block = MSRB(num_feat=4)
    assert (block.conv_3_1.kernel_size, block.conv_5_1.kernel_size) == ((3, 3), (5, 5))
    assert (block.conv_3_2.in_channels, block.conv_3_2.out_channels) == (8, 8)
    assert (block.conv_5_2.in_channels, block.conv_5_2.out_channels) == (8, 8)
    assert (block.confusion.in_channels, block.confusion.out_channels, block.confusion.kernel_size) == (16, 4, (1, 1))
    torch.nn.init.zeros_(block.confusion.weight)
    torch.nn.init.zeros_(block.confusion.bias)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(block(x), x)  # fusion outputs zero: only the local residual remains


def test_output_mean_shift_values():
    net = MSRN(upscale=2, **TINY)
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    y = net(torch.rand(1, 3, 4, 4))
    expected = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand_as(y)
    assert torch.allclose(y, expected, atol=1e-6)


def test_global_residual_identity_at_x1():
    net = MSRN(num_in_ch=1, num_out_ch=1, upscale=1, rgb_mean=[0.5], global_residual=True, **TINY)
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(net(x), x)


def test_mean_shift_stays_fixed_when_training():
    net = MSRN(upscale=2, **TINY)
    names = {n for n, _ in net.named_parameters()}
    assert not any('mean' in n for n in names)
    before = {k: v.clone() for k, v in net.state_dict().items() if 'mean' in k}
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        net(torch.rand(1, 3, 6, 6)).mean().backward()
        opt.step()
    after = net.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert torch.equal(after['sub_mean.bias'], -255 * torch.tensor(DIV2K_RGB_MEAN))


def test_unknown_option_is_rejected():
    with pytest.raises(TypeError, match='num_feats'):
        build_network({'type': 'MSRN', 'num_feats': 64})


@pytest.mark.parametrize('kwargs, message', [
    (dict(upscale=5), 'MSRN: upscale must be one of (1, 2, 3, 4, 8), got 5.'),
    (dict(num_in_ch=1, num_out_ch=1), 'MSRN: rgb_mean has 3 values but num_in_ch is 1; give one mean per channel '
     '(e.g. rgb_mean: [0.5] for gray images).'),
    (dict(upscale=2, global_residual=True), 'MSRN: global_residual needs upscale: 1 and num_in_ch == num_out_ch, got '
     'upscale=2, num_in_ch=3, num_out_ch=3.'),
])
def test_bad_configuration_messages(kwargs, message):
    with pytest.raises(ValueError) as err:
        MSRN(**kwargs)
    assert str(err.value) == message
