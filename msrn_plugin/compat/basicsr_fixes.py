"""Every workaround for BasicSR 1.4.2, in one place.

Nothing here edits installed files: each fix replaces one BasicSR attribute at import time, from the outside, and
:func:`apply` is idempotent. ``import msrn_plugin`` calls it before anything imports ``basicsr``.

=====  ==========================================================  ================================================
#      Upstream behaviour (basicsr 1.4.2)                          What the plugin does instead
=====  ==========================================================  ================================================
1      ``basicsr.data.degradations`` imports                       Register a stand-in module
       ``torchvision.transforms.functional_tensor``, removed in    ``torchvision.transforms.functional_tensor`` that
       torchvision 0.17, so ``import basicsr`` fails.              re-exports ``rgb_to_grayscale`` from
                                                                   ``torchvision.transforms.functional``.
2      ``basicsr.utils.options.ordered_yaml`` uses PyYAML's full   Return :class:`msrn_plugin.utils.options.
       ``Loader``: option files can run arbitrary code; and        SafeOrderedLoader`` (Python tags refused);
       ``_postprocess_yml_value`` ``eval``-s ``--force_yml``       parse them with :func:`msrn_plugin.utils.options.
       values that start with ``[``.                               parse_override_value` (``entry`` checks keys).
3      ``basicsr.train.load_resume_state`` maps states to CUDA     Load on the CPU with ``weights_only=True`` from
       (crashes without a GPU), looks for ``--auto_resume``        ``opt['path']['training_states']`` (under the
       states relative to the current directory, not to            ``root_path``), fall back to the previous
       ``root_path``, and crashes on an unreadable newest state.   state when the newest one is unreadable, and
                                                                   remove temporary files left by a killed save.
4      ``_init_dist_pytorch``/``_init_dist_slurm`` call            Choose ``nccl`` with GPUs and ``gloo`` without
       ``torch.cuda.set_device`` (ZeroDivisionError without        (or ``dist_params.backend``, through
       GPUs), use NCCL only (torchrun ignores ``dist_params``),    :func:`set_dist_backend`); the GPU is
       and pick the GPU as global rank modulo the GPU count.       ``LOCAL_RANK``/``SLURM_LOCALID``; clear errors
                                                                   for nccl without GPUs and a missing launcher.
5      ``BaseModel.model_to_device`` passes CUDA ``device_ids``    Pass ``device_ids`` only for CUDA models; refuse
       to ``DistributedDataParallel``.                             nccl for a CPU model (``num_gpu: 0``).
6      ``BaseModel.save_network``/``save_training_state`` write    Write atomically (temporary file, fsync,
       in place: a kill leaves truncated ``.pth``/``.state``.      rename) on rank 0 only, as upstream, and raise
                                                                   when writing fails.
7      ``BaseModel.load_network`` calls ``torch.load`` without     Load with ``weights_only=True`` through
       ``weights_only``.                                           :func:`msrn_plugin.utils.checkpoint.safe_torch_load`.
8      ``parse_options`` knows ``--local_rank`` only.              :func:`normalize_argv` rewrites ``--local-rank``.
9      ``BaseModel.validation`` runs on rank 0 through the DDP     Validate with the bare networks (DDP wrappers
       wrapper, whose forward broadcasts buffers (MSRN's mean      swapped out for the call).
       shifts) to ranks that are not validating: the final
       validation fails once the other ranks have exited.
10     Under DDP each rank looks for ``--auto_resume`` states on   All ranks compare their resume point when DDP
       its own disk: without a shared filesystem one rank          wraps the network and fail with a message
       resumes, another starts over, and the job hangs.            naming the mismatch.
=====  ==========================================================  ================================================
"""
import logging
import os
import re
import sys
import torch
import types
from typing import List, Optional, Sequence

from msrn_plugin.utils.checkpoint import CheckpointError, atomic_torch_save, safe_torch_load
from msrn_plugin.utils.options import OptionFileError, parse_override_value

_applied = False
_dist_backend: Optional[str] = None
logger = logging.getLogger('basicsr')  # BasicSR's logger; never call get_root_logger() before train_pipeline does


def install_torchvision_shim() -> None:
    """Fix 1: make ``torchvision.transforms.functional_tensor`` importable again (needed before ``import basicsr``)."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401  (torchvision < 0.17 still has it)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional
    shim = types.ModuleType(name, 'msrn_plugin.compat stand-in for the module removed in torchvision 0.17.')
    shim.rgb_to_grayscale = functional.rgb_to_grayscale
    sys.modules[name] = shim


def _safe_ordered_yaml():
    """Fix 2: BasicSR's ``ordered_yaml()`` with the safe loader."""
    from yaml import Dumper

    from msrn_plugin.utils.options import SafeOrderedLoader
    return SafeOrderedLoader, Dumper


def _remove_stale_temporaries(folder: str) -> None:
    """Fix 3: delete ``.<name>.<random>.tmp`` files that :func:`atomic_torch_save` leaves when killed mid-write."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if re.fullmatch(r'\.(net_\w+_(\d+|latest)\.pth|\d+\.state)\..+\.tmp', name):
            logger.warning(f'Removing {os.path.join(folder, name)}: left by a save that was interrupted.')
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:  # another rank removed it first
                pass


def _state_iter(filename: str) -> Optional[int]:
    match = re.fullmatch(r'(\d+)\.state', filename)
    return int(match.group(1)) if match else None


def load_resume_state(opt: dict) -> Optional[dict]:
    """Fix 3: BasicSR's ``load_resume_state`` for CPU and GPU, with a fallback for unreadable states.

    With ``--auto_resume`` the newest ``<iter>.state`` under ``opt['path']['training_states']`` whose state and
    network checkpoint are both readable is used; unreadable ones are reported and skipped. States are loaded on the
    CPU (``Optimizer.load_state_dict`` moves them to the parameters' device).

    Args:
        opt (dict): Parsed options; ``opt['path']['resume_state']`` is set to the state used (as BasicSR does).

    Returns:
        dict | None: The training state, or None to start from scratch.

    Raises:
        CheckpointError: If an explicit ``resume_state`` is unreadable, or no auto-resume state is.
    """
    from basicsr.utils import check_resume

    for key in ('training_states', 'models'):
        if opt['path'].get(key):
            _remove_stale_temporaries(opt['path'][key])
    if opt.get('auto_resume'):
        state_dir = opt['path']['training_states']
        if not os.path.isdir(state_dir):
            return None
        iters = sorted((it for it in map(_state_iter, os.listdir(state_dir)) if it is not None), reverse=True)
        errors = []
        for it in iters:
            state_path = os.path.join(state_dir, f'{it}.state')
            try:
                state = safe_torch_load(state_path)
                for net_key in (key for key in opt if key.startswith('network_')):
                    net_path = os.path.join(opt['path']['models'], f"net_{net_key[len('network_'):]}_{it}.pth")
                    safe_torch_load(net_path)
            except CheckpointError as err:
                errors.append(str(err))
                logger.warning(f'Cannot resume from iteration {it}: {err} Falling back to the previous state.')
                continue
            opt['path']['resume_state'] = state_path
            check_resume(opt, state['iter'])
            return state
        if errors:
            raise CheckpointError(f'--auto_resume found training states in {state_dir} but none is usable:\n  ' +
                                  '\n  '.join(errors) + '\nRemove that folder to start over.')
        return None
    resume_path = opt['path'].get('resume_state')
    if not resume_path:
        return None
    state = safe_torch_load(resume_path)
    check_resume(opt, state['iter'])
    return state


_DIST_BACKENDS = ('gloo', 'nccl', 'mpi', 'ucc', 'xccl')


def set_dist_backend(backend: Optional[str]) -> None:
    """Choose the process-group backend for ``--launcher pytorch``/``slurm`` (``dist_params.backend`` in options).

    Args:
        backend (str | None): 'gloo', 'nccl', 'mpi', 'ucc' or 'xccl'; None: nccl with GPUs, gloo without.

    Raises:
        OptionFileError: If ``backend`` is not a backend name (a ``ValueError``).
    """
    global _dist_backend
    if backend is not None and backend not in _DIST_BACKENDS:
        raise OptionFileError(f'dist_params.backend: unknown backend {backend!r}; use gloo (CPU or GPU), nccl '
                              '(GPU) or remove the key to choose from the hardware.')
    _dist_backend = backend


def resolve_dist_backend() -> str:
    """The backend fix 4 uses: the one set by :func:`set_dist_backend`, else nccl with GPUs, else gloo."""
    if _dist_backend:
        return _dist_backend
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def _require_env(keys: Sequence[str], launcher: str, how: str) -> None:
    missing = [key for key in keys if key not in os.environ]
    if missing:
        raise RuntimeError(f"--launcher {launcher} needs the environment variables {', '.join(missing)}, which "
                           f'{how} sets; start the job that way, or drop --launcher for a single process.')


def _init_process_group(local_rank: int, **kwargs) -> None:
    """Select the GPU of ``local_rank`` for nccl (nothing on CPU) and join the process group."""
    import torch.distributed as dist
    backend = resolve_dist_backend()
    if backend == 'nccl':
        num_gpus = torch.cuda.device_count()
        if num_gpus == 0:
            raise RuntimeError("dist_params.backend is 'nccl' but no CUDA GPU is visible; set it to gloo (or remove "
                               'it to choose from the hardware).')
        if local_rank >= num_gpus:
            raise RuntimeError(f'local rank {local_rank} has no GPU: {num_gpus} visible on this node; start at most '
                               f'{num_gpus} processes per node (torchrun --nproc_per_node).')
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist_pytorch(backend: str = 'nccl', **kwargs) -> None:
    """Fix 4: BasicSR's ``_init_dist_pytorch`` (torchrun) on GPUs and CPUs, one node or many.

    Args:
        backend (str): Ignored (BasicSR always passes 'nccl'): :func:`resolve_dist_backend` decides. Default: 'nccl'.
        **kwargs: Passed to ``torch.distributed.init_process_group``.
    """
    _require_env(('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'), 'pytorch',
                 'torchrun (python -m torch.distributed.run, or scripts/dist_train.sh)')
    local_rank = int(os.environ.get('LOCAL_RANK', int(os.environ['RANK']) % max(torch.cuda.device_count(), 1)))
    _init_process_group(local_rank, **kwargs)


def _init_dist_slurm(backend: str = 'nccl', port: Optional[int] = None) -> None:
    """Fix 4 (slurm): BasicSR's ``_init_dist_slurm`` (``srun``) on GPUs and CPUs.

    Sets the same variables as upstream (``MASTER_ADDR`` from ``scontrol show hostname``, ``MASTER_PORT`` from
    ``port``, else the environment, else 29500, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); the local rank is
    ``SLURM_LOCALID`` (upstream: global rank modulo the GPU count, wrong when nodes run fewer tasks than GPUs).

    Args:
        backend (str): Ignored: :func:`resolve_dist_backend` decides (``dist_params.backend`` reaches it through
            :func:`set_dist_backend`). Default: 'nccl'.
        port (int | None): Master port (``dist_params.port``). Default: None.
    """
    import subprocess
    _require_env(('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'), 'slurm', 'srun')
    proc_id = int(os.environ['SLURM_PROCID'])
    local_rank = int(os.environ.get('SLURM_LOCALID', proc_id % max(torch.cuda.device_count(), 1)))
    addr = subprocess.getoutput(f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    elif 'MASTER_PORT' not in os.environ:
        os.environ['MASTER_PORT'] = '29500'
    os.environ['MASTER_ADDR'] = addr
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = str(local_rank)
    os.environ['RANK'] = str(proc_id)
    _init_process_group(local_rank)


def _check_same_start(opt: dict) -> None:
    """Fix 10: every rank must resume from the same training state (or none), else fail instead of hanging."""
    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized()):
        return
    state = opt['path'].get('resume_state')
    states = [None] * dist.get_world_size()
    dist.all_gather_object(states, os.path.basename(state) if state else None)
    if len(set(states)) > 1:
        seen = ', '.join(f'rank {r}: {s or "from scratch"}' for r, s in enumerate(states))
        raise RuntimeError(f'Ranks disagree on the training state to resume from ({seen}). Every node must see the '
                           f"same {opt['path'].get('training_states', 'experiments/<name>/training_states')} "
                           '(a shared filesystem) for --auto_resume or path.resume_state.')


def _model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
    """Fix 5: ``BaseModel.model_to_device`` that wraps CPU models in DDP too (gloo) and checks the resume point."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        import torch.distributed as dist
        if self.device.type == 'cpu' and dist.get_backend() == 'nccl':
            raise RuntimeError('num_gpu is 0 (training on the CPU) but the process group uses nccl, which needs '
                               'GPUs: set dist_params.backend: gloo in the option file.')
        if self.opt.get('is_train'):
            _check_same_start(self.opt)
        find_unused_parameters = self.opt.get('find_unused_parameters', False)
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def _validation(self, dataloader, current_iter: int, tb_logger, save_img: bool = False) -> None:
    """Fix 9: ``BaseModel.validation`` that runs the bare networks under DDP.

    Upstream validates on rank 0 only through the DDP wrapper, whose forward broadcasts module buffers (MSRN's mean
    shifts) to ranks that are not validating: the ranks' collectives go out of step, and the final validation fails
    with "Connection closed by peer" once the other ranks have exited.

    Args:
        dataloader (DataLoader): Validation dataloader.
        current_iter (int): Current iteration.
        tb_logger (SummaryWriter | None): Tensorboard logger.
        save_img (bool): Whether to save images. Default: False.
    """
    from torch.nn.parallel import DistributedDataParallel
    wrapped = {key: net for key, net in vars(self).items() if isinstance(net, DistributedDataParallel)}
    for key, net in wrapped.items():
        setattr(self, key, net.module)
    try:
        if self.opt['dist']:
            self.dist_validation(dataloader, current_iter, tb_logger, save_img)
        else:
            self.nondist_validation(dataloader, current_iter, tb_logger, save_img)
    finally:
        for key, net in wrapped.items():
            setattr(self, key, net)


def _save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
    """Fix 6: ``BaseModel.save_network`` with an atomic write (rank 0 only, as upstream's ``@master_only``)."""
    from basicsr.utils.dist_util import get_dist_info
    if get_dist_info()[0] != 0:
        return
    if current_iter == -1:
        current_iter = 'latest'
    save_path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
    nets = net if isinstance(net, list) else [net]
    param_keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(param_keys):
        raise ValueError('save_network: the lengths of net and param_key should be the same.')
    save_dict = {}
    for net_, key_ in zip(nets, param_keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[key_] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in state_dict.items()}
    atomic_torch_save(save_dict, save_path)


def _save_training_state(self, epoch: int, current_iter: int) -> None:
    """Fix 6: ``BaseModel.save_training_state`` with an atomic write (rank 0 only, as upstream)."""
    from basicsr.utils.dist_util import get_dist_info
    if current_iter == -1 or get_dist_info()[0] != 0:
        return
    state = {
        'epoch': epoch,
        'iter': current_iter,
        'optimizers': [o.state_dict() for o in self.optimizers],
        'schedulers': [s.state_dict() for s in self.schedulers]
    }
    atomic_torch_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def _load_network(self, net: torch.nn.Module, load_path: str, strict: bool = True, param_key='params') -> None:
    """Fix 7: ``BaseModel.load_network`` that refuses pickled code."""
    net = self.get_bare_model(net)
    load_net = safe_torch_load(load_path)
    if not isinstance(load_net, dict):
        raise CheckpointError(f'{load_path}: holds a {type(load_net).__name__}, not a dict of weights; save '
                              "{'params': model.state_dict()} or convert it with scripts/convert_official_msrn.py.")
    if param_key is not None:
        if param_key not in load_net and 'params' in load_net:
            param_key = 'params'
            logger.info('Loading: params_ema does not exist, use params.')
        if param_key not in load_net:
            raise CheckpointError(f'{load_path}: no {param_key!r} entry (keys: {sorted(load_net)}); set '
                                  'path.param_key_g to one of them, or convert the file with '
                                  'scripts/convert_official_msrn.py.')
        load_net = load_net[param_key]
    logger.info(f'Loading {net.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    load_net = {(k[7:] if k.startswith('module.') else k): v for k, v in load_net.items()}
    self._print_different_keys_loading(net, load_net, strict)
    net.load_state_dict(load_net, strict=strict)


def normalize_argv(argv: List[str]) -> List[str]:
    """Fix 8: accept torch 2.x's ``--local-rank`` spelling (BasicSR's parser knows ``--local_rank``).

    Args:
        argv (list[str]): Command-line arguments (without the program name).

    Returns:
        list[str]: A new list with ``--local-rank`` rewritten.
    """
    out = []
    for arg in argv:
        if arg == '--local-rank':
            arg = '--local_rank'
        elif arg.startswith('--local-rank='):
            arg = '--local_rank=' + arg.split('=', 1)[1]
        out.append(arg)
    return out


def apply() -> None:
    """Apply every workaround once. Called by ``import msrn_plugin``."""
    global _applied
    if _applied:
        return
    install_torchvision_shim()
    import basicsr.train
    import basicsr.utils.dist_util
    import basicsr.utils.options
    from basicsr.models.base_model import BaseModel

    basicsr.utils.options.ordered_yaml = _safe_ordered_yaml
    basicsr.utils.options._postprocess_yml_value = parse_override_value
    basicsr.train.load_resume_state = load_resume_state
    basicsr.utils.dist_util._init_dist_pytorch = _init_dist_pytorch
    basicsr.utils.dist_util._init_dist_slurm = _init_dist_slurm
    BaseModel.model_to_device = _model_to_device
    BaseModel.validation = _validation
    BaseModel.save_network = _save_network
    BaseModel.save_training_state = _save_training_state
    BaseModel.load_network = _load_network
    _applied = True


__all__ = ['apply', 'install_torchvision_shim', 'load_resume_state', 'normalize_argv', 'set_dist_backend',
           'resolve_dist_backend']
