"""Distributed training through BasicSR's trainer: torchrun + gloo on CPU, the launcher fixes, resume, two nodes.

The multi-process tests start ``python -m torch.distributed.run`` (or ``scripts/dist_train.sh``) on free loopback
ports with a tiny MSRN and a few iterations; every subprocess is bounded by a timeout that kills its process group.
"""
import dist_helpers as h
import glob
import json
import os
import pytest
import re
import shutil
import sys
import torch
import torch.distributed as dist
from basicsr.models.base_model import BaseModel

from msrn_plugin import compat
from msrn_plugin.compat import basicsr_fixes
from msrn_plugin.utils.options import OptionFileError

TIMEOUT = 240  # seconds per launch; a healthy one takes about 10 s on an idle 2-core machine
NAME = 'tiny_ddp'


def _load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def _files(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _train(out_dir, opt_path, *extra):
    cmd = h.torchrun([os.path.join(h.REPO_ROOT, 'tests', 'dist_helpers.py'), 'train', str(out_dir), '-opt',
                      str(opt_path), '--launcher', 'pytorch', *extra], nproc=2, port=h.free_port())
    return h.finish([h.start(cmd, cwd=str(out_dir))], TIMEOUT)[0]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return h.make_paired_folders(str(tmp_path_factory.mktemp('data')))


@pytest.fixture(scope='module')
def ddp_run(tmp_path_factory, data):
    """One 2-rank gloo training run (4 iterations, checkpoints and validation every 2, tensorboard on)."""
    out = tmp_path_factory.mktemp('ddp')
    opt = h.train_options(data, NAME, total_iter=4, use_tb_logger=True)
    opt['dist_params'] = {'backend': 'nccl', 'port': 29500}  # every stock BasicSR option file says this
    opt_path = h.write_yaml(opt, str(out / 'opt.yml'))
    output = _train(out, opt_path)
    return out, opt_path, output


def _reports(out):
    reports = []
    for rank in (0, 1):
        with open(os.path.join(out, f'report_rank{rank}.json')) as f:
            reports.append(json.load(f))
    return reports


def _assert_same_parameters(out):
    p0, p1 = _load(os.path.join(out, 'params_rank0.pth')), _load(os.path.join(out, 'params_rank1.pth'))
    assert p0.keys() == p1.keys()
    assert all(torch.equal(p0[k], p1[k]) for k in p0), 'parameters differ across ranks'
    latest = _load(os.path.join(out, 'experiments', NAME, 'models', 'net_g_latest.pth'))['params']
    assert all(torch.equal(latest[k], p1[k]) for k in p1), "rank 0's checkpoint differs from rank 1's parameters"


def test_two_ranks_train_with_gloo(ddp_run):
    out, _, output = ddp_run
    reports = _reports(out)  # both ranks reached the end of train_pipeline and wrote their report
    assert [(r['rank'], r['world_size'], r['backend']) for r in reports] == [(0, 2, 'gloo'), (1, 2, 'gloo')]
    # The stock 'backend: nccl' on a machine without GPUs: gloo, said once (by rank 0).
    assert output.count("dist_params.backend is 'nccl' but no CUDA GPU is visible: using gloo.") == 1
    _assert_same_parameters(out)
    exp = os.path.join(out, 'experiments', NAME)
    assert _files(os.path.join(exp, 'models')) == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth']
    assert _files(os.path.join(exp, 'training_states')) == ['2.state', '4.state']
    first, last = (_load(os.path.join(exp, 'models', f'net_g_{i}.pth'))['params'] for i in (2, 4))
    assert any(not torch.equal(first[k], last[k]) for k in first), 'training did not change the parameters'
    # Only rank 0 writes checkpoints, logs and tensorboard events.
    assert reports[1]['writes'] == []
    assert sorted(reports[0]['writes']) == sorted(
        os.path.join('experiments', NAME, *p) for p in [('models', 'net_g_2.pth'), ('models', 'net_g_4.pth'),
                                                        ('models', 'net_g_latest.pth'), ('training_states', '2.state'),
                                                        ('training_states', '4.state')])
    logs = glob.glob(os.path.join(exp, 'train_*.log'))
    assert len(logs) == 1
    with open(logs[0]) as f:
        log = f.read()
    assert 'World size (gpu number): 2' in log and 'Validation tiny_val' in log
    assert len(glob.glob(os.path.join(out, 'tb_logger', NAME, 'events.out.tfevents.*'))) == 1


def test_each_rank_gets_its_own_shard(ddp_run):
    """BasicSR's EnlargedSampler: the two ranks' indices for an epoch are disjoint and cover the training set."""
    shards = [r['epoch0_indices'] for r in _reports(ddp_run[0])]
    assert len(shards[0]) == len(shards[1]) == 2  # 4 images / 2 ranks
    assert sorted(shards[0] + shards[1]) == [0, 1, 2, 3]


def test_resume_under_ddp(ddp_run, tmp_path):
    src, opt_path, _ = ddp_run
    shutil.copytree(os.path.join(src, 'experiments'), tmp_path / 'experiments')
    output = _train(tmp_path, opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6')
    assert re.search(r'Resuming training from epoch: \d+, iter: 4\.', output)
    reports = _reports(tmp_path)
    assert reports[1]['writes'] == []
    assert sorted(reports[0]['writes']) == sorted(
        os.path.join('experiments', NAME, *p) for p in [('models', 'net_g_6.pth'), ('models', 'net_g_latest.pth'),
                                                        ('training_states', '6.state')])
    assert _load(os.path.join(tmp_path, 'experiments', NAME, 'training_states', '6.state'))['iter'] == 6
    _assert_same_parameters(tmp_path)
    assert not glob.glob(os.path.join(tmp_path, 'experiments', f'{NAME}_archived_*'))  # resumed, not restarted


def test_a_failed_save_stops_every_rank(data, tmp_path):
    """Rank 0 retries 3 times then gives up; rank 1 gets the same error from the broadcast instead of hanging."""
    opt_path = h.write_yaml(h.train_options(data, 'tiny_fail', total_iter=2), str(tmp_path / 'opt.yml'))
    cmd = h.torchrun([os.path.join(h.REPO_ROOT, 'tests', 'dist_helpers.py'), 'failsave', str(tmp_path), '-opt',
                      opt_path, '--launcher', 'pytorch'], nproc=2, port=h.free_port())
    output = h.finish([h.start(cmd, cwd=str(tmp_path))], TIMEOUT)[0]
    assert [r['rc'] for r in _reports(tmp_path)] == [2, 2]
    path = os.path.join('experiments', 'tiny_fail', 'models', 'net_g_2.pth')
    message = (f'msrn_plugin/train.py: error: Cannot save {os.path.join(tmp_path, path)} after 3 attempts (OSError: '
               '[Errno 28] No space left on device).')
    assert output.count(message) == 2, output[-3000:]
    assert output.count('Save model error: OSError: [Errno 28] No space left on device, remaining retry') == 2


def test_ddp_gradient_is_the_union_batch_gradient(data, tmp_path):
    """Each rank back-propagates half of a batch; DDP's averaged gradient equals one process on the whole batch."""
    opt_path = h.write_yaml(h.train_options(data, 'tiny_grad'), str(tmp_path / 'opt.yml'))
    cmd = h.torchrun([os.path.join(h.REPO_ROOT, 'tests', 'dist_helpers.py'), 'grad', str(tmp_path), '-opt', opt_path,
                      '--launcher', 'pytorch'], nproc=2, port=h.free_port())
    h.finish([h.start(cmd, cwd=str(tmp_path))], TIMEOUT)
    g0, g1 = _load(tmp_path / 'grads_rank0.pth'), _load(tmp_path / 'grads_rank1.pth')
    union, half0 = _load(tmp_path / 'grads_union.pth'), _load(tmp_path / 'grads_half0.pth')
    assert len(union) == 20 and g0.keys() == g1.keys() == union.keys()
    for key in union:
        assert torch.equal(g0[key], g1[key]), key
        torch.testing.assert_close(g0[key], union[key], rtol=1e-4, atol=1e-9)
    # The check can fail: rank 0's own half gives a clearly different gradient.
    assert any(not torch.allclose(half0[k], union[k], rtol=1e-2, atol=0) for k in union)


def test_two_nodes_on_loopback(data, tmp_path):
    """``scripts/dist_train.sh`` on two simulated nodes (one process each), static rendezvous on 127.0.0.1."""
    opt_path = h.write_yaml(h.train_options(data, 'tiny_2node', total_iter=2), str(tmp_path / 'opt.yml'))
    port, procs = h.free_port(), []
    for node_rank in (0, 1):
        node_dir = tmp_path / f'node{node_rank}'  # separate working directories, as on separate machines
        node_dir.mkdir()
        env = dict(h.worker_env(), NNODES='2', NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1', PORT=str(port),
                   PYTHON=sys.executable)
        procs.append(h.start(h.dist_train_sh(1, opt_path, ['--local-rank=0']), cwd=str(node_dir), env=env))
    h.finish(procs, TIMEOUT)
    exp = tmp_path / 'node0' / 'experiments' / 'tiny_2node'
    assert _files(exp / 'models') == ['net_g_2.pth', 'net_g_latest.pth']
    assert _files(exp / 'training_states') == ['2.state']
    with open(glob.glob(str(exp / 'train_*.log'))[0]) as f:
        assert 'World size (gpu number): 2' in f.read()
    assert _files(tmp_path / 'node1') == []  # the second node writes nothing


def test_dist_train_sh_usage(tmp_path):
    proc = h.start(h.dist_train_sh(2, 'x.yml')[:2], cwd=str(tmp_path))
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert 'Usage:' in out and 'NPROC OPT' in out


# ---------------------------------------------------------------- in-process checks of the launcher fixes


@pytest.fixture
def backend_reset():
    yield
    compat.set_dist_backend(None)


def _torchrun_env(monkeypatch, rank):
    env = dict(RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=2, MASTER_ADDR='127.0.0.1', MASTER_PORT=h.free_port())
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))


def test_backend_choice(monkeypatch, backend_reset):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    compat.set_dist_backend(None)
    assert compat.resolve_dist_backend() == 'gloo'
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert compat.resolve_dist_backend() == 'nccl'
    compat.set_dist_backend('gloo')  # dist_params.backend wins over the hardware
    assert compat.resolve_dist_backend() == 'gloo'


def test_unknown_backend_is_refused(backend_reset):
    with pytest.raises(OptionFileError, match=r"dist_params.backend: unknown backend 'glo'; use gloo"):
        compat.set_dist_backend('glo')


def test_stock_nccl_without_gpu_becomes_gloo_with_one_warning(monkeypatch, backend_reset, basicsr_log):
    monkeypatch.setattr(basicsr_fixes, '_nccl_fallback_warned', False)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    compat.set_dist_backend('nccl')
    assert [compat.resolve_dist_backend(), compat.resolve_dist_backend()] == ['gloo', 'gloo']
    assert basicsr_log == ["dist_params.backend is 'nccl' but no CUDA GPU is visible: using gloo."]
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert compat.resolve_dist_backend() == 'nccl'  # an explicit nccl with GPUs stays nccl


@pytest.mark.parametrize('backend, local_rank, num_gpus, device', [
    ('gloo', 0, 0, None), ('gloo', 1, 0, None),  # CPU
    ('gloo', 0, 2, 0), ('gloo', 1, 2, 1), ('gloo', 3, 2, 1),  # gloo on GPUs: each rank its LOCAL_RANK GPU
    ('nccl', 0, 2, 0), ('nccl', 1, 2, 1),
])
def test_each_rank_uses_its_local_rank_gpu(backend, local_rank, num_gpus, device):
    assert compat.dist_device_index(backend, local_rank, num_gpus) == device


def test_nccl_device_errors():
    with pytest.raises(RuntimeError, match=r'local rank 1 has no GPU: 1 visible on this node; start at most 1 '):
        compat.dist_device_index('nccl', 1, 1)
    with pytest.raises(RuntimeError, match="dist_params.backend is 'nccl' but no CUDA GPU is visible; set it to gloo"):
        compat.dist_device_index('nccl', 0, 0)


def test_gloo_on_gpus_selects_the_local_rank_device(monkeypatch, backend_reset):
    """The launcher sets the device for gloo too (upstream: only through nccl's path, so every rank used GPU 0)."""
    chosen = []
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.cuda, 'set_device', chosen.append)
    monkeypatch.setattr(dist, 'init_process_group', lambda backend, **kwargs: chosen.append(backend))
    _torchrun_env(monkeypatch, rank=1)
    compat.set_dist_backend('gloo')
    compat._init_dist_pytorch()
    assert chosen == [1, 'gloo']


def test_slurm_launcher_on_cpu(monkeypatch, tmp_path, backend_reset):
    """BasicSR's slurm path (patched): environment from SLURM_* and scontrol, gloo without GPUs."""
    import basicsr.utils.dist_util as dist_util
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')  # stands in for slurm's scontrol
    (bin_dir / 'scontrol').chmod(0o755)
    monkeypatch.setenv('PATH', f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='1', SLURM_NODELIST='node[1-2]', SLURM_LOCALID='0').items():
        monkeypatch.setenv(key, value)
    for key in ('MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)  # restored after the test
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    port = h.free_port()
    dist_util._init_dist_slurm('nccl', port=port)  # BasicSR passes dist_params; the hardware decides: gloo
    try:
        assert (dist.get_backend(), dist.get_rank(), dist.get_world_size()) == ('gloo', 0, 1)
        assert (os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('127.0.0.1', str(port))
        assert (os.environ['RANK'], os.environ['LOCAL_RANK'], os.environ['WORLD_SIZE']) == ('0', '0', '1')
    finally:
        dist.destroy_process_group()


def test_ranks_that_disagree_on_resume_fail_clearly(monkeypatch):
    """Without a shared filesystem rank 1 would start over while rank 0 resumes: refuse instead of hanging."""
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'get_world_size', lambda: 2)
    monkeypatch.setattr(dist, 'all_gather_object', lambda out, obj: out.__setitem__(slice(None), [obj, None]))
    opt = {'path': {'resume_state': '/exp/tiny/training_states/4.state', 'training_states': '/exp/tiny/ts'}}
    with pytest.raises(RuntimeError, match=r'Ranks disagree on the training state to resume from \(rank 0: 4.state, '
                                           r'rank 1: from scratch\)\. Every node must see the same /exp/tiny/ts'):
        compat._check_same_start(opt)
    opt['path']['resume_state'] = None
    compat._check_same_start(opt)  # every rank from scratch: fine


def test_model_to_device_refuses_nccl_for_cpu_models(monkeypatch):
    monkeypatch.setattr(dist, 'get_backend', lambda *args: 'nccl')
    model = BaseModel({'num_gpu': 0, 'is_train': False, 'dist': True})
    with pytest.raises(RuntimeError, match='num_gpu is 0 .* set dist_params.backend: gloo'):
        model.model_to_device(torch.nn.Linear(2, 2))


def test_launcher_without_its_environment_is_a_clear_error(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match=r'--launcher pytorch needs the environment variables RANK, WORLD_SIZE, '
                                           r'MASTER_ADDR, MASTER_PORT, which torchrun \(python -m torch'):
        compat._init_dist_pytorch()
    with pytest.raises(RuntimeError, match='--launcher slurm needs the environment variables SLURM_PROCID, '
                                           'SLURM_NTASKS, SLURM_NODELIST, which srun sets'):
        compat._init_dist_slurm()


def test_benchmark_scaling_table_and_argument_checks():
    from msrn_plugin.bench.dist_bench import measure_throughput, scaling_table
    rows = scaling_table([{'world_size': 1, 'samples_per_s': 10.}, {'world_size': 2, 'samples_per_s': 15.}])
    assert [(r['speedup'], r['efficiency']) for r in rows] == [(1., 1.), (1.5, 0.75)]
    with pytest.raises(ValueError, match='needs the 1-process result'):
        scaling_table([{'world_size': 2, 'samples_per_s': 15.}])
    with pytest.raises(ValueError, match='batch_size must be at least 1, got 0'):
        measure_throughput(1, batch_size=0)
    if torch.cuda.device_count() < 2:
        with pytest.raises(ValueError, match='device cuda with 2 ranks needs 2 GPUs'):
            measure_throughput(2, device='cuda')
