"""The BasicSR 1.4.2 compatibility layer: each fix replaces an upstream attribute that exists, whole or not at all."""
import basicsr
import importlib.machinery
import inspect
import os
import pytest
import subprocess
import sys
import types
import warnings
from basicsr.models.base_model import BaseModel

from msrn_plugin import compat
from msrn_plugin.compat import basicsr_fixes, fixes, plugin_fixes
from msrn_plugin.utils.options import SafeOrderedLoader

BASICSR_DIR = os.path.dirname(os.path.abspath(basicsr.__file__))
ALL_FIXES = basicsr_fixes.FIXES + plugin_fixes.FIXES
NO_HOOK = dict(os.environ, MSRN_BASICSR_DISABLE_HOOK='1', PYTHONWARNINGS='default')


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=env)


def _torchvision_has_the_old_module() -> bool:
    import torchvision.transforms
    return importlib.machinery.PathFinder.find_spec('functional_tensor', torchvision.transforms.__path__) is not None


@pytest.mark.skipif(_torchvision_has_the_old_module(),
                    reason='this torchvision still has torchvision.transforms.functional_tensor (removed in 0.17), '
                    'so basicsr imports without the alias')
def test_basicsr_import_fails_without_the_alias():
    result = _python('import basicsr', env=NO_HOOK)
    assert result.returncode != 0
    assert "No module named 'torchvision.transforms.functional_tensor'" in result.stderr


def test_basicsr_imports_after_msrn_plugin_through_the_alias():
    result = _python('import sys, msrn_plugin, basicsr; from basicsr.data.degradations import rgb_to_grayscale; '
                     'import torchvision.transforms._functional_tensor as F; '
                     "print(rgb_to_grayscale is F.rgb_to_grayscale, F is sys.modules["
                     "'torchvision.transforms.functional_tensor'], F.__name__)", env=NO_HOOK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True', 'torchvision.transforms._functional_tensor']


def test_every_fix_is_applied():
    status = dict(fixes.STATUS)
    expected_alias = 'not needed: the module exists' if _torchvision_has_the_old_module() else 'applied'
    assert status.pop('torchvision_alias') == expected_alias
    assert status == {fix.name: 'applied' for fix in ALL_FIXES}


@pytest.mark.parametrize('fix', ALL_FIXES, ids=lambda fix: fix.name)
def test_each_fix_replaces_an_upstream_function_with_the_same_signature(fix):
    """Fails if BasicSR loses or renames a target, or the replacement's parameters drift from upstream's."""
    for owner, attr, replacement in fix.patches:
        upstream = fixes.original(owner, attr)
        assert isinstance(upstream, types.FunctionType)
        assert inspect.unwrap(upstream).__code__.co_filename.startswith(BASICSR_DIR), (owner, attr)
        assert getattr(fixes.resolve_owner(owner), attr) is replacement
        assert list(inspect.signature(replacement).parameters) == list(inspect.signature(upstream).parameters)


def test_replacements_are_in_place():
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    assert basicsr.utils.options.ordered_yaml()[0] is SafeOrderedLoader
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        assert module.parse_options is basicsr_fixes.parse_options
    assert basicsr.train.load_resume_state is compat.load_resume_state
    assert BaseModel.save_network is compat._save_network
    assert BaseModel.load_network is compat._load_network
    assert plugin_fixes.startup_check in basicsr_fixes._startup_checks


def test_applying_again_keeps_upstream_as_the_original():
    """A second application must not record a replacement as 'upstream' (parse_options would call itself)."""
    upstream = fixes.original('basicsr.utils.options', 'parse_options')
    del fixes.STATUS['parse_options']
    try:
        compat.apply()
    finally:
        fixes.STATUS['parse_options'] = 'applied'
    assert fixes.original('basicsr.utils.options', 'parse_options') is upstream
    assert upstream.__code__.co_filename == os.path.join(BASICSR_DIR, 'utils', 'options.py')
    assert basicsr_fixes._startup_checks.count(plugin_fixes.startup_check) == 1


@pytest.fixture
def fake_target(monkeypatch):
    module = types.ModuleType('msrn_fake_target')
    module.present = lambda: 'upstream'
    monkeypatch.setitem(sys.modules, 'msrn_fake_target', module)
    yield module
    for name in ('demo_fix', 'demo_needs'):
        fixes.STATUS.pop(name, None)
        fixes._warned.discard(name)


def test_a_fix_with_a_missing_target_is_skipped_whole_with_one_warning(fake_target):
    new = lambda: 'fixed'  # noqa: E731
    fix = fixes.Fix('demo_fix', (('msrn_fake_target', 'present', new), ('msrn_fake_target', 'absent', new)))
    with pytest.warns(fixes.CompatWarning) as record:
        fixes.apply_fixes([fix])
        fixes.apply_fixes([fix])  # warned once
    assert [str(w.message) for w in record] == [
        "msrn_plugin skipped the BasicSR fix 'demo_fix': msrn_fake_target.absent does not exist. BasicSR keeps its "
        'own behaviour there (docs/basicsr_fixes.md).']
    assert fake_target.present() == 'upstream'  # not half-patched
    assert fixes.STATUS['demo_fix'] == 'skipped: msrn_fake_target.absent does not exist'
    needs = fixes.Fix('demo_needs', requires=('demo_fix', ), on_apply=lambda: pytest.fail('must not run'))
    with pytest.warns(fixes.CompatWarning, match="'demo_needs': it needs the fix 'demo_fix', which is not applied"):
        fixes.apply_fixes([needs])


def test_another_basicsr_version_is_left_unpatched_with_one_warning():
    """Run in a fresh process: basicsr claims 1.4.3 before the plugin is imported."""
    code = '''
import sys, warnings
import torchvision.transforms._functional_tensor as F
sys.modules['torchvision.transforms.functional_tensor'] = F
import basicsr, basicsr.train
from basicsr.models.base_model import BaseModel
basicsr.__version__ = '1.4.3'
before = (basicsr.train.load_resume_state, basicsr.train.parse_options, BaseModel.save_network)
with warnings.catch_warnings(record=True) as record:
    warnings.simplefilter('always')
    import msrn_plugin
    from msrn_plugin import compat
    compat.apply()
after = (basicsr.train.load_resume_state, basicsr.train.parse_options, BaseModel.save_network)
print(before == after)
print([str(w.message) for w in record if w.category is compat.CompatWarning])
from basicsr.utils.registry import ARCH_REGISTRY
print('MSRN' in ARCH_REGISTRY)
'''
    result = _python(code, env=NO_HOOK)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'True'
    names = ', '.join(repr(f.name) for f in ALL_FIXES)
    assert lines[1] == repr([f'msrn_plugin skipped the BasicSR fixes {names}: basicsr 1.4.3 is installed; the fixes '
                             'were written for 1.4.2. BasicSR keeps its own behaviour there (docs/basicsr_fixes.md).'])
    assert lines[2] == 'True'  # the plugin still registers


@pytest.mark.parametrize('argv, expected', [
    (['-opt', 'a.yml', '--local-rank', '1'], ['-opt', 'a.yml', '--local_rank', '1']),
    (['--local-rank=3', '--auto_resume'], ['--local_rank=3', '--auto_resume']),
    (['--local_rank', '0'], ['--local_rank', '0']),
])
def test_normalize_argv(argv, expected):
    original = list(argv)
    assert compat.normalize_argv(argv) == expected
    assert argv == original  # not changed in place


def test_output_root(tmp_path, monkeypatch):
    import sysconfig
    monkeypatch.chdir(tmp_path)
    assert compat.output_root(sysconfig.get_paths()['purelib']) == str(tmp_path)
    assert compat.output_root('/opt/venv/lib/python3.11/site-packages') == str(tmp_path)
    assert compat.output_root('/src/BasicSR') == '/src/BasicSR'  # a source tree keeps BasicSR's convention


def test_model_to_device_on_cpu_without_dist():
    import torch
    model = BaseModel({'num_gpu': 0, 'is_train': False, 'dist': False})
    net = model.model_to_device(torch.nn.Linear(2, 2))
    assert isinstance(net, torch.nn.Linear)
    assert next(net.parameters()).device.type == 'cpu'


def test_applying_again_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        compat.apply()  # everything applied already: no warning


# ------------------------------------------------------------------------------- checkpoint saves: retry, DDP


@pytest.fixture
def no_sleep(monkeypatch):
    sleeps = []
    monkeypatch.setattr(plugin_fixes.time, 'sleep', sleeps.append)
    return sleeps


def test_a_failed_save_is_retried_as_upstream(tmp_path, monkeypatch, no_sleep, basicsr_log):
    import torch
    real, calls = plugin_fixes.atomic_torch_save, []

    def flaky(obj, path):
        calls.append(path)
        if len(calls) < 3:
            raise OSError(28, 'No space left on device')
        real(obj, path)

    monkeypatch.setattr(plugin_fixes, 'atomic_torch_save', flaky)
    path = str(tmp_path / 'net_g_2.pth')
    plugin_fixes.save_on_rank0(lambda: {'params': {'w': torch.ones(2)}}, path)
    assert calls == [path] * 3 and no_sleep == [1.0, 1.0]
    assert basicsr_log == [f'Save model error: OSError: [Errno 28] No space left on device, remaining retry times: {n}'
                           for n in (2, 1)]
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.ones(2))


def test_a_save_that_keeps_failing_raises_a_clear_error(tmp_path, monkeypatch, no_sleep):
    def broken(obj, path):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(plugin_fixes, 'atomic_torch_save', broken)
    path = str(tmp_path / '4.state')
    with pytest.raises(plugin_fixes.CheckpointError) as err:
        plugin_fixes.save_on_rank0(lambda: {'iter': 4}, path)
    assert str(err.value) == (f'Cannot save {path} after 3 attempts (OSError: [Errno 28] No space left on device). '
                              'The earlier checkpoints are intact: free disk space or fix the folder, then restart '
                              'with --auto_resume.')
    assert os.listdir(tmp_path) == [] and len(no_sleep) == 2


def test_other_ranks_raise_rank0s_save_error_instead_of_waiting(monkeypatch):
    """Rank 1 neither builds nor writes; it learns rank 0's outcome from the broadcast and raises the same error."""
    import torch.distributed as dist
    monkeypatch.setattr(plugin_fixes, '_world', lambda: (1, 2))
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'broadcast_object_list', lambda objs, src: objs.__setitem__(0, 'OSError: disk full'))
    with pytest.raises(plugin_fixes.CheckpointError, match=r'^Cannot save /x/net_g_2\.pth after 3 attempts '
                                                           r'\(OSError: disk full\)'):
        plugin_fixes.save_on_rank0(lambda: pytest.fail('only rank 0 builds the checkpoint'), '/x/net_g_2.pth')
    monkeypatch.setattr(dist, 'broadcast_object_list', lambda objs, src: None)  # rank 0 saved: no error
    plugin_fixes.save_on_rank0(lambda: pytest.fail('only rank 0 builds the checkpoint'), '/x/net_g_2.pth')
