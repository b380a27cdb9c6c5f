"""The BasicSR 1.4.2 compatibility layer: each fix is in place, and the import fix is needed at all."""
import basicsr.train
import basicsr.utils.dist_util
import basicsr.utils.options
import pytest
import subprocess
import sys
from basicsr.models.base_model import BaseModel

from msrn_plugin import compat
from msrn_plugin.utils.options import SafeOrderedLoader


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)


def test_basicsr_import_fails_without_the_shim():
    result = _python('import basicsr')
    assert result.returncode != 0
    assert "No module named 'torchvision.transforms.functional_tensor'" in result.stderr


def test_basicsr_imports_after_msrn_plugin():
    result = _python('import msrn_plugin, basicsr; from basicsr.data.degradations import rgb_to_grayscale; '
                     'import torchvision.transforms.functional as F; print(rgb_to_grayscale is F.rgb_to_grayscale)')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'True'


def test_every_fix_is_installed():
    assert basicsr.utils.options.ordered_yaml()[0] is SafeOrderedLoader
    assert basicsr.train.load_resume_state is compat.load_resume_state
    assert basicsr.utils.dist_util._init_dist_pytorch is compat._init_dist_pytorch
    assert BaseModel.model_to_device is compat._model_to_device
    assert BaseModel.save_network is compat._save_network
    assert BaseModel.save_training_state is compat._save_training_state
    assert BaseModel.load_network is compat._load_network


def test_apply_is_idempotent():
    compat.apply()
    compat.apply()
    assert basicsr.train.load_resume_state is compat.load_resume_state


@pytest.mark.parametrize('argv, expected', [
    (['-opt', 'a.yml', '--local-rank', '1'], ['-opt', 'a.yml', '--local_rank', '1']),
    (['--local-rank=3', '--auto_resume'], ['--local_rank=3', '--auto_resume']),
    (['--local_rank', '0'], ['--local_rank', '0']),
])
def test_normalize_argv(argv, expected):
    original = list(argv)
    assert compat.normalize_argv(argv) == expected
    assert argv == original  # not changed in place


def test_model_to_device_on_cpu_without_dist():
    import torch
    model = BaseModel({'num_gpu': 0, 'is_train': False, 'dist': False})
    net = model.model_to_device(torch.nn.Linear(2, 2))
    assert isinstance(net, torch.nn.Linear)
    assert next(net.parameters()).device.type == 'cpu'
