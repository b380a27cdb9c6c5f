"""ONNX export: the exported file matches PyTorch on a real photo (skipped when onnx / onnxruntime are missing)."""
import logging
import numpy as np
import os
import pytest
import sys
import torch

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.utils.checkpoint import atomic_torch_save
from msrn_plugin.utils.image_io import write_image

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

from msrn_plugin.inference.export import compare_onnx, export_onnx, onnx_forward  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import export_onnx as export_script  # noqa: E402


@pytest.fixture
def net():
    return MSRN(num_feat=8, num_block=1, upscale=3).eval()


def photo_tensor(photo_bgr, h, w):
    img = photo_bgr[200:200 + h, 220:220 + w, ::-1].astype(np.float32) / 255
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def test_dynamic_export_matches_pytorch(tmp_path, net, photo_bgr):
    path = export_onnx(net, tmp_path / 'm.onnx', sample_size=16)
    assert os.listdir(tmp_path) == ['m.onnx']  # no temporary file left
    x = photo_tensor(photo_bgr, 40, 28)  # not the traced size: height and width are dynamic
    out = onnx_forward(path, x.numpy())
    assert out.shape == (1, 3, 120, 84)
    with torch.no_grad():
        ref = net(x).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert compare_onnx(path, net, x) == pytest.approx(float(np.abs(out - ref).max()))


def test_static_export_rejects_other_sizes(tmp_path, net, photo_bgr):
    path = export_onnx(net, tmp_path / 's.onnx', sample_size=12, dynamic=False)
    assert compare_onnx(path, net, photo_tensor(photo_bgr, 12, 12)) < 1e-5
    with pytest.raises(Exception):
        onnx_forward(path, photo_tensor(photo_bgr, 16, 12).numpy())


def test_export_script(tmp_path, net, photo_bgr, caplog):
    caplog.set_level(logging.INFO)
    ckpt = tmp_path / 'net_g.pth'
    atomic_torch_save({'params': net.state_dict()}, str(ckpt))
    write_image(tmp_path / 'check.png', photo_bgr[:20, :30])
    out = tmp_path / 'onnx' / 'msrn.onnx'
    assert export_script.main(['--model_path', str(ckpt), '-o', str(out), '--check_image',
                               str(tmp_path / 'check.png')]) == 0
    assert 'MSRN x3, opset 17, dynamic size). onnxruntime vs PyTorch on a 20x30 image' in caplog.text
    assert out.is_file()
    # a checkpoint that is not MSRN: clear error, nothing written
    atomic_torch_save({'params': {'conv.weight': torch.zeros(1)}}, str(tmp_path / 'bad.pth'))
    assert export_script.main(['--model_path', str(tmp_path / 'bad.pth'), '-o', str(tmp_path / 'bad.onnx')]) == 2
    assert 'not an MSRN checkpoint' in caplog.text
    assert not (tmp_path / 'bad.onnx').exists()


def test_export_refuses_nan_weights(tmp_path, net, caplog):
    state = net.state_dict()
    state['conv_after_fusion.bias'][2] = float('nan')
    ckpt = str(tmp_path / 'nan.pth')
    atomic_torch_save({'params': state}, ckpt)
    assert export_script.main(['--model_path', ckpt, '-o', str(tmp_path / 'nan.onnx')]) == 2
    assert (f"error: {ckpt}: tensor 'conv_after_fusion.bias' holds NaN (a diverged run?); use an earlier "
            'checkpoint.') in caplog.text
    assert os.listdir(tmp_path) == ['nan.pth']  # no ONNX file written


def test_export_of_x1_file_without_record(tmp_path, photo_bgr, caplog):
    """Older x1 files: refused without --global_residual; with it, the ONNX graph is the network's."""
    denoiser = MSRN(num_feat=8, num_block=1, upscale=1, rgb_mean=[0.4, 0.5, 0.6], global_residual=True).eval()
    ckpt = str(tmp_path / 'x1.pth')
    atomic_torch_save({'params': denoiser.state_dict()}, ckpt)
    out = tmp_path / 'x1.onnx'
    assert export_script.main(['--model_path', ckpt, '-o', str(out)]) == 2
    assert 'pass --global_residual true or --global_residual false' in caplog.text and not out.exists()
    assert export_script.main(['--model_path', ckpt, '-o', str(out), '--global_residual', 'true']) == 0
    x = photo_tensor(photo_bgr, 16, 20)
    with torch.no_grad():
        np.testing.assert_allclose(onnx_forward(out, x.numpy()), denoiser(x).numpy(), atol=1e-5)
