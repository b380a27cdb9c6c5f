"""msrn_plugin.utils.checkpoint: atomic writes, code-free loads, and no unsafe load anywhere in the plugin."""
import ast
import glob
import os
import pytest
import signal
import subprocess
import sys
import textwrap
import torch
from basicsr.models.lr_scheduler import CosineAnnealingRestartLR, MultiStepRestartLR

from msrn_plugin import compat
from msrn_plugin.utils.checkpoint import CheckpointError, atomic_torch_save, safe_torch_load

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _RunsCode:
    """Pickles as a call to ``open(marker, 'w')``: loading it without ``weights_only`` creates the marker."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


class _FailsToPickle:

    def __reduce__(self):
        raise RuntimeError('disk full (simulated)')


def test_atomic_save_round_trip_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'net_g_5.pth'
    atomic_torch_save({'params': {'w': torch.ones(3)}}, path)
    atomic_torch_save({'params': {'w': torch.full((3, ), 2.)}}, path)
    assert torch.equal(safe_torch_load(path)['params']['w'], torch.full((3, ), 2.))
    assert os.listdir(tmp_path) == ['net_g_5.pth']


def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / '10.state'
    atomic_torch_save({'iter': 10}, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match='disk full'):
        atomic_torch_save({'iter': 20, 'bad': _FailsToPickle()}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['10.state']


def test_kill_during_save_never_truncates_the_final_file(tmp_path):
    """SIGKILL a process in the middle of ``atomic_torch_save``: the final name still holds the complete old file."""
    path = tmp_path / 'net_g_100.pth'
    atomic_torch_save({'params': {'w': torch.ones(4)}}, path)
    module = os.path.join(REPO, 'msrn_plugin', 'utils', 'checkpoint.py')
    child = textwrap.dedent(f"""
        import importlib.util, time, torch
        # msrn_plugin/utils/checkpoint.py needs only torch: load it alone, without the package's BasicSR set-up
        spec = importlib.util.spec_from_file_location('checkpoint', {module!r})
        checkpoint = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(checkpoint)
        class Slow:
            def __reduce__(self):
                print('writing', flush=True)
                time.sleep(120)
                return int, (0, )
        checkpoint.atomic_torch_save({{'params': {{'w': torch.zeros(4)}}, 'slow': Slow()}}, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, '-c', child], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        assert proc.stdout.readline().strip() == 'writing'
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert torch.equal(safe_torch_load(path)['params']['w'], torch.ones(4))
    leftovers = [n for n in os.listdir(tmp_path) if n != 'net_g_100.pth']
    assert len(leftovers) == 1 and leftovers[0].startswith('.net_g_100.pth.') and leftovers[0].endswith('.tmp')
    compat._remove_stale_temporaries(str(tmp_path))  # what resuming does
    assert os.listdir(tmp_path) == ['net_g_100.pth']


@pytest.mark.parametrize('zipfile', [True, False], ids=['zip', 'legacy'])
def test_pickled_code_is_refused_and_not_run(tmp_path, zipfile):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.ones(1)}, 'x': _RunsCode(marker)}, path,
               _use_new_zipfile_serialization=zipfile)
    with pytest.raises(CheckpointError) as err:
        safe_torch_load(path)
    assert str(err.value).startswith(f'{path}: refused to load: the file holds pickled Python objects, not only '
                                     'weights (it would import and call ')
    assert 're-save the weights with `torch.save(model.state_dict(), path)`' in str(err.value)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # control: the payload is real
    assert marker.exists()


def test_unreadable_checkpoints_have_clear_messages(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'params': {'w': torch.ones(1000)}}, good)
    (tmp_path / 'half.pth').write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    (tmp_path / 'empty.pth').write_bytes(b'')
    (tmp_path / 'text.pth').write_text('not a checkpoint')
    messages = {
        'half.pth': 'cannot read checkpoint (', 'text.pth': 'cannot read checkpoint (',
        'empty.pth': 'checkpoint is empty (0 bytes)', 'missing.pth': 'checkpoint not found; check the path.'}
    for name, message in messages.items():
        with pytest.raises(CheckpointError) as err:
            safe_torch_load(tmp_path / name)
        assert str(err.value).startswith(f'{tmp_path / name}: {message}')
    assert 'the file is truncated or not a PyTorch checkpoint' in str(pytest.raises(
        CheckpointError, safe_torch_load, tmp_path / 'half.pth').value)


def test_training_states_load_with_weights_only():
    """BasicSR's training state (Adam, MultiStep and cosine schedulers with their Counters) needs no pickled code."""
    net = torch.nn.Conv2d(3, 4, 3)
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.99)) for _ in range(2)]
    net(torch.rand(1, 3, 8, 8)).mean().backward()
    for optimizer in optimizers:
        optimizer.step()
    schedulers = [MultiStepRestartLR(optimizers[0], milestones=[2, 4], gamma=0.5),
                  CosineAnnealingRestartLR(optimizers[1], periods=[5, 5], restart_weights=[1, 0.5])]
    state = {'epoch': 3, 'iter': 7, 'optimizers': [o.state_dict() for o in optimizers],
             'schedulers': [s.state_dict() for s in schedulers]}
    import io
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded['iter'] == 7 and loaded['schedulers'] == state['schedulers']
    assert torch.equal(loaded['optimizers'][0]['state'][0]['exp_avg'], state['optimizers'][0]['state'][0]['exp_avg'])


def _calls(path):
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
            yield owner, node.func.attr, node


def test_no_unsafe_load_anywhere_in_the_plugin_or_scripts():
    """Every ``torch.load`` passes ``weights_only=True``; YAML is only parsed by the safe loader (or safe_load)."""
    files = glob.glob(os.path.join(REPO, 'msrn_plugin', '**', '*.py'), recursive=True)
    files += glob.glob(os.path.join(REPO, 'scripts', '**', '*.py'), recursive=True)
    offenders = []
    for path in files:
        rel = os.path.relpath(path, REPO)
        for owner, attr, node in _calls(path):
            where = f'{rel}:{node.lineno}'
            if owner == 'torch' and attr == 'load':
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get('weights_only'), ast.Constant) and kw['weights_only'].value is True):
                    offenders.append(f'{where}: torch.load without weights_only=True (use safe_torch_load)')
            if owner == 'yaml' and attr in ('unsafe_load', 'full_load', 'load_all', 'unsafe_load_all'):
                offenders.append(f'{where}: yaml.{attr} (use msrn_plugin.utils.options.load_options)')
            if owner == 'yaml' and attr == 'load' and rel != os.path.join('msrn_plugin', 'utils', 'options.py'):
                offenders.append(f'{where}: yaml.load (use load_options / parse_yaml / yaml.safe_load)')
    assert len(files) > 5 and offenders == []


def test_load_network_refuses_non_dicts_and_missing_param_keys(tmp_path):
    from msrn_plugin.archs.msrn_arch import MSRN

    class Holder:
        opt = {}
        get_bare_model = staticmethod(lambda net: net)

    net = MSRN(num_feat=8, num_block=1, upscale=2)
    torch.save(torch.ones(1), tmp_path / 'tensor.pth')
    torch.save({'weights': net.state_dict()}, tmp_path / 'other_key.pth')
    with pytest.raises(CheckpointError, match=r'tensor.pth: holds a Tensor, not a dict of weights'):
        compat._load_network(Holder(), net, str(tmp_path / 'tensor.pth'))
    with pytest.raises(CheckpointError, match=r"other_key.pth: no 'params' entry \(keys: \['weights'\]\); set "
                       'path.param_key_g to one of them'):
        compat._load_network(Holder(), net, str(tmp_path / 'other_key.pth'))
