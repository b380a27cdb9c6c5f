"""Model-zoo comparison: registry configs, MAC / memory / latency measurements, same-budget training, reports."""
import csv
import logging
import numpy as np
import os
import pytest
import sys
import torch

from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.bench.inference_bench import benchmark_tiling
from msrn_plugin.prep.bicubic import bicubic_downscale
from msrn_plugin.utils.checkpoint import CheckpointError, atomic_torch_save, build_record, complete_network_options
from msrn_plugin.utils.image_io import read_image, write_image
from msrn_plugin.zoo import (BUDGET_CONFIGS, ZOO_CONFIGS, CompareSettings, PatchSampler, bicubic_upscale, build_model,
                             compare_models, count_macs, count_parameters, growth_exponent, load_benchmark,
                             load_published, load_zoo_checkpoint, measure_latency, measure_peak_memory, network_options,
                             profile_model, psnr_ssim, train_same_budget)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'scripts'))
import compare_models as compare_script  # noqa: E402

TINY = {
    'EDSR-M': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1},
    'RCAN': {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_group': 1, 'num_block': 1,
             'squeeze_factor': 4},
    'MSRN': {'type': 'MSRN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1},
}


def test_configs_build_through_registry_with_known_sizes():
    # figures from the reference README / the MSRN paper (trainable parameters, mean shifts excluded)
    assert count_parameters(build_model(network_options('EDSR-M', 4))) == 1_517_571
    assert count_parameters(build_model(network_options('MSRN', 4))) == 6_078_019
    assert count_parameters(build_model(network_options('MSRN', 2))) == 5_930_307
    opt = network_options('RCAN', 2, BUDGET_CONFIGS)
    assert opt['upscale'] == 2 and 'upscale' not in BUDGET_CONFIGS['RCAN']  # the table is not modified
    assert build_model(opt)(torch.rand(1, 3, 6, 5)).shape == (1, 3, 12, 10)
    assert list(ZOO_CONFIGS) == list(BUDGET_CONFIGS) == ['EDSR-M', 'EDSR-L', 'RCAN', 'MSRN']
    with pytest.raises(KeyError, match="unknown model 'SRCNN'"):
        network_options('SRCNN', 4)


def test_count_macs_matches_hand_count():
    """MSRN(8 feat, 1 block, x2) on 16x16: every convolution's Cin*Cout*k*k*H*W, the mean shifts (1x1) included."""
    lr, hr = 16 * 16, 32 * 32
    expected = (3 * 8 * 9 + 8 * 8 * 9 + 8 * 8 * 25 + 16 * 16 * 9 + 16 * 16 * 25 + 32 * 8 + 16 * 8 + 8 * 8 * 9
                + 8 * 32 * 9 + 3 * 3) * lr + (8 * 3 * 9 + 3 * 3) * hr
    net = MSRN(num_feat=8, num_block=1, upscale=2)
    assert count_macs(net, (16, 16)) == expected
    assert count_macs(net, (32, 32)) == 4 * expected  # linear in the pixel count


def test_peak_memory_and_latency():
    x = torch.rand(1, 4, 64, 64)
    nbytes = x.numel() * 4
    # (x * 2) + 1: the product and the sum are alive together before the product is freed -> 2 tensors (plus the
    # 0-d tensors PyTorch wraps the Python scalars in: a few bytes)
    assert 2 * nbytes <= measure_peak_memory(lambda t: (t * 2) + 1, x) <= 2 * nbytes + 64
    conv = torch.nn.Conv2d(4, 16, 3, 1, 1)
    assert measure_peak_memory(conv, x) >= 4 * nbytes  # at least its 16-channel output
    times = measure_latency(conv, x, repeats=3, warmup=1)
    assert len(times) == 3 and all(t > 0 for t in times)
    rows = profile_model(build_model(network_options('MSRN', 2, TINY)), [8, 16], repeats=1)
    assert [r['size'] for r in rows] == [8, 16] and rows[1]['peak_mem_mib'] > rows[0]['peak_mem_mib'] > 0
    assert growth_exponent([100, 400, 1600], [3, 12, 48]) == pytest.approx(1.0)


def test_benchmark_tiling_is_exact():
    rows = benchmark_tiling(MSRN(num_feat=8, num_block=1, upscale=2), size=40, tile=16, repeats=1)
    assert rows[0]['mode'] == 'whole' and rows[1]['mode'] == 'tiled 16+8'
    assert rows[1]['max_abs_diff'] < 1e-5
    assert rows[1]['peak_mem_mib'] < rows[0]['peak_mem_mib']  # tiles bound the activations


def test_patch_sampler_and_same_budget_training(photo_bgr):
    sampler = PatchSampler([photo_bgr[:120, :100], photo_bgr[200:300, 300:380]], scale=2)
    a = list(sampler.batches(3, 4, 10, seed=1))
    b = list(sampler.batches(3, 4, 10, seed=1))
    assert a[0][0].shape == (4, 3, 10, 10) and a[0][1].shape == (4, 3, 20, 20)
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))  # same for every model
    assert not torch.equal(a[0][0], next(sampler.batches(1, 4, 10, seed=2))[0])
    # the HR patch is the LR patch's region: its bicubic downscale is close to the LR patch
    lq, gt = a[0][0][0], a[0][1][0]
    down = torch.nn.functional.interpolate(gt[None], scale_factor=0.5, mode='bicubic', antialias=True)[0]
    assert (down - lq).abs().mean() < 0.02
    torch.manual_seed(0)
    net = build_model(network_options('MSRN', 2, TINY))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: a second thread only adds synchronisation (slow on a busy machine)
    try:
        stats = train_same_budget(net, sampler, iters=40, batch_size=4, lr_patch=12, learning_rate=1e-3)
    finally:
        torch.set_num_threads(threads)
    assert stats['iters'] == 40 and stats['last_loss'] < 0.5 * stats['first_loss']
    assert not net.training


def test_load_published(tmp_path, caplog):
    path = tmp_path / 'pub.csv'
    path.write_text('task,method,source,dataset,setting,psnr,ssim,eval_channel\n'
                    'sr,MSRN,paper A,Set5,x4,32.07,0.8903,Y\n'
                    'sr,MSRN,paper A,Set5,x2,38.08,0.9605,Y\n'
                    'sr,EDSR,paper B,Set14,x4,28.80,0.7876,Y\n'
                    'denoise,MSRN,paper C,Set5,x4,1,1,Y\n')
    assert load_published(path, 4) == {'MSRN': {'Set5': (32.07, 0.8903, 'paper A')},
                                       'EDSR-L': {'Set14': (28.80, 0.7876, 'paper B')}}
    assert load_published(tmp_path / 'missing.csv', 4) == {}
    assert 'published results not found' in caplog.text


def test_load_benchmark_folders(tmp_path, photo_bgr):
    assert [hr.shape for hr, _ in load_benchmark(4, crop=64).values()] == [(64, 64, 3)] * 5
    hr = photo_bgr[:50, :62]
    write_image(tmp_path / 'hr' / 'a.png', hr)
    pairs = load_benchmark(4, tmp_path / 'hr')
    assert pairs['a'][0].shape == (48, 60, 3) and pairs['a'][1].shape == (12, 15, 3)
    np.testing.assert_array_equal(pairs['a'][1], bicubic_downscale(hr[:48, :60], 4))
    up = bicubic_upscale(pairs['a'][1], 4)  # the bicubic baseline row
    assert up.shape == (48, 60, 3) and up.dtype == np.uint8
    assert psnr_ssim(up, pairs['a'][0], 4)[0] > 20
    np.testing.assert_array_equal(bicubic_upscale(np.full((5, 6, 3), 77, np.uint8), 3), np.full((15, 18, 3), 77))
    write_image(tmp_path / 'lr' / 'ax4.png', pairs['a'][1][:, :14])
    with pytest.raises(ValueError, match=r'ax4\.png: LR size \(12, 14\) x4 does not match the mod-cropped HR size'):
        load_benchmark(4, tmp_path / 'hr', tmp_path / 'lr')
    os.remove(tmp_path / 'lr' / 'ax4.png')
    with pytest.raises(FileNotFoundError, match=r'no LR image for a\.png \(expected a\.\* or ax4\.\*\)'):
        load_benchmark(4, tmp_path / 'hr', tmp_path / 'lr')
    with pytest.raises(FileNotFoundError, match='benchmark HR folder not found'):
        load_benchmark(4, tmp_path / 'nope')


def test_compare_models_end_to_end(tmp_path):
    net = build_model(network_options('MSRN', 2, TINY))
    atomic_torch_save({'params': net.state_dict()}, str(tmp_path / 'msrn.pth'))
    reference = tmp_path / 'pub.csv'
    reference.write_text('task,method,source,dataset,setting,psnr,ssim,eval_channel\n'
                         'sr,MSRN,MSRN paper,Set5,x2,38.08,0.9605,Y\nsr,RCAN,RCAN paper,Set5,x2,38.27,0.9614,Y\n')
    settings = CompareSettings(scale=2, models=['EDSR-M', 'RCAN', 'MSRN'], sizes=[8, 16], repeats=1, flops_size=8,
                               iters=5, batch_size=2, lr_patch=8, eval_crop=32, threads=1, configs=TINY,
                               budget_configs=TINY, checkpoints={'MSRN': str(tmp_path / 'msrn.pth')},
                               reference=str(reference))
    result = compare_models(tmp_path / 'out', settings)
    names = sorted(os.listdir(tmp_path / 'out'))
    assert names == ['crop_grid.png', 'latency_vs_pixels.png', 'model_zoo.csv', 'model_zoo.md', 'psnr_vs_flops.png',
                     'psnr_vs_params.png']
    rows = {r['model']: r for r in result['rows']}
    assert rows['MSRN']['params'] == count_parameters(net)
    assert rows['MSRN']['published_psnr_Set5'] == 38.08 and 'published_psnr_Set5' not in rows['EDSR-M']
    # the checkpoint's PSNR is that model's PSNR on the same pairs
    from msrn_plugin.zoo import evaluate, make_upscaler
    psnr, _, _ = evaluate(make_upscaler(net.eval(), 2), load_benchmark(2, crop=32), 2)
    assert rows['MSRN']['ckpt_psnr'] == pytest.approx(psnr)
    with open(tmp_path / 'out' / 'model_zoo.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert [r['model'] for r in table] == ['EDSR-M', 'RCAN', 'MSRN']
    assert float(table[2]['budget_psnr']) == pytest.approx(rows['MSRN']['budget_psnr'], abs=1e-3)
    md = (tmp_path / 'out' / 'model_zoo.md').read_text()
    assert '## Published results x2 (not measured here)' in md and '| MSRN (published) | 38.08 / 0.9605 |' in md
    assert 'MACs at 1x3x8x8' in md and 'multiply-accumulates' in md and '1 thread(s)' in md
    grid = read_image(tmp_path / 'out' / 'crop_grid.png')
    assert grid.shape == (22 + 64, 5 * 64 + 4 * 4, 3)  # HR, Bicubic, 3 models; 32-px crops zoomed x2


def test_load_zoo_checkpoint_builds_from_the_record(tmp_path):
    trained_opt = dict(network_options('EDSR-M', 2, TINY), res_scale=0.5)  # not the zoo's res_scale
    net = build_model(trained_opt).eval()
    path = str(tmp_path / 'edsr.pth')
    atomic_torch_save({'params': net.state_dict(), 'msrn_plugin': build_record(trained_opt)}, path)
    loaded, used = load_zoo_checkpoint('EDSR-M', path, network_options('EDSR-M', 2, TINY))
    assert used == complete_network_options(trained_opt) and used['res_scale'] == 0.5
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    with pytest.raises(CheckpointError, match=r'records a EDSR x2 network, but RCAN at x2 was asked for; give a '
                       r'RCAN x2 checkpoint\.'):
        load_zoo_checkpoint('RCAN', path, network_options('RCAN', 2, TINY))


def test_load_zoo_checkpoint_refuses_nan(tmp_path):
    net = build_model(network_options('RCAN', 2, TINY))
    state = net.state_dict()
    state['conv_first.weight'][0, 0, 1, 1] = float('nan')
    path = str(tmp_path / 'rcan.pth')
    atomic_torch_save({'params': state}, path)
    with pytest.raises(CheckpointError) as err:
        load_zoo_checkpoint('RCAN', path, network_options('RCAN', 2, TINY))
    assert str(err.value) == (f"{path}: tensor 'conv_first.weight' holds NaN (a diverged run?); use an earlier "
                              'checkpoint.')


def test_compare_script(tmp_path, caplog, photo_bgr):
    bench = tmp_path / 'Set1'  # the layout of scripts/prepare_benchmark.py
    hr = photo_bgr[100:124, 200:220]
    write_image(bench / 'GTmod2' / 'a.png', hr)
    write_image(bench / 'LRbicx2' / 'a.png', bicubic_downscale(hr, 2))
    out = tmp_path / 'zoo'
    code = compare_script.main(['--scale', '2', '--output', str(out), '--models', 'MSRN', '--iters', '0', '--sizes',
                                '8', '--repeats', '1', '--flops_size', '8', '--threads', '1', '--benchmark_dir',
                                str(bench), '--reference', str(tmp_path / 'none.csv')])
    assert code == 0
    md = (out / 'model_zoo.md').read_text()
    assert '| MSRN | `MSRN(num_feat=64, num_block=8)` | 5,930,307 |' in md and 'Published' not in md
    assert "Crop grid image: `a`" in md
    with pytest.raises(SystemExit):
        compare_script.main(['--checkpoint', 'SRCNN=x.pth'])
    caplog.set_level(logging.INFO)
    assert compare_script.main(['--output', str(out), '--models', 'MSRN', '--checkpoint',
                                f'MSRN={tmp_path / "missing.pth"}', '--iters', '0', '--sizes', '8']) == 1
    assert 'missing.pth: checkpoint not found' in caplog.text


def test_quick_preset_rejects_unknown_settings():
    assert CompareSettings.quick_preset(iters=3).iters == 3
    with pytest.raises(TypeError):
        CompareSettings.quick_preset(iterations=3)
