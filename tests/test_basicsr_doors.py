"""BasicSR's own entry points with the plugin installed: the start-up hook, outputs' location, resume on CPU.

``python basicsr/train.py`` and ``basicsr/test.py`` run inside a BasicSR 1.4.2 source tree extracted in ``tmp_path``
from the sdist that ``pip download`` fetches (the tests skip, saying so, when it cannot); ``python -m basicsr.train``
and ``-m basicsr.test`` run from a scratch folder. Tiny MSRN (num_feat 8, num_block 1), 2 to 4 iterations.
"""
import dist_helpers as h
import glob
import os
import pytest
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import torch
import zipfile
from pathlib import Path

import msrn_basicsr_hook

TIMEOUT = 300
NAME = 'tiny_door'
SITE = Path(sysconfig.get_paths()['purelib'])


def _env(**extra: str) -> dict:
    env = dict(h.worker_env(), PYTHONWARNINGS='ignore')
    env.pop(msrn_basicsr_hook.DISABLE_ENV, None)
    env.pop('PYTHONPATH', None)
    env.update(extra)
    return env


def _run(args, cwd, expect: int = 0, **env: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=str(cwd), env=_env(**env), capture_output=True, text=True,
                            timeout=TIMEOUT)
    output = result.stdout + result.stderr
    assert result.returncode == expect, f'rc {result.returncode} (expected {expect}):\n{output[-6000:]}'
    return output


@pytest.fixture(scope='module')
def basicsr_tree(tmp_path_factory) -> Path:
    """BasicSR 1.4.2's source tree, as ``pip download`` and ``tar xf`` give it."""
    tmp = tmp_path_factory.mktemp('sdist')
    result = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
                             'basicsr==1.4.2', '-d', str(tmp), '-q', '--disable-pip-version-check'],
                            capture_output=True, text=True, timeout=TIMEOUT)
    archives = glob.glob(str(tmp / 'basicsr-1.4.2.tar.gz'))
    if result.returncode != 0 or not archives:
        pytest.skip(f'pip could not download the basicsr 1.4.2 sdist (no access to PyPI?): {result.stderr[-500:]}')
    with tarfile.open(archives[0]) as tar:
        tar.extractall(tmp, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    return tmp / 'basicsr-1.4.2'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return h.make_paired_folders(str(tmp_path_factory.mktemp('data')))


def _train_yml(data, folder: Path, total_iter: int = 2) -> str:
    opt = h.train_options(data, NAME, total_iter=total_iter, use_tb_logger=True)
    opt['dist_params'] = {'backend': 'nccl', 'port': 29500}  # stock BasicSR boilerplate
    return h.write_yaml(opt, str(folder / 'train.yml'))


def _test_yml(data, folder: Path, weights: Path) -> str:
    opt = {
        'name': 'tiny_door_test', 'model_type': 'SRModel', 'scale': h.SCALE, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'test_1': {'name': 'tiny_test', 'type': 'PairedImageDataset', 'dataroot_gt': data['val_gt'],
                                'dataroot_lq': data['val_lq'], 'io_backend': {'type': 'disk'}}},
        'network_g': dict(h.TINY_NET),
        'path': {'pretrain_network_g': str(weights), 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {'save_img': True, 'suffix': None,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': h.SCALE, 'test_y_channel': True}}},
    }
    return h.write_yaml(opt, str(folder / 'test.yml'))


def _files(folder: Path):
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def _assert_nothing_in_site_packages():
    assert not [d for d in ('experiments', 'tb_logger', 'results') if (SITE / d).exists()]


@pytest.fixture(scope='module')
def tree_run(basicsr_tree, data, tmp_path_factory):
    """``python basicsr/train.py`` (2 iterations, BasicSR's PYTHONPATH=./ convention), then ``--auto_resume`` to 4."""
    opts = tmp_path_factory.mktemp('opts')
    yml = _train_yml(data, opts)
    first = _run(['basicsr/train.py', '-opt', yml], basicsr_tree, PYTHONPATH='./')
    resumed = _run(['basicsr/train.py', '-opt', yml, '--auto_resume', '--force_yml', 'train:total_iter=4'],
                   basicsr_tree)
    return basicsr_tree, first, resumed


def test_stock_train_script_trains_msrn_in_the_source_tree(tree_run):
    tree, first, _ = tree_run
    exp = tree / 'experiments' / NAME
    assert re.search(r'Network: MSRN, with parameters: [\d,]+', open(glob.glob(str(exp / 'train_*.log'))[0]).read())
    assert _files(tree / 'tb_logger') == [NAME]
    assert 'Validation tiny_val' in first and '# psnr:' in first
    _assert_nothing_in_site_packages()


def test_stock_train_script_resumes_on_cpu(tree_run):
    """Upstream's load_resume_state (the script's own copy) calls torch.cuda.current_device() and dies on a CPU."""
    tree, _, resumed = tree_run
    assert 'Resuming training from epoch: ' in resumed and re.search(r'iter: 2\.', resumed)
    assert [int(i) for i in re.findall(r'iter:\s+(\d+), lr', resumed)] == [3, 4]
    exp = tree / 'experiments' / NAME
    assert _files(exp / 'training_states') == ['2.state', '4.state']
    assert _files(exp / 'models') == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth']
    assert torch.load(exp / 'training_states' / '4.state', weights_only=True)['iter'] == 4
    assert not glob.glob(str(tree / 'experiments' / f'{NAME}_archived_*'))  # resumed, not started over


def test_stock_test_script_writes_results_in_the_source_tree(tree_run, data, tmp_path):
    tree = tree_run[0]
    yml = _test_yml(data, tmp_path, tree / 'experiments' / NAME / 'models' / 'net_g_latest.pth')
    out = _run(['basicsr/test.py', '-opt', yml], tree)
    assert re.search(r'# psnr: [\d.]+', out)
    images = _files(tree / 'results' / 'tiny_door_test' / 'visualization' / 'tiny_test')
    assert len(images) == 1 and images[0].endswith('.png')
    _assert_nothing_in_site_packages()


def test_module_doors_write_under_the_current_folder(tree_run, data, tmp_path):
    """``python -m basicsr.train`` / ``-m basicsr.test`` from any folder: outputs there, never in site-packages."""
    work = tmp_path / 'work'
    work.mkdir()
    yml = _train_yml(data, tmp_path)
    _run(['-m', 'basicsr.train', '-opt', yml], work)
    assert _files(work / 'experiments' / NAME / 'models') == ['net_g_2.pth', 'net_g_latest.pth']
    assert _files(work / 'tb_logger') == [NAME]
    out = _run(['-m', 'basicsr.train', '-opt', yml, '--auto_resume', '--force_yml', 'train:total_iter=4'], work)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', out)
    yml_test = _test_yml(data, tmp_path, work / 'experiments' / NAME / 'models' / 'net_g_latest.pth')
    _run(['-m', 'basicsr.test', '-opt', yml_test], work)
    assert len(_files(work / 'results' / 'tiny_door_test' / 'visualization' / 'tiny_test')) == 1
    assert sorted(os.listdir(work)) == ['experiments', 'results', 'tb_logger']
    _assert_nothing_in_site_packages()


def test_stock_train_script_under_torchrun_with_a_stock_nccl_option_file(basicsr_tree, data, tmp_path):
    """2 CPU processes, ``dist_params: {backend: nccl}``: gloo, said once; rank 0 alone writes, in the tree."""
    opt = h.train_options(data, 'tiny_door_ddp', total_iter=2)
    opt['dist_params'] = {'backend': 'nccl', 'port': 29500}
    yml = h.write_yaml(opt, str(tmp_path / 'ddp.yml'))
    cmd = h.torchrun(['basicsr/train.py', '-opt', yml, '--launcher', 'pytorch'], nproc=2, port=h.free_port())
    output = h.finish([h.start(cmd, cwd=str(basicsr_tree), env=_env())], TIMEOUT)[0]
    assert output.count("dist_params.backend is 'nccl' but no CUDA GPU is visible: using gloo.") == 1
    exp = basicsr_tree / 'experiments' / 'tiny_door_ddp'
    assert _files(exp / 'models') == ['net_g_2.pth', 'net_g_latest.pth']
    with open(glob.glob(str(exp / 'train_*.log'))[0]) as f:
        assert 'World size (gpu number): 2' in f.read()


@pytest.mark.parametrize('door', ['stock script', 'module', 'plugin script'])
def test_every_door_runs_the_start_up_checks(door, basicsr_tree, data, tmp_path):
    """A typo in network_g is refused before anything is written, with the plugin's message and exit status 2."""
    opt = h.train_options(data, 'tiny_bad')
    opt['network_g']['num_fet'] = opt['network_g'].pop('num_feat')
    yml = h.write_yaml(opt, str(tmp_path / 'bad.yml'))
    work = tmp_path / 'work'
    work.mkdir()
    args, cwd = {'stock script': (['basicsr/train.py'], basicsr_tree), 'module': (['-m', 'basicsr.train'], work),
                 'plugin script': ([os.path.join(h.REPO_ROOT, 'msrn_plugin', 'train.py')], work)}[door]
    before = _files(cwd)
    out = _run([*args, '-opt', yml], cwd, expect=2)
    assert 'train.py: error: ' in out and 'found before starting; nothing was run or written' in out
    assert "network_g.num_fet" in out and 'Traceback' not in out
    assert _files(cwd) == before
    assert not (Path(cwd) / 'experiments' / 'tiny_bad').exists()


def test_stock_script_refuses_an_unknown_backend_before_starting(basicsr_tree, data, tmp_path):
    opt = h.train_options(data, 'tiny_glo')
    opt['dist_params'] = {'backend': 'glo'}
    yml = h.write_yaml(opt, str(tmp_path / 'glo.yml'))
    out = _run(['basicsr/train.py', '-opt', yml, '--launcher', 'pytorch'], basicsr_tree, expect=2)
    assert f"train.py: error: {yml}: dist_params.backend: unknown backend 'glo'; use gloo (CPU or GPU)" in out
    assert 'Traceback' not in out and not (basicsr_tree / 'experiments' / 'tiny_glo').exists()


def test_bare_interpreter_imports_nothing_heavy():
    code = ('import sys; print(sorted(m for m in ("torch", "basicsr", "msrn_plugin", "numpy", "torchvision") '
            'if m in sys.modules)); print([type(f).__name__ for f in sys.meta_path].count("BasicSRImportHook"))')
    out = _run(['-c', code], h.REPO_ROOT)
    assert out.split() == ['[]', '1']


def test_importing_basicsr_registers_msrn(tmp_path):
    code = ('import basicsr, sys; from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY; '
            "print('MSRN' in ARCH_REGISTRY, 'CheckedPairedImageDataset' in DATASET_REGISTRY, "
            "'MSRNModel' in MODEL_REGISTRY, type(basicsr.__loader__).__name__)")
    assert _run(['-c', code], tmp_path).split() == ['True', 'True', 'True', 'SourceFileLoader']


def test_opt_out(tmp_path):
    """Without the hook nothing of the plugin runs: basicsr is upstream's (registries without MSRN)."""
    code = ('import sys; print(any(type(f).__name__ == "BasicSRImportHook" for f in sys.meta_path)); '
            'import torchvision.transforms._functional_tensor as F; '
            'sys.modules["torchvision.transforms.functional_tensor"] = F; '  # what basicsr needs on torchvision>=0.17
            'import basicsr; from basicsr.utils.registry import ARCH_REGISTRY; '
            'print("MSRN" in ARCH_REGISTRY, "msrn_plugin" in sys.modules)')
    out = _run(['-c', code], tmp_path, **{msrn_basicsr_hook.DISABLE_ENV: '1'})
    assert out.split() == ['False', 'False', 'False']
    # msrn_plugin still works when imported explicitly
    out = _run(['-c', 'import msrn_plugin, basicsr; print(basicsr.__version__)'], tmp_path,
               **{msrn_basicsr_hook.DISABLE_ENV: '1'})
    assert out.split()[-1] == '1.4.2'


def test_installed_environment_has_the_hook():
    pth = (SITE / 'msrn_basicsr_hook.pth').read_text()
    assert pth.strip() == 'import msrn_basicsr_hook; msrn_basicsr_hook.install()'


def test_wheel_ships_the_hook(tmp_path):
    """``pip install .`` (a wheel) puts the .pth and the hook module at the top of site-packages."""
    src = tmp_path / 'src'  # a copy: building in place would leave build/ and *.egg-info in the checkout
    shutil.copytree(os.path.join(h.REPO_ROOT, 'msrn_plugin'), src / 'msrn_plugin',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('setup.py', 'setup.cfg', 'pyproject.toml', 'README.md', 'msrn_basicsr_hook.py',
                 'msrn_basicsr_hook.pth'):
        shutil.copy(os.path.join(h.REPO_ROOT, name), src / name)
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                             '--disable-pip-version-check', '-w', str(tmp_path / 'dist'), str(src)],
                            capture_output=True, text=True, timeout=TIMEOUT, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = glob.glob(str(tmp_path / 'dist' / 'msrn_basicsr-*.whl'))[0]
    names = zipfile.ZipFile(wheel).namelist()
    assert {'msrn_basicsr_hook.pth', 'msrn_basicsr_hook.py', 'msrn_plugin/compat/basicsr_fixes.py'} <= set(names)
    record = next(n for n in names if n.endswith('.dist-info/RECORD'))
    assert 'msrn_basicsr_hook.pth,' in zipfile.ZipFile(wheel).read(record).decode()  # pip uninstall removes it
