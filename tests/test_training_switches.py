"""MSRNModel's training-speed switches through the train entry on the CPU: each changes what it should."""
import basicsr.train
import dist_helpers as h
import numpy as np
import os
import pytest
import torch
import yaml
from basicsr.utils.matlab_functions import imresize

from msrn_plugin.models import msrn_model
from msrn_plugin.models.msrn_model import MSRNModel, check_training_switches
from msrn_plugin.utils.image_io import write_image
from msrn_plugin.utils.photos import load_photo
from msrn_plugin.utils.pipeline import run_pipeline
from msrn_plugin.utils.validation import OptionValidationError

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(autouse=True)
def _restore_tf32():
    """``fast_matmul`` sets process-wide flags; put them back for the other tests."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
    torch.set_float32_matmul_precision(flags[2])


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    """x2 pairs (two 48x48 HR crops of photos, MATLAB-bicubic LR) and x1 pairs (noisy -> clean)."""
    root = tmp_path_factory.mktemp('switch_data')
    rng = np.random.default_rng(0)
    for i, name in enumerate(('astronaut.png', 'coffee.png')):
        hr = load_photo(name)[100:148, 100:148]
        lr = np.clip(np.round(imresize(hr.astype(np.float64), 1 / 2)), 0, 255).astype(np.uint8)
        noisy = np.clip(hr + rng.normal(0, 15, hr.shape), 0, 255).astype(np.uint8)
        for sub, img in (('x2/gt', hr), ('x2/lq', lr), ('x1/gt', hr), ('x1/lq', noisy)):
            write_image(root / sub / f'{i}.png', img)
    return root


def _options(data, name, scale=2, total_iter=2, **switches):
    paired = dict(type='PairedImageDataset', dataroot_gt=str(data / f'x{scale}' / 'gt'),
                  dataroot_lq=str(data / f'x{scale}' / 'lq'), io_backend={'type': 'disk'})
    opt = {
        'name': name, 'model_type': 'MSRNModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': dict(paired, name='pairs', gt_size=48, use_hflip=False, use_rot=False,
                                   num_worker_per_gpu=0, batch_size_per_gpu=2, dataset_enlarge_ratio=1)},
        'network_g': {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': scale,
                      'global_residual': scale == 1},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total_iter, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    opt.update(switches)
    return opt


@pytest.fixture
def train(tmp_path, monkeypatch):
    """Train through ``run_pipeline('train', ...)`` in this process; return the model BasicSR built and the root."""

    def run(opt, *flags):
        built = []

        def build_model(model_opt):
            built.append(MSRNModel(model_opt))
            return built[-1]

        monkeypatch.setattr(basicsr.train, 'build_model', build_model)
        yml = tmp_path / f'{opt["name"]}.yml'
        yml.write_text(yaml.safe_dump(opt))
        torch.manual_seed(0)
        run_pipeline('train', ['-opt', str(yml), *flags], root_path=str(tmp_path))
        return built[0]

    return run


def _weights(model):
    return {k: v.detach().float().contiguous() for k, v in model.net_g.state_dict().items()}


@pytest.mark.parametrize('scale', [2, 1])
def test_bf16_weights_differ_from_fp32_only_slightly(pairs, train, basicsr_log, scale):
    fp32 = train(_options(pairs, f'fp32_x{scale}', scale))
    bf16 = train(_options(pairs, f'bf16_x{scale}', scale, use_amp=True, amp_bf16=True))
    assert fp32.use_amp is False and bf16.use_amp is True and bf16.amp_dtype == torch.bfloat16
    init = _weights(MSRNModel(dict(fp32.opt, is_train=False)))  # same seed: the starting weights
    a, b = _weights(fp32), _weights(bf16)
    moved = sum((a[k] - init[k]).abs().sum() for k in a)
    differ = sum((a[k] - b[k]).abs().sum() for k in a)
    assert moved > 0 and differ > 0  # bf16 changed the arithmetic ...
    assert differ < 0.25 * moved  # ... but not the direction of training
    assert 'use_amp bf16' in '\n'.join(basicsr_log)
    assert 'use_amp off' in '\n'.join(basicsr_log)


def test_channels_last_trains_in_channels_last(pairs, train):
    plain = train(_options(pairs, 'plain'))
    model = train(_options(pairs, 'cl', use_channels_last=True))
    weight = model.net_g.conv_first.weight if hasattr(model.net_g, 'conv_first') else None
    convs = [p for p in model.net_g.parameters() if p.ndim == 4 and p.shape[-1] > 1]  # 1x1: both layouts agree
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    assert weight is None or weight.grad.is_contiguous(memory_format=torch.channels_last)
    a, b = _weights(plain), _weights(model)
    for key in a:  # same arithmetic up to summation order
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)


def test_fast_matmul_sets_tf32(pairs, train):
    train(_options(pairs, 'tf32', fast_matmul=True))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == 'high'
    train(_options(pairs, 'fp32', fast_matmul=False))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == 'highest'


def test_grad_clip_limits_the_gradient_norm(pairs, train, basicsr_log):
    model = train(_options(pairs, 'clip', grad_clip_max_norm=0.01))
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.net_g.parameters()]))
    assert 0 < norm <= 0.01 * (1 + 1e-4)
    assert model.log_dict['grad_norm'] > 0.01  # the norm before clipping, logged
    assert any('grad_norm:' in line for line in basicsr_log)
    unclipped = train(_options(pairs, 'noclip'))
    assert 'grad_norm' not in unclipped.log_dict
    assert torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in unclipped.net_g.parameters()])) > 0.01


def test_compile_generates_compiled_code(pairs, train, tmp_path, monkeypatch, basicsr_log):
    """The smallest compiled run: one iteration of the tiny network (inductor's C++ backend, gcc)."""
    cache = tmp_path / 'inductor'
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', str(cache))
    torch._dynamo.reset()
    model = train(_options(pairs, 'compiled', total_iter=1, use_compile=True))
    assert model.compile_mode == 'default'
    assert type(model._train_net).__name__ == 'OptimizedModule'
    generated = [f for _, _, files in os.walk(cache) for f in files if f.endswith(('.cpp', '.py', '.so'))]
    assert generated, 'inductor wrote no code'
    assert 'use_compile default' in '\n'.join(basicsr_log)
    torch._dynamo.reset()


def test_val_use_amp_autocasts_validation_only(pairs):
    opt = _options(pairs, 'val_amp', amp_bf16=True)
    opt = dict(opt, is_train=False, dist=False, val={'use_amp': True})
    model = MSRNModel(opt)
    lq = torch.rand(1, 3, 12, 12)
    model.feed_data({'lq': lq})
    model.test()
    assert model.use_amp is False and model.output.dtype == torch.float32
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        expected = model.net_g.eval()(lq).float()
    torch.testing.assert_close(model.output, expected, rtol=0, atol=0)
    with torch.no_grad():
        assert (model.output - model.net_g(lq)).abs().max() > 0  # not the fp32 result


def test_fp16_scaler_state_is_saved_and_restored(pairs, train, tmp_path, monkeypatch, basicsr_log):
    """fp16 is refused on a CPU; the refusal is lifted here to run the (device-independent) scaler code."""
    monkeypatch.setattr(msrn_model, '_fp16_supported', lambda device_type: True)
    straight = train(_options(pairs, 'fp16_straight', total_iter=4, use_amp=True))
    assert straight.scaler is not None and straight.amp_dtype == torch.float16
    train(_options(pairs, 'fp16_resumed', total_iter=2, use_amp=True))
    state_path = tmp_path / 'experiments' / 'fp16_resumed' / 'training_states' / '2.state'
    state = torch.load(state_path, weights_only=True)
    assert set(state['scaler']) >= {'scale', 'growth_factor', '_growth_tracker'} and state['scaler']['scale'] > 0
    # a scale no fresh scaler has: it must be the one that comes back
    state['scaler']['scale'] = 1024.0
    state['scaler']['_growth_tracker'] = 1
    torch.save(state, state_path)
    resumed = train(_options(pairs, 'fp16_resumed', total_iter=4, use_amp=True), '--auto_resume')
    assert 'Gradient scaler restored (scale 1024).' in basicsr_log
    assert resumed.scaler.get_scale() == 1024.0  # two more unskipped steps: growth_interval 2000 not reached
    assert resumed.scaler.state_dict()['_growth_tracker'] == 3
    final = torch.load(tmp_path / 'experiments' / 'fp16_resumed' / 'training_states' / '4.state', weights_only=True)
    assert final['scaler']['scale'] == 1024.0 and final['iter'] == 4


def test_bf16_resume_continues_like_an_uninterrupted_run(pairs, train):
    straight = train(_options(pairs, 'bf16_straight', total_iter=4, use_amp=True, amp_bf16=True))
    train(_options(pairs, 'bf16_resume', total_iter=2, use_amp=True, amp_bf16=True))
    resumed = train(_options(pairs, 'bf16_resume', total_iter=4, use_amp=True, amp_bf16=True), '--auto_resume')
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_switches_under_two_rank_ddp(tmp_path):
    """bf16 + channels_last (applied before the DDP wrap) + clipping: both ranks end with the same weights."""
    folders = h.make_paired_folders(str(tmp_path / 'data'))
    opt = h.train_options(folders, 'ddp_switches', total_iter=2)
    opt.update(model_type='MSRNModel', use_amp=True, amp_bf16=True, use_channels_last=True, grad_clip_max_norm=0.5,
               dist_params={'backend': 'gloo'})
    yml = h.write_yaml(opt, str(tmp_path / 'ddp.yml'))
    out = tmp_path / 'out'
    out.mkdir()
    cmd = h.torchrun([os.path.join(h.REPO_ROOT, 'tests', 'dist_helpers.py'), 'train', str(out), '-opt', yml,
                      '--launcher', 'pytorch'], 2, h.free_port())
    log = h.finish([h.start(cmd, str(tmp_path))], 300)[0]
    assert 'use_amp bf16; use_channels_last on; use_compile off' in log and 'grad_clip_max_norm 0.5' in log
    a = torch.load(out / 'params_rank0.pth', weights_only=True)
    b = torch.load(out / 'params_rank1.pth', weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- refused at start-up, nothing written
def _refused(tmp_path, opt):
    yml = tmp_path / 'bad.yml'
    yml.write_text(yaml.safe_dump(opt))
    root = tmp_path / 'root'
    root.mkdir()
    with pytest.raises(OptionValidationError) as err:
        run_pipeline('train', ['-opt', str(yml)], root_path=str(root))
    assert os.listdir(root) == []
    return str(err.value)


def test_fp16_on_cpu_is_refused(pairs, tmp_path):
    msg = _refused(tmp_path, _options(pairs, 'fp16', use_amp=True))
    assert ('use_amp: fp16 (amp_bf16 false or unset) needs a CUDA GPU, and this run is on the CPU; set amp_bf16: true '
            '(bfloat16 autocast works on a CPU) or use_amp: false.') in msg


def test_compile_without_a_compiler_is_refused(pairs, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    monkeypatch.delenv('CXX', raising=False)
    msg = _refused(tmp_path, _options(pairs, 'nocc', use_compile='max-autotune'))
    assert ('use_compile: torch.compile on the CPU needs a C++ compiler and none was found ($CXX, g++, c++, '
            'clang++); install one (e.g. apt-get install g++) or set use_compile: false.') in msg


@pytest.mark.parametrize('switches, message', [
    ({'use_amp': 'yes'}, "use_amp: 'yes' is not true or false."),
    ({'use_compile': 'fastest'}, "use_compile: 'fastest' is not true, false or a torch.compile mode (default, "
     'reduce-overhead, max-autotune, max-autotune-no-cudagraphs).'),
    ({'grad_clip_max_norm': -1}, 'grad_clip_max_norm: -1 is not a number >= 0 (0 turns clipping off).'),
    ({'model_type': 'SRModel', 'use_amp': True, 'amp_bf16': True},
     'use_amp, amp_bf16: set, but model_type SRModel ignores them; use model_type: MSRNModel (or remove the '
     'switches).'),
])
def test_bad_switch_values_are_refused(pairs, tmp_path, switches, message):
    assert message in _refused(tmp_path, _options(pairs, 'bad', **switches))


def test_check_allows_bf16_on_cpu_and_ignores_switches_when_testing(pairs):
    assert check_training_switches(_options(pairs, 'ok', use_amp=True, amp_bf16=True, use_compile=True)) == []
    assert check_training_switches(_options(pairs, 'test', use_amp=True), is_train=False) == []
