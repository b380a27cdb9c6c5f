"""Denoising/dehazing through BasicSR's train and test entries with the shipped option files; their consistency."""
import cv2
import glob
import numpy as np
import os
import pytest
import re
import torch
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY
from collections import OrderedDict

from msrn_plugin.demos.restoration_demo import derive_options, evaluate_psnr, format_result, run_demo, write_options
from msrn_plugin.prep.haze import synthesize_haze_pairs
from msrn_plugin.utils.options import load_options
from msrn_plugin.utils.photos import HELD_OUT_PHOTOS, load_photo
from msrn_plugin.utils.pipeline import run_pipeline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = os.path.join(REPO, 'options')
DENOISE_OPTIONS = sorted(glob.glob(os.path.join(OPTIONS, '*_MSRN_denoise_*.yml')))
DEHAZE_OPTIONS = sorted(glob.glob(os.path.join(OPTIONS, '*_MSRN_dehaze_*.yml')))
HELD_OUT_STEMS = [os.path.splitext(n)[0] for n in HELD_OUT_PHOTOS]
TINY = dict(num_feat=8, num_block=1, gt_size=32, batch_size=4, max_size=64, num_worker=0)


def option(name):
    return os.path.join(OPTIONS, name)


pytestmark = pytest.mark.usefixtures('one_thread')


# ---------------------------------------------------------------- the shipped option files
def test_every_option_set_of_the_issue_is_shipped():
    names = {os.path.basename(p) for p in DENOISE_OPTIONS + DEHAZE_OPTIONS}
    expected = {f'{kind}_MSRN_denoise_{color}_sigma{s}.yml' for kind in ('train', 'test') for color in ('color', 'gray')
                for s in (15, 25, 50)}
    expected |= {'train_MSRN_denoise_color_blind.yml', 'train_MSRN_dehaze_ITS.yml', 'train_MSRN_dehaze_OTS.yml',
                 'train_MSRN_dehaze_synthetic.yml', 'test_MSRN_dehaze_SOTS_indoor.yml',
                 'test_MSRN_dehaze_SOTS_outdoor.yml'}
    assert names == expected


@pytest.mark.parametrize('path', DENOISE_OPTIONS + DEHAZE_OPTIONS, ids=os.path.basename)
def test_option_file_follows_the_protocol(path):
    opt = load_options(path)
    name = os.path.basename(path)
    net = opt['network_g']
    assert opt['model_type'] == ('MSRNModel' if name.startswith('train_') else 'SRModel')  # speed switches: train
    assert opt['scale'] == 1 and net['upscale'] == 1 and net['global_residual']
    gray = '_gray_' in name
    assert net['num_in_ch'] == net['num_out_ch'] == len(net['rgb_mean']) == (1 if gray else 3)
    ARCH_REGISTRY.get(net['type'])(**{k: v for k, v in net.items() if k != 'type'})  # builds
    for metric in opt['val']['metrics'].values():
        assert metric['crop_border'] == 0 and metric['test_y_channel'] is False  # RGB or grey channel, no border
    sigma = re.search(r'sigma(\d+)', name)
    for key, dataset in opt['datasets'].items():
        assert dataset['type'] in DATASET_REGISTRY
        assert dataset['type'] == ('GaussianNoiseDataset' if 'denoise' in name else 'RESIDEDataset')
        if 'denoise' in name:
            assert dataset['color'] == ('gray' if gray else 'rgb') and dataset['clip_noisy'] is False
            if sigma:
                assert dataset['sigma'] == int(sigma.group(1))
            if key.startswith('test'):
                assert dataset['noise_seed'] == 0 and dataset['noise_seed_mode'] == 'shared'  # KAIR/SwinIR
    if name.startswith('test_MSRN_denoise'):
        sets = [d['name'] for d in opt['datasets'].values()]
        assert sets == (['Set12', 'BSD68'] if gray else ['CBSD68', 'Kodak24', 'McMaster', 'Urban100'])
    if name.startswith('train_'):
        assert opt['datasets']['train']['gt_size'] and opt['logger']['use_tb_logger'] is True


def test_blind_option_draws_sigma_from_a_range():
    opt = load_options(option('train_MSRN_denoise_color_blind.yml'))
    assert opt['datasets']['train']['sigma_range'] == [0, 55] and 'sigma' not in opt['datasets']['train']
    assert [opt['datasets'][k]['sigma'] for k in ('val_1', 'val_2')] == [15, 50]


def test_derive_and_write_options_round_trip(tmp_path):
    base = load_options(option('train_MSRN_denoise_color_sigma25.yml'))
    snapshot = repr(base)
    derived = derive_options(base, {'name': 'x', 'datasets': {'train': {'sigma': 50}}, 'network_g': {'num_feat': 8}})
    assert repr(base) == snapshot  # not modified
    assert derived['datasets']['train']['sigma'] == 50 and derived['datasets']['train']['gt_size'] == 128
    assert derived['network_g']['num_feat'] == 8 and derived['network_g']['num_block'] == 8
    reread = load_options(write_options(derived, tmp_path / 'x.yml'))
    assert isinstance(reread, OrderedDict) and reread == derived


# ---------------------------------------------------------------- training through the train entry
def test_denoise_colour_trains_and_beats_the_noisy_input(tmp_path):
    result = run_demo('denoise', tmp_path, option('train_MSRN_denoise_color_sigma25.yml'), total_iter=40, lr=2e-3,
                      **TINY)
    assert [r.name for r in result.rows] == sorted(HELD_OUT_STEMS)
    assert 20.0 < result.mean_input < 21.5  # sigma 25, clipped 8-bit input
    assert result.mean_output > result.mean_input + 1.0
    ckpt = torch.load(os.path.join(result.experiment_dir, 'models', 'net_g_latest.pth'), weights_only=True)
    assert ckpt['params']['conv_first.weight'].shape == (8, 3, 3, 3)
    assert os.path.isfile(os.path.join(result.experiment_dir, 'training_states', '40.state'))
    table = format_result(result)
    assert 'noisy input' in table and f'{result.mean_output:.2f} dB' in table.splitlines()[-1]


def test_denoise_gray_trains_through_the_train_entry(tmp_path):
    result = run_demo('denoise', tmp_path, option('train_MSRN_denoise_gray_sigma15.yml'), total_iter=3, gray=True,
                      **TINY)
    ckpt = torch.load(os.path.join(result.experiment_dir, 'models', 'net_g_latest.pth'), weights_only=True)
    assert ckpt['params']['conv_first.weight'].shape == (8, 1, 3, 3)
    assert len(result.rows) == 5 and 24.0 < result.mean_input < 25.5  # sigma 15: 24.6 dB before clipping
    assert cv2.imread(os.path.join(tmp_path, 'denoise_data', 'val', 'chelsea.png'), cv2.IMREAD_UNCHANGED).ndim == 2


def test_dehaze_trains_on_synthetic_haze_through_the_train_entry(tmp_path):
    result = run_demo('dehaze', tmp_path, option('train_MSRN_dehaze_synthetic.yml'), total_iter=3, num_per_image=2,
                      **TINY)
    assert len(os.listdir(os.path.join(tmp_path, 'dehaze_data', 'train', 'hazy'))) == 16
    assert sorted(r.name.split('_')[0] for r in result.rows) == sorted(HELD_OUT_STEMS)
    assert all(np.isfinite(r.psnr_output) and 5 < r.psnr_input < 30 for r in result.rows)
    assert os.path.isfile(os.path.join(result.experiment_dir, 'models', 'net_g_latest.pth'))


# ---------------------------------------------------------------- the test entry with the shipped test options
def tiny_checkpoint(path, channels):
    net = ARCH_REGISTRY.get('MSRN')(num_in_ch=channels, num_out_ch=channels, num_feat=8, num_block=1, upscale=1,
                                    rgb_mean=[0.5] * channels, global_residual=True)
    torch.save({'params': net.state_dict()}, path)
    return str(path)


def logged_metric(messages, metric):
    """Values of a metric in BasicSR's validation messages ('# psnr: 21.1484')."""
    return [float(v) for m in messages for v in re.findall(rf'# {metric}: ([\d.]+)', m)]


def test_denoise_test_option_scores_like_our_evaluation(tmp_path, basicsr_log):
    clean = tmp_path / 'CBSD68'
    clean.mkdir()
    for name in ('chelsea.png', 'coffee.png'):
        cv2.imwrite(str(clean / name), load_photo(name)[:48, :64])
    opt = derive_options(load_options(option('test_MSRN_denoise_color_sigma25.yml')), {
        'name': 'denoise_bench', 'num_gpu': 0,
        'network_g': {'num_feat': 8, 'num_block': 1, 'rgb_mean': [0.5] * 3},
        'path': {'pretrain_network_g': tiny_checkpoint(tmp_path / 'net.pth', 3)}})
    opt['datasets'] = {'test_1': dict(opt['datasets']['test_1'], dataroot_gt=str(clean))}
    run_pipeline('test', ['-opt', write_options(opt, tmp_path / 'test.yml')], root_path=str(tmp_path))
    results = tmp_path / 'results' / 'denoise_bench'
    assert sorted(os.listdir(results / 'visualization' / 'CBSD68')) == ['chelsea_denoise_bench.png',
                                                                          'coffee_denoise_bench.png']
    rows = evaluate_psnr(opt, tmp_path / 'net.pth', 'test_1')  # same seeded noise, same network
    assert logged_metric(basicsr_log, 'psnr') == [pytest.approx(np.mean([r.psnr_output for r in rows]), abs=1e-4)]


def test_dehaze_test_option_on_sots_like_data(tmp_path, basicsr_log):
    clear_src = {os.path.splitext(n)[0]: load_photo(n)[:56, :72] for n in ('chelsea.png', 'rocket.jpg')}
    synthesize_haze_pairs(((k, v[8:48, 8:64]) for k, v in clear_src.items()), tmp_path / 'sots', seed=0)
    for stem, img in clear_src.items():  # SOTS indoor ships clear images larger than the hazy ones
        cv2.imwrite(str(tmp_path / 'sots' / 'clear' / f'{stem}.png'), img)
    opt = derive_options(load_options(option('test_MSRN_dehaze_SOTS_indoor.yml')), {
        'name': 'dehaze_bench', 'num_gpu': 0, 'network_g': {'num_feat': 8, 'num_block': 1, 'rgb_mean': [0.5] * 3},
        'path': {'pretrain_network_g': tiny_checkpoint(tmp_path / 'net.pth', 3)},
        'datasets': {'test_1': {'dataroot_lq': str(tmp_path / 'sots' / 'hazy'),
                                'dataroot_gt': str(tmp_path / 'sots' / 'clear')}}})
    run_pipeline('test', ['-opt', write_options(opt, tmp_path / 'test.yml')], root_path=str(tmp_path))
    results = tmp_path / 'results' / 'dehaze_bench'
    outputs = sorted(os.listdir(results / 'visualization' / 'SOTS_indoor'))
    assert len(outputs) == 2 and cv2.imread(str(results / 'visualization' / 'SOTS_indoor' / outputs[0])).shape == (
        40, 56, 3)
    rows = evaluate_psnr(opt, tmp_path / 'net.pth', 'test_1')
    assert logged_metric(basicsr_log, 'psnr') == [pytest.approx(np.mean([r.psnr_output for r in rows]), abs=1e-4)]
