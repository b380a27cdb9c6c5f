"""SRModel with training-speed switches (AMP, channels_last, torch.compile, TF32, gradient clipping) and MSRN+."""
import importlib.util
import logging
import os
import shutil
import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY
from collections import OrderedDict
from typing import Any, List, Mapping, Optional

from msrn_plugin.inference.ensemble import self_ensemble

logger = logging.getLogger('basicsr')

#: Top-level option keys read by :class:`MSRNModel` (the names traiNNer-redux uses).
SPEED_SWITCHES = ('use_amp', 'amp_bf16', 'use_channels_last', 'use_compile', 'fast_matmul', 'grad_clip_max_norm')
#: ``use_compile`` strings accepted (torch.compile's modes).
COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


def train_device_type(opt: Mapping) -> str:
    """'cuda' or 'cpu': where BasicSR will train with these options (``num_gpu`` 0 or no visible GPU: the CPU)."""
    num_gpu = opt.get('num_gpu', 'auto')
    return 'cuda' if torch.cuda.is_available() and num_gpu != 0 else 'cpu'


def find_cxx_compiler() -> Optional[str]:
    """The C++ compiler torch.compile's CPU backend (inductor) would call: ``$CXX``, else g++, c++ or clang++."""
    for name in (os.environ.get('CXX'), 'g++', 'c++', 'clang++'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def set_tf32(enabled: bool) -> None:
    """``fast_matmul``: TF32 matmuls and cuDNN convolutions on (True) or off (False, full fp32); process-wide."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    torch.set_float32_matmul_precision('high' if enabled else 'highest')


def _fp16_supported(device_type: str) -> bool:
    """fp16 autocast with a gradient scaler is offered on CUDA only (on a CPU it is slow and not worth it)."""
    return device_type == 'cuda'


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def check_training_switches(opt: Mapping, is_train: bool = True) -> List[str]:
    """Start-up check of the speed switches; every problem names the key and the fix.

    Called by :func:`msrn_plugin.utils.validation.validate_options` (before anything is written) and by
    :class:`MSRNModel` itself. Refused: values of the wrong type, a switch with a model that ignores it, fp16 on a
    CPU (use ``amp_bf16: true`` there), bf16 on a GPU without bf16, and ``use_compile`` where torch.compile has no
    compiler (no C++ compiler for the CPU backend, no triton for CUDA).

    Args:
        opt (Mapping): Options (not modified).
        is_train (bool): A training run (the switches only apply to training). Default: True.

    Returns:
        list[str]: Problems; empty when the switches can work here.
    """
    problems = []
    for key in ('use_amp', 'amp_bf16', 'use_channels_last', 'fast_matmul'):
        if opt.get(key) is not None and not _is_bool(opt[key]):
            problems.append(f'{key}: {opt[key]!r} is not true or false.')
    compile_opt = opt.get('use_compile')
    if compile_opt is not None and not _is_bool(compile_opt) and compile_opt not in COMPILE_MODES:
        problems.append(f'use_compile: {compile_opt!r} is not true, false or a torch.compile mode '
                        f'({", ".join(COMPILE_MODES)}).')
    clip = opt.get('grad_clip_max_norm')
    if clip is not None and (_is_bool(clip) or not isinstance(clip, (int, float)) or clip < 0):
        problems.append(f'grad_clip_max_norm: {clip!r} is not a number >= 0 (0 turns clipping off).')
    val_amp = (opt.get('val') or {}).get('use_amp') if isinstance(opt.get('val'), Mapping) else None
    if val_amp is not None and not _is_bool(val_amp):
        problems.append(f'val.use_amp: {val_amp!r} is not true or false.')
    if problems:
        return problems
    used = [k for k in SPEED_SWITCHES if opt.get(k)] + (['val.use_amp'] if val_amp else [])
    model_type = opt.get('model_type')
    model_cls = MODEL_REGISTRY.get(model_type) if model_type in MODEL_REGISTRY else None
    if used and model_cls is not None and not issubclass(model_cls, MSRNModel):
        return [f'{", ".join(used)}: set, but model_type {model_type} ignores {"them" if len(used) > 1 else "it"}; '
                'use model_type: MSRNModel (or remove the switches).']
    device = train_device_type(opt)
    amp_keys = (['use_amp'] if is_train and opt.get('use_amp') else []) + (['val.use_amp'] if val_amp else [])
    for key in amp_keys:
        if opt.get('amp_bf16'):
            if device == 'cuda' and not torch.cuda.is_bf16_supported():
                problems.append(f'{key} with amp_bf16: this GPU has no bfloat16; set amp_bf16: false (fp16 with a '
                                'gradient scaler).')
        elif not _fp16_supported(device):
            problems.append(f'{key}: fp16 (amp_bf16 false or unset) needs a CUDA GPU, and this run is on the CPU; set '
                            'amp_bf16: true (bfloat16 autocast works on a CPU) or use_amp: false.')
    if is_train and compile_opt:
        if device == 'cpu' and find_cxx_compiler() is None:
            problems.append('use_compile: torch.compile on the CPU needs a C++ compiler and none was found ($CXX, '
                            'g++, c++, clang++); install one (e.g. apt-get install g++) or set use_compile: false.')
        elif device == 'cuda' and importlib.util.find_spec('triton') is None:
            problems.append('use_compile: torch.compile on CUDA needs the triton package, which is not installed; '
                            'pip install triton (the version your torch asks for) or set use_compile: false.')
    return problems


@MODEL_REGISTRY.register()
class MSRNModel(SRModel):
    """BasicSR's :class:`basicsr.models.sr_model.SRModel` with training-speed switches and MSRN+ validation.

    Top-level options (all optional; off when absent; docs/training_speed.md):

    - ``use_amp`` (bool): autocast the training forward pass; ``amp_bf16`` (bool) picks bfloat16, otherwise float16
      with a gradient scaler (CUDA only) whose state is saved in the training state and restored on resume.
    - ``use_channels_last`` (bool): network weights and training inputs in channels_last memory format.
    - ``use_compile`` (bool or a torch.compile mode): compile the training forward pass (validation stays eager).
    - ``fast_matmul`` (bool): TF32 matmuls and convolutions on CUDA (``false`` forces full fp32; absent: PyTorch's
      defaults).
    - ``grad_clip_max_norm`` (float): clip the gradient norm before each step; 0 is off.

    Validation and metrics run in fp32 unless ``val.use_amp: true``. ``val.self_ensemble: true`` evaluates MSRN+:
    every validation/test image goes through the 8 dihedral transforms and the back-transformed outputs are
    averaged (:func:`msrn_plugin.inference.ensemble.self_ensemble`), with ``net_g_ema`` when EMA is on.

    Args:
        opt (dict): Options of ``SRModel`` plus the switches above.

    Raises:
        ValueError: If a switch has a bad value or cannot work on this machine (:func:`check_training_switches`).
    """

    def __init__(self, opt: dict):
        flag = (opt.get('val') or {}).get('self_ensemble', False)
        if not isinstance(flag, bool):
            raise ValueError(f'val.self_ensemble must be true or false, got {flag!r}.')
        problems = check_training_switches(opt, is_train=opt.get('is_train', False))
        if problems:
            raise ValueError('Training switches refused: ' + ' '.join(problems))
        self.use_self_ensemble = flag
        is_train = bool(opt.get('is_train', False))
        self.use_amp = bool(opt.get('use_amp')) and is_train
        self.val_use_amp = bool((opt.get('val') or {}).get('use_amp'))
        self.amp_dtype = torch.bfloat16 if opt.get('amp_bf16') else torch.float16
        self.use_channels_last = bool(opt.get('use_channels_last')) and is_train
        compile_opt = opt.get('use_compile') if is_train else None
        self.compile_mode = None if not compile_opt else ('default' if compile_opt is True else compile_opt)
        self.grad_clip_max_norm = float(opt.get('grad_clip_max_norm') or 0)
        self.fast_matmul = opt.get('fast_matmul')
        if self.fast_matmul is not None:
            set_tf32(self.fast_matmul)
        self._train_net = None
        super().__init__(opt)
        self.scaler = (torch.amp.GradScaler(self.device.type)
                       if self.use_amp and self.amp_dtype == torch.float16 else None)
        if flag:
            logger.info('Validation/test output: x8 geometric self-ensemble (MSRN+).')
        if is_train:
            logger.info('Training switches in effect: %s', self.describe_switches())

    def describe_switches(self) -> str:
        """One line naming every switch and its effective value (logged at start-up)."""
        amp = 'off'
        if self.use_amp:
            amp = 'bf16' if self.amp_dtype == torch.bfloat16 else 'fp16 with gradient scaler'
        tf32 = 'PyTorch default' if self.fast_matmul is None else ('on' if self.fast_matmul else 'off (full fp32)')
        return (f'device {self.device.type}; use_amp {amp}; use_channels_last '
                f'{"on" if self.use_channels_last else "off"}; use_compile {self.compile_mode or "off"}; '
                f'fast_matmul (TF32) {tf32}; grad_clip_max_norm {self.grad_clip_max_norm or "off"}; validation '
                f'{"autocast " + str(self.amp_dtype).split(".")[-1] if self.val_use_amp else "fp32"}')

    def model_to_device(self, net: torch.nn.Module) -> torch.nn.Module:
        """Move ``net`` to the device (channels_last first when asked, so that DDP buckets match), then wrap it."""
        if self.use_channels_last:
            net = net.to(memory_format=torch.channels_last)
        return super().model_to_device(net)

    def _training_network(self) -> torch.nn.Module:
        if self._train_net is None:
            self._train_net = self.net_g
            if self.compile_mode:
                logger.info('Compiling the training forward pass (torch.compile, mode %s).', self.compile_mode)
                self._train_net = torch.compile(self.net_g, mode=self.compile_mode)
        return self._train_net

    def optimize_parameters(self, current_iter: int) -> None:
        """One training step of ``SRModel`` with autocast, channels_last, compile, gradient scaling and clipping.

        Args:
            current_iter (int): Current iteration (unused, as in ``SRModel``).
        """
        self.optimizer_g.zero_grad(set_to_none=True)
        lq = self.lq.contiguous(memory_format=torch.channels_last) if self.use_channels_last else self.lq
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.use_amp):
            output = self._training_network()(lq)
        self.output = output.float()
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            l_pix = self.cri_pix(self.output, self.gt)
            l_total += l_pix
            loss_dict['l_pix'] = l_pix
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            if l_percep is not None:
                l_total += l_percep
                loss_dict['l_percep'] = l_percep
            if l_style is not None:
                l_total += l_style
                loss_dict['l_style'] = l_style
        if self.scaler is not None:
            self.scaler.scale(l_total).backward()
            self.scaler.unscale_(self.optimizer_g)
        else:
            l_total.backward()
        if self.grad_clip_max_norm > 0:
            loss_dict['grad_norm'] = torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), self.grad_clip_max_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer_g)
            self.scaler.update()
        else:
            self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self) -> None:
        """Run the network on ``self.lq`` (optionally self-ensembled, optionally autocast) into ``self.output``."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.val_use_amp):
            if not self.use_self_ensemble:
                super().test()
            else:
                net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
                was_training = net.training
                net.eval()
                with torch.no_grad():
                    self.output = self_ensemble(net, self.lq)
                net.train(was_training)
        self.output = self.output.float()

    def save_training_state(self, epoch: int, current_iter: int) -> None:
        """Save epoch, iteration, optimizers, schedulers and the fp16 gradient scaler.

        Called on every rank (as BasicSR's trainer does): rank 0 writes atomically, retried as upstream, and every
        rank raises if it finally fails (:func:`msrn_plugin.compat.plugin_fixes.write_training_state`).

        Args:
            epoch (int): Current epoch.
            current_iter (int): Current iteration (-1: nothing is saved, as upstream).
        """
        from msrn_plugin.compat.plugin_fixes import write_training_state
        scaler = self.scaler
        write_training_state(self, epoch, current_iter,
                             extra=None if scaler is None else lambda: {'scaler': scaler.state_dict()})

    def resume_training(self, resume_state: dict) -> None:
        """Reload optimizers, schedulers and, for fp16, the gradient scaler's state.

        Args:
            resume_state (dict): The training state (from :meth:`save_training_state`).
        """
        super().resume_training(resume_state)
        if self.scaler is None:
            if 'scaler' in resume_state:
                logger.warning('The training state holds an fp16 gradient-scaler state; this run does not use fp16 '
                               '(use_amp false or amp_bf16 true), so it is not used.')
            return
        if 'scaler' in resume_state:
            self.scaler.load_state_dict(resume_state['scaler'])
            logger.info('Gradient scaler restored (scale %g).', self.scaler.get_scale())
        else:
            logger.warning('The training state has no gradient-scaler state (saved without fp16); the scaler starts '
                           'from its initial scale.')
