"""Checkpoints that describe themselves: a network trained at x1 with global_residual runs the same in every reader."""
import logging
import numpy as np
import os
import pytest
import subprocess
import sys
import torch
from basicsr.models.base_model import BaseModel

import msrn_plugin
from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.demos.restoration_demo import derive_options, prepare_photos, write_options
from msrn_plugin.inference import MSRNer, load_msrn
from msrn_plugin.utils.checkpoint import (RECORD_KEY, CheckpointError, atomic_torch_save, checkpoint_upscale,
                                          msrn_config_from_state_dict, safe_torch_load, strip_module_prefix)
from msrn_plugin.utils.image_io import read_image, write_image
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo
from msrn_plugin.utils.pipeline import run_pipeline
from msrn_plugin.utils.validation import OptionValidationError, validate_options
from msrn_plugin.zoo import load_zoo_checkpoint, network_options

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import inference_msrn  # noqa: E402

#: What the tiny denoiser is trained with: x1, global residual, and an img_range / mean that are not the defaults.
NETWORK = {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 1,
           'img_range': 1.0, 'rgb_mean': [0.4, 0.5, 0.6], 'global_residual': True}
X1_MESSAGE = ('{}: an x1 MSRN checkpoint without a network record: whether it was trained with global_residual is '
              'not in its weights; pass --global_residual true or --global_residual false (the plugin\'s denoising '
              'and dehazing options train with true).')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Train the tiny denoiser for 2 iterations through BasicSR's train pipeline; the option file and checkpoint."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    work = tmp_path_factory.mktemp('record')
    prepare_photos(work / 'train', TRAIN_PHOTOS[:2], max_size=64)
    opt = derive_options(load_options(os.path.join(REPO, 'options', 'train_MSRN_denoise_color_sigma25.yml')), {
        'name': 'MSRN_record_x1', 'num_gpu': 0, 'network_g': NETWORK,
        'datasets': {'train': {'dataroot_gt': str(work / 'train'), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
                               'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 2}},
        'train': {'total_iter': 2, 'optim_g': {'lr': 1e-2}, 'scheduler': {'milestones': [2]}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}})
    del opt['datasets']['val'], opt['val']
    try:
        run_pipeline('train', ['-opt', write_options(opt, work / 'train.yml')], root_path=str(work))
    finally:
        torch.set_num_threads(threads)
    return {'work': work, 'opt': opt, 'ckpt': str(work / 'experiments' / 'MSRN_record_x1' / 'models' /
                                                 'net_g_latest.pth')}


def trained_network(trained) -> MSRN:
    """The network as training built it (from the option file), with the trained weights."""
    net = MSRN(**{k: v for k, v in trained['opt']['network_g'].items() if k != 'type'})
    net.load_state_dict(torch.load(trained['ckpt'], weights_only=True)['params'], strict=True)
    return net.eval()


def photo(size: int = 24) -> np.ndarray:
    return load_photo('chelsea.png')[100:100 + size, 150:150 + size]


def without_record(trained, tmp_path, name='old.pth'):
    ckpt = safe_torch_load(trained['ckpt'])
    path = str(tmp_path / name)
    atomic_torch_save({'params': ckpt['params']}, path)
    return path


def with_nan(trained, tmp_path, key='body.0.conv_3_1.weight', value=float('nan')):
    ckpt = safe_torch_load(trained['ckpt'])
    tensor = ckpt['params'][key].clone(memory_format=torch.contiguous_format)
    tensor.view(-1)[1] = value
    ckpt['params'][key] = tensor
    path = str(tmp_path / 'diverged.pth')
    atomic_torch_save(ckpt, path)
    return path


def denoise_test_options(trained, pretrain, network=None) -> dict:
    """The shipped colour-denoising test options on two small photos, with ``pretrain`` as the network."""
    opt = derive_options(load_options(os.path.join(REPO, 'options', 'test_MSRN_denoise_color_sigma25.yml')), {
        'name': 'record_test', 'num_gpu': 0, 'network_g': network or NETWORK, 'path': {'pretrain_network_g': pretrain}})
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], dataroot_gt=str(trained['work'] / 'train'))}
    return opt


# ---------------------------------------------------------------------------------------------- the record
def test_training_writes_the_record(trained):
    ckpt = torch.load(trained['ckpt'], weights_only=True)  # plain values only
    assert set(ckpt) == {'params', RECORD_KEY}
    assert ckpt[RECORD_KEY] == {'format': 1, 'plugin_version': msrn_plugin.__version__, 'network_key': 'network_g',
                                'network': NETWORK}
    assert os.path.isfile(os.path.join(os.path.dirname(trained['ckpt']), 'net_g_2.pth'))


def test_stock_basicsr_load_network_still_loads_it(trained):
    """BasicSR's own load_network (not the plugin's replacement) with its default param_key, in a fresh process
    (it initialises BasicSR's root logger)."""
    code = f'''
import torch
from basicsr.models.base_model import BaseModel
from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.compat.fixes import original
stock = original('basicsr.models.base_model:BaseModel', 'load_network')  # upstream's, as the plugin found it
assert stock.__module__ == 'basicsr.models.base_model' and BaseModel.load_network is not stock
net = MSRN(num_feat=8, num_block=1, upscale=1, img_range=1.0, rgb_mean=[0.4, 0.5, 0.6], global_residual=True)
stock(BaseModel({{'num_gpu': 0, 'is_train': False}}), net, {trained['ckpt']!r}, strict=True)
ref = torch.load({trained['ckpt']!r}, weights_only=True)['params']
print(all(torch.equal(v, ref[k]) for k, v in net.state_dict().items()))
'''
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == 'True'


def test_plugin_load_network_ignores_the_record(trained):
    net = MSRN(**{k: v for k, v in NETWORK.items() if k != 'type'})
    BaseModel({'num_gpu': 0, 'is_train': False}).load_network(net, trained['ckpt'], strict=True)
    x = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        assert torch.equal(net(x), trained_network(trained)(x))


# ---------------------------------------------------------------------------------------------- every reader
def test_cli_output_equals_the_trained_network(trained, tmp_path):
    write_image(tmp_path / 'in' / 'cat.png', photo())
    assert inference_msrn.main(['-i', str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--model_path',
                                trained['ckpt']]) == 0
    expected = MSRNer(trained_network(trained), 1).enhance(photo())
    np.testing.assert_array_equal(read_image(tmp_path / 'out' / 'cat.png'), expected)
    # what the weights alone would give (img_range 255, no global residual) is far off: the record matters
    guessed = MSRN(num_feat=8, num_block=1, upscale=1, rgb_mean=NETWORK['rgb_mean'])
    guessed.load_state_dict(trained_network(trained).state_dict())
    wrong = MSRNer(guessed.eval(), 1).enhance(photo())
    assert np.abs(wrong.astype(int) - expected).max() > 50


def test_load_msrn_returns_the_recorded_options(trained):
    net, opt = load_msrn(trained['ckpt'])
    assert opt == NETWORK and net.global_residual is True and net.img_range == 1.0


def test_onnx_output_equals_the_trained_network(trained, tmp_path, caplog):
    pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    import export_onnx as export_script

    from msrn_plugin.inference.export import onnx_forward

    caplog.set_level(logging.INFO)
    write_image(tmp_path / 'check.png', photo(20))
    out = tmp_path / 'x1.onnx'
    assert export_script.main(['--model_path', trained['ckpt'], '-o', str(out), '--check_image',
                               str(tmp_path / 'check.png')]) == 0
    assert 'OK' in caplog.text
    x = torch.from_numpy(photo(20)[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.no_grad():
        expected = trained_network(trained)(x).numpy()
    np.testing.assert_allclose(onnx_forward(out, x.numpy()), expected, atol=1e-5)


def test_zoo_loads_the_trained_network(trained):
    opt = network_options('MSRN', 1)
    net, used = load_zoo_checkpoint('MSRN', trained['ckpt'], opt)
    assert used == NETWORK
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net(x), trained_network(trained)(x))


def test_pretrain_validation_compares_the_record(trained, tmp_path):
    validate_options(denoise_test_options(trained, trained['ckpt']), is_train=False)  # as trained: accepted
    wrong = dict(NETWORK, global_residual=False, img_range=255.)
    with pytest.raises(OptionValidationError) as err:
        validate_options(denoise_test_options(trained, trained['ckpt'], wrong), is_train=False)
    assert (f'path.pretrain_network_g: {trained["ckpt"]} was trained with other network_g settings (img_range: '
            'checkpoint 1, options 255; global_residual: checkpoint true, options false); set them in network_g as '
            'the checkpoint records them.') in str(err.value)


# ---------------------------------------------------------------------------------------------- files without it
def test_x1_file_without_record_needs_the_flag(trained, tmp_path, caplog):
    old = without_record(trained, tmp_path)
    write_image(tmp_path / 'in.png', photo())
    argv = ['-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '--model_path', old]
    assert inference_msrn.main(argv) == 2
    assert f'error: {X1_MESSAGE.format(old)}' in caplog.text
    assert not (tmp_path / 'out').exists()
    with pytest.raises(CheckpointError) as err:
        load_msrn(old)
    assert str(err.value) == X1_MESSAGE.format(old)
    # with what the record would have said, the output is the trained network's
    assert inference_msrn.main(argv + ['--global_residual', 'true', '--img_range', '1']) == 0
    np.testing.assert_array_equal(read_image(tmp_path / 'out' / 'in.png'),
                                  MSRNer(trained_network(trained), 1).enhance(photo()))


def test_benchmark_reads_the_record_and_refuses_what_it_cannot_build(trained, tmp_path, capsys):
    import benchmark_inference

    small = ['--sizes', '8', '--repeats', '1', '--roofline_size', '8', '--tile_image', '12', '--tile', '6',
             '--threads', '1', '--device', 'cpu']
    assert benchmark_inference.main(['--model_path', trained['ckpt']] + small) == 0
    assert 'MSRN x1 (num_feat 8, num_block 1)' in capsys.readouterr().out
    old = without_record(trained, tmp_path)
    assert benchmark_inference.main(['--model_path', old] + small) == 2
    assert capsys.readouterr().err == f'error: {X1_MESSAGE.format(old)}\n'
    assert benchmark_inference.main(['--model_path', old, '--global_residual', 'true'] + small) == 0


def test_flag_contradicting_the_record_is_refused(trained, tmp_path, caplog):
    write_image(tmp_path / 'in.png', photo())
    assert inference_msrn.main(['-i', str(tmp_path / 'in.png'), '-o', str(tmp_path / 'out'), '--model_path',
                                trained['ckpt'], '--global_residual', 'false']) == 2
    assert (f"{trained['ckpt']}: this checkpoint was trained with global_residual true, but global_residual false "
            'was given; drop --global_residual (the checkpoint records it).') in caplog.text
    assert not (tmp_path / 'out').exists()


def test_record_that_disagrees_with_the_weights_is_refused(trained, tmp_path):
    ckpt = safe_torch_load(trained['ckpt'])
    ckpt[RECORD_KEY]['network']['num_feat'] = 16
    atomic_torch_save(ckpt, str(tmp_path / 'edited.pth'))
    with pytest.raises(CheckpointError, match=r"its network record does not match its weights: num_feat 16 "
                       r"\(weights: 8\); the file was edited: delete its 'msrn_plugin' entry"):
        load_msrn(tmp_path / 'edited.pth')


# ---------------------------------------------------------------------------------------------- NaN / Inf
def test_nan_weights_refused_by_the_test_entry_and_start_up_validation(trained, tmp_path):
    bad = with_nan(trained, tmp_path)
    message = f"{bad}: tensor 'body.0.conv_3_1.weight' holds NaN (a diverged run?); use an earlier checkpoint."
    net = MSRN(**{k: v for k, v in NETWORK.items() if k != 'type'})
    with pytest.raises(CheckpointError) as err:  # BasicSR's load_network (test.py, pretrain_network_g, resume)
        BaseModel({'num_gpu': 0, 'is_train': False}).load_network(net, bad)
    assert str(err.value) == message
    options = write_options(denoise_test_options(trained, bad), tmp_path / 'test.yml')
    with pytest.raises(OptionValidationError) as err:  # test.py refuses it before anything is written
        run_pipeline('test', ['-opt', options], root_path=str(tmp_path))
    assert f'path.pretrain_network_g: {message}' in str(err.value)
    assert sorted(os.listdir(tmp_path)) == ['diverged.pth', 'test.yml']


def test_test_entry_runs_the_recorded_network(trained, tmp_path, basicsr_log):
    options = write_options(denoise_test_options(trained, trained['ckpt']), tmp_path / 'test.yml')
    run_pipeline('test', ['-opt', options], root_path=str(tmp_path))
    assert any('holds' in m for m in basicsr_log) is False
    assert os.path.isdir(tmp_path / 'results' / 'record_test')


def test_inf_weights_refused_by_every_loader(trained, tmp_path):
    bad = with_nan(trained, tmp_path, key='conv_last.bias', value=float('-inf'))
    message = f"{bad}: tensor 'conv_last.bias' holds Inf (a diverged run?); use an earlier checkpoint."
    for load in (load_msrn, lambda p: load_zoo_checkpoint('MSRN', p, network_options('MSRN', 1))):
        with pytest.raises(CheckpointError) as err:
            load(bad)
        assert str(err.value) == message


# ---------------------------------------------------------------------------------------------- one implementation
def test_prefix_and_scale_logic_live_in_one_module():
    offenders = []
    for folder, _, files in os.walk(os.path.join(REPO, 'msrn_plugin')):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith('.py') and not path.endswith(os.path.join('utils', 'checkpoint.py')):
                with open(path, encoding='utf-8') as f:
                    text = f.read()
                for needle in ("'module.'", 'k[7:]', '2**len('):
                    if needle in text:
                        offenders.append(f'{os.path.relpath(path, REPO)}: {needle}')
    assert offenders == []


def test_shared_helpers():
    state = MSRN(num_feat=8, num_block=2, upscale=4).state_dict()
    prefixed = {f'module.{k}': v for k, v in state.items()}
    assert list(strip_module_prefix(prefixed)) == list(state)
    assert checkpoint_upscale(prefixed) == 4 and msrn_config_from_state_dict(state)['upscale'] == 4
    from basicsr.archs.edsr_arch import EDSR
    assert checkpoint_upscale(EDSR(3, 3, num_feat=8, num_block=1, upscale=3).state_dict()) == 3  # BasicSR layout
    assert checkpoint_upscale({'conv_first.weight': torch.zeros(8, 3, 3, 3)}) == 1
    assert checkpoint_upscale({'head.0.weight': torch.zeros(8, 3, 3, 3)}) is None
