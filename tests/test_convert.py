"""Official-checkpoint conversion: output equality with the official network, strict loading, clear errors."""
import pytest
import torch
from basicsr.models.base_model import BaseModel
from official_msrn import OfficialMSRN

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.inference import load_msrn
from msrn_plugin.utils.checkpoint import CheckpointError
from msrn_plugin.utils.convert import convert_official_checkpoint

SCRIPT_MODULE = 'convert_official_msrn'


def _official(scale: int, n_feats: int = 8, n_blocks: int = 2) -> OfficialMSRN:
    torch.manual_seed(scale)
    net = OfficialMSRN(scale=scale, n_feats=n_feats, n_blocks=n_blocks)
    with torch.no_grad():  # released weights may hold trained, non-identity mean shifts
        for m in (net.sub_mean, net.add_mean):
            m.weight.add_(0.05 * torch.randn_like(m.weight))
            m.bias.add_(5 * torch.randn_like(m.bias))
    return net.eval()


def test_official_reference_counts_match_the_plugin():
    official = OfficialMSRN(scale=4)
    assert sum(p.numel() for p in official.parameters()) - 24 == sum(p.numel() for p in MSRN().parameters())


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_round_trip_equals_official(tmp_path, scale):
    official = _official(scale)
    src, dst = tmp_path / f'MSRN_x{scale}.pt', tmp_path / f'MSRN_x{scale}.pth'
    torch.save(official.state_dict(), src)

    config = convert_official_checkpoint(src, dst)
    assert config == dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2, upscale=scale)
    net = MSRN(**config).eval()
    BaseModel({'num_gpu': 0, 'is_train': False}).load_network(net, str(dst), strict=True)  # pretrain_network_g path

    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        expected = official(255 * x) / 255
        got = net(x)
    assert got.shape == (1, 3, 10 * scale, 12 * scale)
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(net.sub_mean.weight, torch.eye(3).view(3, 3, 1, 1))  # perturbed values kept

    # the converted file describes itself: readers build the same network without flags
    record = torch.load(dst, weights_only=True)['msrn_plugin']
    assert record['converted_from'] == f'MSRN_x{scale}.pt' and record['network_key'] == 'network_g'
    assert {k: v for k, v in record['network'].items() if k != 'rgb_mean'} == dict(
        type='MSRN', **config, img_range=255., global_residual=False)
    loaded, opt = load_msrn(dst)
    with torch.no_grad():
        assert torch.equal(loaded(x), got)


def test_script_converts_and_reports(tmp_path, caplog):
    import importlib.util
    import logging
    import os
    caplog.set_level(logging.INFO)
    path = os.path.join(os.path.dirname(__file__), os.pardir, 'scripts', 'convert_official_msrn.py')
    spec = importlib.util.spec_from_file_location(SCRIPT_MODULE, path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src, dst = tmp_path / 'MSRN_x3.pt', tmp_path / 'out' / 'MSRN_x3.pth'
    torch.save(_official(3).state_dict(), src)
    assert script.main(['--input', str(tmp_path / 'missing.pt'), '--output', str(dst)]) == 2
    assert f'error: {tmp_path / "missing.pt"}: checkpoint not found; check the path.' in caplog.text
    assert not dst.parent.exists()
    assert script.main(['--input', str(src), '--output', str(dst)]) == 0  # creates the output folder
    assert 'upscale: 3' in caplog.text
    assert set(torch.load(dst, weights_only=True)) == {'params', 'msrn_plugin'}


def test_not_an_official_checkpoint(tmp_path):
    src = tmp_path / 'other.pt'
    torch.save({'conv.weight': torch.zeros(1)}, src)
    with pytest.raises(CheckpointError) as err:
        convert_official_checkpoint(src, tmp_path / 'out.pth')
    assert str(err.value).startswith(f'{src}: not an official MSRN checkpoint: missing sub_mean.weight, ')
    assert not (tmp_path / 'out.pth').exists()


def test_basicsr_checkpoint_gets_a_hint(tmp_path):
    src = tmp_path / 'net_g_latest.pth'
    torch.save({'params': MSRN(num_feat=4, num_block=1).state_dict()}, src)
    with pytest.raises(CheckpointError, match="It looks like a BasicSR checkpoint already"):
        convert_official_checkpoint(src, tmp_path / 'out.pth')


def test_nan_weights_are_refused(tmp_path):
    official = _official(2)
    with torch.no_grad():
        official.body[1].conv_5_2.weight[0, 0, 0, 0] = float('inf')
    src = tmp_path / 'MSRN_x2.pt'
    torch.save(official.state_dict(), src)
    with pytest.raises(CheckpointError) as err:
        convert_official_checkpoint(src, tmp_path / 'out.pth')
    assert str(err.value) == (f"{src}: tensor 'body.1.conv_5_2.weight' holds Inf (a diverged run?); use an earlier "
                              'checkpoint.')
    assert not (tmp_path / 'out.pth').exists()


class _Evil:

    def __reduce__(self):
        return (print, ('pwned', ))


def test_pickled_code_is_refused(tmp_path):
    src = tmp_path / 'evil.pt'
    torch.save({'head.0.weight': _Evil()}, src)
    with pytest.raises(CheckpointError, match=r'refused to load: the file holds pickled Python objects, not only '
                       r'weights \(it would import and call print\)'):
        convert_official_checkpoint(src, tmp_path / 'out.pth')
    assert not (tmp_path / 'out.pth').exists()
