"""MSRNModel: SRModel whose validation/test can run the x8 self-ensemble (MSRN+), through BasicSR's test pipeline."""
import glob
import json
import numpy as np
import os
import pytest
import torch
import yaml
from basicsr.utils import img2tensor, tensor2img

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.models.msrn_model import MSRNModel
from msrn_plugin.prep.benchmark import prepare_benchmark
from msrn_plugin.utils.image_io import read_image, write_image
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import load_photo
from msrn_plugin.utils.pipeline import run_pipeline

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
NET = {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': 2}


def _model(self_ensemble=None, is_train=False, ema_decay=0) -> MSRNModel:
    opt = {'num_gpu': 0, 'is_train': is_train, 'dist': False, 'network_g': dict(NET),
           'path': {'pretrain_network_g': None, 'strict_load_g': True}, 'val': {}}
    if self_ensemble is not None:
        opt['val']['self_ensemble'] = self_ensemble
    if is_train:
        opt['train'] = {'ema_decay': ema_decay, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
                        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}
    return MSRNModel(opt)


def _ensemble_by_hand(net, x):
    """The 8 dihedral transforms written out one by one, each undone on the output."""
    pairs = [
        (lambda t: t, lambda t: t),
        (lambda t: t.flip(-1), lambda t: t.flip(-1)),
        (lambda t: t.flip(-2), lambda t: t.flip(-2)),
        (lambda t: t.flip(-1).flip(-2), lambda t: t.flip(-2).flip(-1)),
        (lambda t: t.transpose(-1, -2), lambda t: t.transpose(-1, -2)),
        (lambda t: t.transpose(-1, -2).flip(-1), lambda t: t.flip(-1).transpose(-1, -2)),
        (lambda t: t.transpose(-1, -2).flip(-2), lambda t: t.flip(-2).transpose(-1, -2)),
        (lambda t: t.transpose(-1, -2).flip(-1).flip(-2), lambda t: t.flip(-2).flip(-1).transpose(-1, -2)),
    ]
    with torch.no_grad():
        return sum(undo(net(do(x))) for do, undo in pairs) / 8


def _lq():
    img = load_photo('chelsea.png')[40:64, 100:130]  # 24x30: not square, so transposes are exercised
    return img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True)[None]


def test_plain_test_is_srmodel():
    model = _model()
    assert model.use_self_ensemble is False
    model.feed_data({'lq': _lq()})
    model.test()
    with torch.no_grad():
        expected = model.net_g.eval()(_lq())
    assert torch.equal(model.output, expected)


def test_self_ensemble_averages_the_eight_transforms():
    model = _model(self_ensemble=True)
    model.net_g.train()
    model.feed_data({'lq': _lq()})
    model.test()
    assert model.net_g.training  # the mode is restored
    net = model.net_g.eval()
    expected = _ensemble_by_hand(net, _lq())
    assert model.output.shape == (1, 3, 48, 60)
    torch.testing.assert_close(model.output, expected, rtol=0, atol=1e-6)
    with torch.no_grad():
        assert (model.output - net(_lq())).abs().max() > 1e-3  # a random network is not equivariant


def test_self_ensemble_uses_ema_network_when_there_is_one():
    model = _model(self_ensemble=True, is_train=True, ema_decay=0.999)
    with torch.no_grad():
        for p in model.net_g_ema.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.feed_data({'lq': _lq()})
    model.test()
    torch.testing.assert_close(model.output, _ensemble_by_hand(model.net_g_ema.eval(), _lq()), rtol=0, atol=1e-6)


def test_bad_flag():
    with pytest.raises(ValueError) as err:
        _model(self_ensemble='yes')
    assert str(err.value) == "val.self_ensemble must be true or false, got 'yes'."


@pytest.mark.parametrize('self_ensemble', [False, True])
def test_benchmark_option_file_through_test_pipeline(tmp_path, self_ensemble, basicsr_log):
    """options/test_MSRN_x2.yml (pointed at a tiny Set5 made by prepare_benchmark) runs MSRNModel end to end."""
    hr = tmp_path / 'hr'
    write_image(hr / 'cat.png', load_photo('chelsea.png')[:61, :75])
    write_image(hr / 'coins.png', load_photo('coins.png')[:50, :47])
    prepare_benchmark(str(hr), str(tmp_path / 'Set5'), scales=(2, ), progress=False)
    torch.manual_seed(1)
    net = MSRN(num_feat=8, num_block=1, upscale=2)
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')

    opt = load_options(os.path.join(REPO_ROOT, 'options', 'test_MSRN_x2.yml'))
    assert opt['model_type'] == 'MSRNModel' and opt['val']['self_ensemble'] is False
    opt = json.loads(json.dumps(opt))  # plain dicts (the loader returns OrderedDicts)
    opt['name'] = f'tiny_x2_se{int(self_ensemble)}'
    opt['num_gpu'] = 0
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], dataroot_gt=str(tmp_path / 'Set5' / 'GTmod2'),
                                      dataroot_lq=str(tmp_path / 'Set5' / 'LRbicx2'))}
    opt['network_g'] = dict(opt['network_g'], num_feat=8, num_block=1)
    opt['path'] = dict(opt['path'], pretrain_network_g=str(tmp_path / 'net.pth'))
    opt['val'] = dict(opt['val'], self_ensemble=self_ensemble)
    yml = tmp_path / 'test.yml'
    yml.write_text(yaml.safe_dump(opt, sort_keys=False))
    run_pipeline('test', ['-opt', str(yml)], root_path=str(tmp_path))

    results = tmp_path / 'results' / opt['name']
    saved = read_image(glob.glob(str(results / 'visualization' / 'Set5' / 'cat*.png'))[0])
    lq = read_image(tmp_path / 'Set5' / 'LRbicx2' / 'cat.png').astype(np.float32) / 255.
    lq = img2tensor(lq, bgr2rgb=True, float32=True)[None]
    with torch.no_grad():
        out = _ensemble_by_hand(net.eval(), lq) if self_ensemble else net.eval()(lq)
    np.testing.assert_array_equal(saved, tensor2img(out))
    log = '\n'.join(basicsr_log)
    assert 'Validation Set5' in log and '# psnr:' in log and '# ssim:' in log
    assert ('x8 geometric self-ensemble (MSRN+)' in log) is self_ensemble
