"""MSRN architecture: every registered plugin model at every scale, parameter counts, gradients, mean shift."""
import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from msrn_plugin.archs.msrn_arch import DIV2K_RGB_MEAN, MSRB, MSRN, SUPPORTED_SCALES
from msrn_plugin.models.msrn_model import MSRNModel
from msrn_plugin.utils.checkpoint import safe_torch_load

PLUGIN_ARCHS = sorted(name for name in ARCH_REGISTRY.keys()
                      if ARCH_REGISTRY.get(name).__module__.startswith('msrn_plugin'))
SCALES = SUPPORTED_SCALES  # every scale MSRN accepts; each test below runs at all of them where scale matters
TINY = dict(num_feat=8, num_block=2)
MEAN_SHIFT_KEYS = ('sub_mean.weight', 'sub_mean.bias', 'add_mean.weight', 'add_mean.bias')


def test_plugin_registers_msrn():
    assert PLUGIN_ARCHS == ['MSRN']
    assert SUPPORTED_SCALES == (1, 2, 3, 4, 8)


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


@pytest.mark.parametrize('scale, count', [
    (1, 5_930_307 - (64 * 256 * 9 + 256)),  # no official x1: the x2 network without its upsampler (conv 64->256, 3x3)
    (2, 5_930_307), (3, 6_114_947), (4, 6_078_019), (8, 6_225_731)])
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


@pytest.mark.parametrize('scale', SCALES)
def test_output_mean_shift_values(scale):
    net = MSRN(upscale=scale, **TINY)
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    y = net(torch.rand(1, 3, 4, 4))
    assert y.shape == (1, 3, 4 * scale, 4 * scale)
    expected = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand_as(y)
    assert torch.allclose(y, expected, atol=1e-6)


def test_global_residual_identity_at_x1():
    net = MSRN(num_in_ch=1, num_out_ch=1, upscale=1, rgb_mean=[0.5], global_residual=True, **TINY)
    torch.nn.init.zeros_(net.conv_last.weight)
    torch.nn.init.zeros_(net.conv_last.bias)
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(net(x), x)


def _perturb_mean_shift(net: MSRN, rgb_mean) -> None:
    """Non-identity, non-default mean shifts, as released official checkpoints may hold (see MeanShift)."""
    with torch.no_grad():
        for m, sign in ((net.sub_mean, -1), (net.add_mean, 1)):
            m.weight.copy_(torch.eye(3).view(3, 3, 1, 1) + 0.01 * torch.randn(3, 3, 1, 1))
            m.bias.copy_(sign * 255. * torch.tensor(rgb_mean))


@pytest.mark.parametrize('scale', SCALES)
def test_mean_shift_is_not_trained_by_the_training_model(tmp_path, scale):
    """MSRNModel's optimizer (Adam with weight decay, which moves every parameter it holds), gradient clipping and EMA
    leave the mean shift as loaded, while the convolutions move; the saved checkpoint holds it. The official
    MeanShift (a Conv2d with ``module.requires_grad = False``) fails this."""
    opt = {'num_gpu': 0, 'is_train': True, 'dist': False, 'grad_clip_max_norm': 1.0,
           'network_g': {'type': 'MSRN', 'upscale': scale, **TINY},
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'models': str(tmp_path)}, 'val': {},
           'train': {'ema_decay': 0.5, 'optim_g': {'type': 'Adam', 'lr': 1e-2, 'weight_decay': 0.1},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                     'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    model = MSRNModel(opt)
    _perturb_mean_shift(model.net_g, (0.3, 0.5, 0.7))
    model.net_g_ema.load_state_dict(model.net_g.state_dict())
    loaded = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    for _ in range(2):
        model.feed_data({'lq': torch.rand(2, 3, 6, 6), 'gt': torch.rand(2, 3, 6 * scale, 6 * scale)})
        model.optimize_parameters(1)
    for net in (model.net_g, model.net_g_ema):
        state = net.state_dict()
        for key in MEAN_SHIFT_KEYS:
            assert torch.equal(state[key], loaded[key]), key
        assert not torch.equal(state['conv_first.weight'], loaded['conv_first.weight'])  # training did happen
    model.save_network(model.net_g, 'net_g', 2)
    saved = safe_torch_load(tmp_path / 'net_g_2.pth')['params']
    for key in MEAN_SHIFT_KEYS:
        assert torch.equal(saved[key], loaded[key]), key


@pytest.mark.parametrize('scale', SCALES)
def test_mean_shift_survives_a_state_dict_round_trip(scale):
    """A network built with the default rgb_mean takes a checkpoint's own mean shift (not its constructor's): the
    output equals the source network's. A non-persistent buffer, or a forward pass that used rgb_mean, fails."""
    source = MSRN(upscale=scale, rgb_mean=(0.3, 0.5, 0.7), **TINY)
    _perturb_mean_shift(source, (0.3, 0.5, 0.7))
    target = MSRN(upscale=scale, **TINY)
    x = torch.rand(1, 3, 5, 6) * 255.
    assert not torch.equal(target.sub_mean.bias, source.sub_mean.bias)
    with torch.no_grad():
        target.load_state_dict(source.state_dict(), strict=True)
        assert torch.equal(target(x), source(x))
    assert set(MEAN_SHIFT_KEYS) <= set(source.state_dict())


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
