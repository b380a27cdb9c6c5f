"""Helpers for ``tests/test_distributed.py``: tiny data and option files, bounded subprocesses, and a worker script.

Run under torchrun as a worker (``python -m torch.distributed.run ... tests/dist_helpers.py MODE OUT [args]``):

- ``train OUT -opt X.yml --launcher pytorch [...]``: ``msrn_plugin.train.main`` (the CLI's code path), then each
  rank saves its final parameters to ``OUT/params_rank{r}.pth`` and ``OUT/report_rank{r}.json`` (rank, world size,
  backend, the checkpoint files it wrote itself, its sampler's indices for epoch 0).
- ``failsave OUT -opt X.yml --launcher pytorch``: training where rank 0 cannot write checkpoints; each rank writes
  the exit status of ``msrn_plugin.train.main`` to ``OUT/report_rank{r}.json``.
- ``grad OUT -opt X.yml --launcher pytorch``: one ``SRModel.optimize_parameters`` step (lr 0) per rank on its half
  of a fixed batch; each rank saves the DDP-averaged gradient (``OUT/grads_rank{r}.pth``), and rank 0 the gradients
  of plain copies of the network on the union batch and on its own half (``grads_union.pth``, ``grads_half0.pth``).
"""
import json
import numpy as np
import os
import shutil
import signal
import socket
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

if __name__ == '__main__':  # run as a file: keep tests/ from shadowing top-level modules
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != os.path.dirname(os.path.abspath(__file__))]

import cv2  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import msrn_plugin  # noqa: E402,F401  (compatibility layer and registration)
from msrn_plugin.utils.photos import TRAIN_PHOTOS, load_photo  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALE = 2
TINY_NET = {'type': 'MSRN', 'num_feat': 8, 'num_block': 1, 'upscale': SCALE}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def make_paired_folders(root: str, num_train: int = 4, gt_size: int = 48) -> Dict[str, str]:
    """Write a miniature x2 dataset (GT crops of the bundled photos, MATLAB-bicubic LQ) for PairedImageDataset.

    Args:
        root (str): Output folder.
        num_train (int): Number of training pairs. Default: 4.
        gt_size (int): Side of the GT crops. Default: 48.

    Returns:
        dict: ``train_gt``, ``train_lq``, ``val_gt``, ``val_lq`` folders.
    """
    from basicsr.utils.matlab_functions import imresize

    folders = {key: os.path.join(root, key) for key in ('train_gt', 'train_lq', 'val_gt', 'val_lq')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    names = list(TRAIN_PHOTOS[:num_train + 1])
    for i, name in enumerate(names):
        img = load_photo(name)
        top, left = (img.shape[0] - gt_size) // 2, (img.shape[1] - gt_size) // 2
        gt = img[top:top + gt_size, left:left + gt_size]
        lq = imresize(gt.astype(np.float32) / 255., 1 / SCALE)
        lq = np.clip(np.round(lq * 255.), 0, 255).astype(np.uint8)
        split = 'val' if i == len(names) - 1 else 'train'
        stem = os.path.splitext(name)[0]
        cv2.imwrite(os.path.join(folders[f'{split}_gt'], f'{stem}.png'), gt)
        cv2.imwrite(os.path.join(folders[f'{split}_lq'], f'{stem}.png'), lq)
    return folders


def train_options(folders: Dict[str, str], name: str, total_iter: int = 4, batch_size_per_gpu: int = 2,
                  use_tb_logger: bool = False) -> dict:
    """A tiny MSRN x2 training configuration in BasicSR's format (CPU, no workers).

    Args:
        folders (dict): From :func:`make_paired_folders`.
        name (str): Experiment name (never containing 'debug').
        total_iter (int): Iterations. Checkpoints and validation every 2. Default: 4.
        batch_size_per_gpu (int): Per-rank batch. Default: 2.
        use_tb_logger (bool): Write tensorboard events. Default: False.
    """
    dataset = {'type': 'PairedImageDataset', 'io_backend': {'type': 'disk'}, 'filename_tmpl': '{}'}
    return {
        'name': name, 'model_type': 'SRModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': dict(dataset, name='tiny', dataroot_gt=folders['train_gt'], dataroot_lq=folders['train_lq'],
                          gt_size=32, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
                          batch_size_per_gpu=batch_size_per_gpu, dataset_enlarge_ratio=1, prefetch_mode=None),
            'val': dict(dataset, name='tiny_val', dataroot_gt=folders['val_gt'], dataroot_lq=folders['val_lq']),
        },
        'network_g': dict(TINY_NET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {'val_freq': 2, 'save_img': False, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': use_tb_logger,
                   'wandb': {'project': None, 'resume_id': None}},
    }


def write_yaml(opt: dict, path: str) -> str:
    """Write an option dict as YAML and return the path."""
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def worker_env(threads: int = 1) -> Dict[str, str]:
    """Environment for worker processes: one thread each, unbuffered, torchrun's own ports only."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    for key in ('MASTER_ADDR', 'MASTER_PORT', 'RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'PORT', 'NNODES', 'NODE_RANK'):
        env.pop(key, None)
    return env


def start(cmd: Sequence[str], cwd: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (so a timeout can end its workers too), output to a pipe."""
    return subprocess.Popen(list(cmd), cwd=cwd, env=env or worker_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(procs: List[subprocess.Popen], timeout: float) -> List[str]:
    """Wait for every process; on timeout kill their process groups and fail with their output.

    Returns:
        list[str]: Each process's output; an AssertionError (with the output) if one failed or timed out.
    """
    outputs, timed_out = [], False
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            for other in procs:
                if other.poll() is None:
                    os.killpg(other.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        outputs.append(out)
    report = '\n'.join(f'--- {" ".join(p.args)} (rc {p.returncode}) ---\n{o[-6000:]}' for p, o in zip(procs, outputs))
    assert not timed_out, f'timed out after {timeout} s:\n{report}'
    assert all(p.returncode == 0 for p in procs), f'a process failed:\n{report}'
    return outputs


def torchrun(args: Sequence[str], nproc: int, port: int, nnodes: int = 1, node_rank: int = 0) -> List[str]:
    """``python -m torch.distributed.run`` with a static rendezvous on 127.0.0.1:``port``."""
    return [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={nproc}', f'--nnodes={nnodes}',
            f'--node_rank={node_rank}', '--master_addr=127.0.0.1', f'--master_port={port}', *args]


def dist_train_sh(nproc: int, opt_path: str, extra: Sequence[str] = ()) -> List[str]:
    """The ``scripts/dist_train.sh`` command line (the shell script must be run with bash)."""
    return [shutil.which('bash') or 'bash', os.path.join(REPO_ROOT, 'scripts', 'dist_train.sh'), str(nproc),
            opt_path, *extra]


def _worker_train(out_dir: str, argv: List[str]) -> None:
    import basicsr.train
    import torch.distributed as dist

    from msrn_plugin.compat import plugin_fixes
    from msrn_plugin.train import main

    models, samplers, writes = [], [], []
    build_model, sampler_cls = basicsr.train.build_model, basicsr.train.EnlargedSampler
    atomic_save = plugin_fixes.atomic_torch_save

    def capture_model(opt):
        models.append(build_model(opt))
        return models[-1]

    def capture_sampler(*args, **kwargs):
        samplers.append(sampler_cls(*args, **kwargs))
        return samplers[-1]

    def record_save(obj, path):
        writes.append(os.path.relpath(os.fspath(path)))
        atomic_save(obj, path)

    basicsr.train.build_model, basicsr.train.EnlargedSampler = capture_model, capture_sampler
    plugin_fixes.atomic_torch_save = record_save
    main(argv)
    rank = dist.get_rank()
    net = models[0].get_bare_model(models[0].net_g)
    params = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(params, os.path.join(out_dir, f'params_rank{rank}.pth'))
    samplers[0].set_epoch(0)
    report = {'rank': rank, 'world_size': dist.get_world_size(), 'backend': dist.get_backend(), 'writes': writes,
              'epoch0_indices': [int(i) for i in samplers[0]]}
    with open(os.path.join(out_dir, f'report_rank{rank}.json'), 'w') as f:
        json.dump(report, f)


def _worker_failsave(out_dir: str, argv: List[str]) -> None:
    """Rank 0 cannot write any checkpoint (disk full): every rank must stop with the same error, none may hang."""
    import torch.distributed as dist

    from msrn_plugin.compat import plugin_fixes
    from msrn_plugin.train import main

    def disk_full(obj, path):
        raise OSError(28, 'No space left on device')

    plugin_fixes.atomic_torch_save, plugin_fixes.SAVE_RETRY_DELAY = disk_full, 0.2
    rc = main(argv)
    with open(os.path.join(out_dir, f'report_rank{dist.get_rank()}.json'), 'w') as f:
        json.dump({'rc': rc}, f)


def _worker_grad(out_dir: str, argv: List[str]) -> None:
    """Each rank: half of a fixed batch through SRModel + DDP; rank 0 also: plain copies on the union and a half."""
    import copy
    from basicsr.models import build_model
    from basicsr.utils.options import parse_options

    sys.argv = ['dist_helpers.py'] + argv
    opt, _ = parse_options(out_dir, is_train=True)  # initialises the process group (--launcher pytorch)
    opt['train']['optim_g']['lr'] = 0.  # the step must not move the parameters: we read the gradients
    rank, world_size = opt['rank'], opt['world_size']
    model = build_model(opt)
    bare = model.get_bare_model(model.net_g)
    plain = [copy.deepcopy(bare), copy.deepcopy(bare)]  # the initial weights (DDP broadcast rank 0's)

    gen = torch.Generator().manual_seed(1234)
    lq = torch.rand(2 * world_size, 3, 12, 12, generator=gen)
    gt = torch.rand(2 * world_size, 3, 12 * SCALE, 12 * SCALE, generator=gen)
    half = slice(2 * rank, 2 * rank + 2)
    model.feed_data({'lq': lq[half], 'gt': gt[half]})
    model.optimize_parameters(1)
    torch.save({n: p.grad.detach().clone() for n, p in bare.named_parameters()},
               os.path.join(out_dir, f'grads_rank{rank}.pth'))
    if rank == 0:
        for net, name, batch in ((plain[0], 'union', slice(None)), (plain[1], 'half0', half)):
            model.cri_pix(net(lq[batch]), gt[batch]).backward()
            torch.save({n: p.grad.detach().clone() for n, p in net.named_parameters()},
                       os.path.join(out_dir, f'grads_{name}.pth'))
    torch.distributed.destroy_process_group()


if __name__ == '__main__':
    torch.set_num_threads(1)
    mode, out = sys.argv[1], sys.argv[2]
    {'train': _worker_train, 'grad': _worker_grad, 'failsave': _worker_failsave}[mode](out, sys.argv[3:])
