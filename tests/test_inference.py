"""Inference: checkpoint -> model, exact tiling, self-ensemble, image kinds, and the inference_msrn.py command line."""
import copy
import cv2
import numpy as np
import os
import pytest
import subprocess
import sys
import torch

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.inference import (MSRNer, UnsupportedImageError, load_msrn, msrn_config_from_state_dict,
                                   msrn_receptive_radius, tile_forward, upscale_path)
from msrn_plugin.inference.ensemble import self_ensemble
from msrn_plugin.utils.checkpoint import CheckpointError, atomic_torch_save
from msrn_plugin.utils.image_io import read_image, write_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import inference_msrn  # noqa: E402


def tiny_msrn(scale: int, num_block: int = 1, num_feat: int = 8, num_ch: int = 3) -> MSRN:
    return MSRN(num_in_ch=num_ch, num_out_ch=num_ch, num_feat=num_feat, num_block=num_block, upscale=scale,
                rgb_mean=[0.45] * num_ch).eval()


def save_ckpt(path, net, key='params'):
    atomic_torch_save({key: net.state_dict()}, str(path))
    return str(path)


def to_tensor(img_bgr: np.ndarray, dtype=torch.float32) -> torch.Tensor:
    return torch.from_numpy(img_bgr[:, :, ::-1].transpose(2, 0, 1).copy()).to(dtype)[None] / 255.


# ---------------------------------------------------------------------------------------------- receptive field
def test_paper_msrn_radius():
    """3x3 head + 8 x (5x5 + 5x5) + 3x3 + upsampler/last conv rounding up to 2 LR px = 36; x1 has no upsampler."""
    assert [msrn_receptive_radius(MSRN(upscale=s)) for s in (2, 3, 4, 8)] == [36, 36, 36, 36]
    assert msrn_receptive_radius(MSRN(upscale=1, num_block=8)) == 35


@pytest.mark.parametrize('scale', [1, 2, 3, 4, 8])
@pytest.mark.parametrize('num_block', [1, 2])
def test_radius_equals_autograd_support(scale, num_block):
    """The derived radius is exactly the extent of the input gradient of one LR pixel's output block."""
    net = tiny_msrn(scale, num_block).double()
    radius = msrn_receptive_radius(net)
    c = radius + 3
    x = torch.rand(1, 3, 2 * c + 1, 2 * c + 1, dtype=torch.float64, requires_grad=True)
    net(x)[:, :, c * scale:(c + 1) * scale, c * scale:(c + 1) * scale].sum().backward()
    rows, cols = (x.grad.abs().sum((0, 1)) > 0).nonzero(as_tuple=True)
    assert (c - rows.min().item(), rows.max().item() - c) == (radius, radius)
    assert (c - cols.min().item(), cols.max().item() - c) == (radius, radius)


@pytest.mark.parametrize('scale,size,tile', [(2, (37, 29), 10), (3, (25, 31), 8), (4, (30, 30), 16), (1, (33, 20), 9)])
def test_tiled_equals_whole_and_pad_is_minimal(scale, size, tile):
    net = tiny_msrn(scale, num_block=1).double()
    radius = msrn_receptive_radius(net)
    x = torch.rand(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        whole = net(x)
        tiled = tile_forward(net, x, scale, tile, radius)
        short = tile_forward(net, x, scale, tile, radius - 1)
    assert tiled.shape == whole.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert (tiled - whole).abs().max().item() < 1e-6  # float32 output buffer; float64 compute
    # one pixel less overlap is visibly wrong at the seams: the radius is the minimum
    assert (short - whole).abs().max().item() > 1e-5


def test_tiled_float32_and_ensemble_equal_whole():
    net = tiny_msrn(2, num_block=2)
    x = torch.rand(1, 3, 40, 34)
    whole = MSRNer(net, 2).forward_tensor(x)
    tiled = MSRNer(net, 2, tile=12).forward_tensor(x)
    assert (tiled - whole).abs().max().item() < 1e-5
    ens_whole = MSRNer(net, 2, ensemble=True).forward_tensor(x)
    ens_tiled = MSRNer(net, 2, tile=12, ensemble=True).forward_tensor(x)
    assert (ens_tiled - ens_whole).abs().max().item() < 1e-5
    with torch.no_grad():
        assert torch.allclose(ens_whole, self_ensemble(net, x), atol=1e-6)
    assert (ens_whole - whole).abs().max().item() > 1e-3  # the ensemble is not a no-op


def test_tile_pad_required_for_other_models():
    with pytest.raises(ValueError, match='no receptive-field rule is known; give tile_pad'):
        MSRNer(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, 1, 1)), 1, tile=8)


# ---------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('scale,num_block,num_feat', [(1, 1, 8), (2, 2, 8), (3, 1, 12), (4, 2, 8), (8, 1, 8)])
def test_load_msrn_infers_config(tmp_path, scale, num_block, num_feat):
    net = tiny_msrn(scale, num_block, num_feat)
    path = save_ckpt(tmp_path / 'net_g.pth', net)  # no network record: inferred from the weights
    loaded, opt = load_msrn(path, global_residual=False if scale == 1 else None)
    assert opt == dict(type='MSRN', num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_block=num_block, upscale=scale,
                       img_range=255., rgb_mean=pytest.approx([0.45] * 3), global_residual=False)
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_load_msrn_gray_params_ema_and_module_prefix(tmp_path):
    net, ema = tiny_msrn(2, num_ch=1), tiny_msrn(2, num_ch=1)
    state = {'params': net.state_dict(), 'params_ema': {f'module.{k}': v for k, v in ema.state_dict().items()}}
    atomic_torch_save(state, str(tmp_path / 'g.pth'))
    loaded, opt = load_msrn(tmp_path / 'g.pth')
    assert opt['num_in_ch'] == opt['num_out_ch'] == 1
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), ema(x))  # EMA weights preferred
        assert torch.equal(load_msrn(tmp_path / 'g.pth', param_key='params')[0](x), net(x))
    atomic_torch_save(net.state_dict(), str(tmp_path / 'bare.pth'))  # a bare state dict works too
    with torch.no_grad():
        assert torch.equal(load_msrn(tmp_path / 'bare.pth')[0](x), net(x))


def test_wrong_scale_and_architecture_errors(tmp_path):
    path = save_ckpt(tmp_path / 'x4.pth', tiny_msrn(4))
    with pytest.raises(CheckpointError) as err:
        load_msrn(path, scale=2)
    assert str(err.value) == (f'{path}: this is an x4 MSRN checkpoint, but scale 2 was asked for; use an x2 '
                              'checkpoint or drop the scale option (-s) to run at x4.')
    from basicsr.archs.edsr_arch import EDSR
    edsr = save_ckpt(tmp_path / 'edsr.pth', EDSR(3, 3, num_feat=8, num_block=1, upscale=4))
    with pytest.raises(CheckpointError, match=r'edsr\.pth: not an MSRN checkpoint \(it looks like an EDSR '):
        load_msrn(edsr)
    with pytest.raises(CheckpointError, match=r"no 'missing' entry \(the checkpoint has \['params'\]\)"):
        load_msrn(path, param_key='missing')
    atomic_torch_save({'params': {'x': 1}, 'iter': 3}, str(tmp_path / 'odd.pth'))
    with pytest.raises(CheckpointError, match='not a state dict of tensors'):
        load_msrn(tmp_path / 'odd.pth')
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        load_msrn(tmp_path / 'nope.pth')


def test_nan_weights_refused(tmp_path, photo_bgr, caplog):
    net = tiny_msrn(2)
    state = net.state_dict()
    state['conv_fusion.weight'][0, 0, 0, 0] = float('nan')
    path = save_ckpt(tmp_path / 'nan.pth', net)
    message = f"{path}: tensor 'conv_fusion.weight' holds NaN (a diverged run?); use an earlier checkpoint."
    with pytest.raises(CheckpointError) as err:
        load_msrn(path)
    assert str(err.value) == message
    write_image(tmp_path / 'a.png', photo_bgr[:16, :16])
    assert inference_msrn.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--model_path',
                                path]) == 2
    assert f'error: {message}' in caplog.text
    assert not (tmp_path / 'o').exists()  # nothing written (before: black images and exit 0)


def test_img_range_flag_and_x1_rules(tmp_path):
    net = MSRN(num_feat=8, num_block=1, upscale=1, img_range=1., rgb_mean=[0.4, 0.5, 0.6], global_residual=True)
    path = save_ckpt(tmp_path / 'x1.pth', net.eval())
    loaded, opt = load_msrn(path, img_range=1, global_residual=True)
    assert opt['rgb_mean'] == pytest.approx([0.4, 0.5, 0.6]) and opt['img_range'] == 1.
    x = torch.rand(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    x2 = save_ckpt(tmp_path / 'x2.pth', tiny_msrn(2))
    assert load_msrn(x2)[1]['global_residual'] is False  # only x1 networks can have it: no flag needed
    assert load_msrn(x2, global_residual=False)[1]['global_residual'] is False
    with pytest.raises(CheckpointError, match='global_residual true needs an x1 network with as many input as output '
                       r'channels, but this one is x2, 3 -> 3 channels; drop --global_residual\.'):
        load_msrn(x2, global_residual=True)


def test_inconsistent_state_dict_is_refused():
    state = tiny_msrn(2, num_block=2).state_dict()
    del state['body.1.conv_3_1.weight']
    state['body.3.conv_3_1.weight'] = torch.zeros(8, 8, 3, 3)
    with pytest.raises(CheckpointError, match=r'blocks are not numbered 0\.\.2'):
        msrn_config_from_state_dict(state, 'ckpt')
    state = tiny_msrn(2).state_dict()
    state['upsample.0.weight'] = torch.zeros(20, 8, 3, 3)
    with pytest.raises(CheckpointError, match='cannot infer the scale from the upsampler'):
        msrn_config_from_state_dict(state, 'ckpt')


# ---------------------------------------------------------------------------------------------- images
@pytest.fixture
def net_x2():
    return tiny_msrn(2, num_block=1)


def test_enhance_color_matches_model(net_x2, photo_bgr):
    img = photo_bgr[100:140, 200:236]
    out = MSRNer(net_x2, 2).enhance(img)
    with torch.no_grad():
        ref = net_x2(to_tensor(img))[0].clamp(0, 1).numpy().transpose(1, 2, 0)[:, :, ::-1]
    assert out.shape == (80, 72, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, (ref * 255).round().astype(np.uint8))


def test_enhance_gray_rgba_and_16bit(net_x2, photo_bgr):
    up = MSRNer(net_x2, 2)
    img = photo_bgr[:32, :24]
    color = up.enhance(img)
    gray_in = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    gray = up.enhance(gray_in)
    assert gray.shape == (64, 48) and gray.dtype == np.uint8
    expected = cv2.cvtColor(up.enhance(cv2.cvtColor(gray_in, cv2.COLOR_GRAY2BGR)).astype(np.float32) / 255,
                            cv2.COLOR_BGR2GRAY)
    assert np.abs(gray.astype(np.float32) - expected * 255).max() <= 1

    alpha = np.tile(np.linspace(0, 255, 24, dtype=np.float32), (32, 1)).astype(np.uint8)
    rgba = up.enhance(np.dstack([img, alpha]))
    assert rgba.shape == (64, 48, 4)
    np.testing.assert_array_equal(rgba[:, :, :3], color)  # colour unaffected by the alpha channel
    ref_alpha = cv2.resize(alpha.astype(np.float32) / 255, (48, 64), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(rgba[:, :, 3], (np.clip(ref_alpha, 0, 1) * 255).round().astype(np.uint8))

    img16 = img.astype(np.uint16) * 257 + 100  # not a plain 8-bit image: values between the 8-bit levels
    out16 = up.enhance(img16)
    assert out16.dtype == np.uint16 and out16.max() > 255
    with torch.no_grad():
        ref = net_x2(torch.from_numpy(img16[:, :, ::-1].transpose(2, 0, 1) / 65535.).float()[None])
    ref = (ref[0].clamp(0, 1).numpy().transpose(1, 2, 0)[:, :, ::-1] * 65535).round()
    assert np.abs(out16.astype(np.float64) - ref).max() <= 1


def test_unsupported_images(photo_bgr):
    up = MSRNer(tiny_msrn(2, num_ch=1), 2)
    with pytest.raises(UnsupportedImageError, match='model takes 1-channel'):
        up.enhance(photo_bgr[:8, :8])
    with pytest.raises(UnsupportedImageError, match='uint8 or uint16, got float32'):
        up.enhance(np.zeros((8, 8), np.float32))


def test_bf16_close_to_fp32(net_x2, photo_bgr):
    img = photo_bgr[:24, :24]
    ref = MSRNer(net_x2, 2).enhance(img).astype(int)
    net = copy.deepcopy(net_x2)
    out = MSRNer(net, 2, precision='bf16').enhance(img).astype(int)
    assert next(net.parameters()).dtype == torch.bfloat16
    assert np.abs(out - ref).mean() < 3 and np.abs(out - ref).max() < 40


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_folder_kinds_and_bad_file(tmp_path, net_x2, photo_bgr):
    ckpt = save_ckpt(tmp_path / 'net_g_x2.pth', net_x2)
    src = tmp_path / 'in'
    img = photo_bgr[60:100, 80:110]
    write_image(src / 'color.png', img)
    write_image(src / 'gray.png', cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    write_image(src / 'rgba.png', np.dstack([img, np.full(img.shape[:2], 128, np.uint8)]))
    write_image(src / 'deep.tif', img.astype(np.uint16) * 257)
    (src / 'broken.png').write_bytes(b'not a png')
    (src / 'notes.txt').write_text('skipped')
    out = tmp_path / 'out'
    code = inference_msrn.main(['-i', str(src), '-o', str(out), '--model_path', ckpt, '-s', '2', '--suffix', 'x2'])
    assert code == 1  # the broken file is reported, the others are written
    assert sorted(os.listdir(out)) == ['color_x2.png', 'deep_x2.tif', 'gray_x2.png', 'rgba_x2.png']
    kinds = {n: read_image(out / n) for n in os.listdir(out)}
    assert kinds['color_x2.png'].shape == (80, 60, 3)
    assert kinds['gray_x2.png'].shape == (80, 60)
    assert kinds['rgba_x2.png'].shape == (80, 60, 4) and (kinds['rgba_x2.png'][:, :, 3] == 128).all()
    assert kinds['deep_x2.tif'].dtype == np.uint16
    np.testing.assert_array_equal(kinds['color_x2.png'], MSRNer(net_x2, 2).enhance(img))

    # tiled + exact: the same files as without tiling
    tiled = tmp_path / 'tiled'
    assert inference_msrn.main(['-i', str(src / 'color.png'), '-o', str(tiled), '--model_path', ckpt, '--tile',
                                '12']) == 0
    np.testing.assert_array_equal(read_image(tiled / 'color.png'), kinds['color_x2.png'])


def test_cli_errors(tmp_path, net_x2, photo_bgr, caplog):
    ckpt = save_ckpt(tmp_path / 'net.pth', net_x2)
    write_image(tmp_path / 'a.png', photo_bgr[:16, :16])
    before = (tmp_path / 'a.png').read_bytes()
    assert inference_msrn.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path), '--model_path', ckpt]) == 2
    assert 'the output would overwrite the input' in caplog.text
    assert (tmp_path / 'a.png').read_bytes() == before
    assert inference_msrn.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--model_path', ckpt,
                                '-s', '4']) == 2  # a refused checkpoint is bad input
    assert 'this is an x2 MSRN checkpoint, but scale 4 was asked for' in caplog.text
    assert inference_msrn.main(['-i', str(tmp_path / 'missing'), '-o', str(tmp_path / 'o'), '--model_path',
                                ckpt]) == 2
    assert 'missing: no such file or folder' in caplog.text
    assert not (tmp_path / 'o').exists()
    if not torch.cuda.is_available():
        assert inference_msrn.main(['-i', str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--model_path', ckpt,
                                    '--device', 'cuda']) == 1
        assert 'no CUDA device is available' in caplog.text


def test_script_runs_as_a_program(tmp_path, net_x2, photo_bgr):
    ckpt = save_ckpt(tmp_path / 'net.pth', net_x2)
    write_image(tmp_path / 'in.png', photo_bgr[:20, :20])
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'inference_msrn.py'), '-i',
                           str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '--model_path', ckpt, '--ensemble',
                           '--bf16'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_image(tmp_path / 'out' / 'in.png').shape == (40, 40, 3)


def test_upscale_path_returns_report(tmp_path, net_x2, photo_bgr):
    write_image(tmp_path / 'in' / 'a.png', photo_bgr[:10, :12])
    report = upscale_path(tmp_path / 'in', tmp_path / 'out', MSRNer(net_x2, 2), show_progress=False)
    assert report.exit_code == 0 and report.results == [str(tmp_path / 'out' / 'a.png')]
    assert sorted(os.listdir(tmp_path / 'out')) == ['a.png']  # no temporary file left
