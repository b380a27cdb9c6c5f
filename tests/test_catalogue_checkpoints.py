"""Catalogue of checkpoint failures: a hard kill mid-training, unreadable newest states, pickled code.

A real training process is killed with SIGKILL and resumed with ``--auto_resume``; unreadable newest states or
network checkpoints make resuming fall back to the previous complete state, with a warning naming the file.
"""
import logging
import os
import pytest
import re
import shutil
import signal
import subprocess
import sys
import time
import torch
from catalogue_helpers import REPO, make_pairs, train_options, write_options

from msrn_plugin.utils.checkpoint import CheckpointError, safe_torch_load
from msrn_plugin.utils.pipeline import run_pipeline

NAME = 'catalogue_resume'


class _Capture(logging.Handler):
    """Collects the messages of BasicSR's 'basicsr' logger (which does not propagate to the root logger)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger('basicsr').addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger('basicsr').removeHandler(self)

    def text(self):
        return '\n'.join(self.messages)


def _train(yml, root, *extra):
    with _Capture() as log:
        run_pipeline('train', ['-opt', yml] + list(extra), root_path=str(root))
    return log.text()


def _final_files(exp):
    return [os.path.join(exp, sub, name) for sub in ('models', 'training_states')
            for name in os.listdir(os.path.join(exp, sub)) if not name.startswith('.')]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """An experiment trained in-process for 4 iterations, saving at 2 and 4 (states 2.state, 4.state)."""
    root = tmp_path_factory.mktemp('trained')
    pairs = make_pairs(str(root / 'data'), scale=2, size=48, count=2)
    yml = write_options(str(root / 'train.yml'), train_options(pairs['gt'], pairs['lq'], name=NAME, total_iter=4,
                                                               save_freq=2))
    _train(yml, root / 'run')
    return {'yml': yml, 'exp': str(root / 'run' / 'experiments' / NAME)}


def _copy_run(trained, tmp_path):
    root = tmp_path / 'run'
    shutil.copytree(os.path.dirname(trained['exp']), root / 'experiments')
    return root, str(root / 'experiments' / NAME)


def test_kill_9_mid_training_then_auto_resume(tmp_path):
    pairs = make_pairs(str(tmp_path / 'data'), scale=2, size=48, count=2)
    yml = write_options(str(tmp_path / 'train.yml'), train_options(pairs['gt'], pairs['lq'], name=NAME,
                                                                   total_iter=100000, save_freq=3))
    states = tmp_path / 'experiments' / NAME / 'training_states'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, 'msrn_plugin', 'train.py'), '-opt', yml],
                            cwd=str(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if states.is_dir() and len([n for n in os.listdir(states) if n.endswith('.state')]) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, 'training ended before it could be killed'
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    exp = str(tmp_path / 'experiments' / NAME)
    for path in _final_files(exp):  # nothing truncated under a final name, whatever the moment of the kill
        safe_torch_load(path)
    last = max(int(n.split('.')[0]) for n in os.listdir(states) if n.endswith('.state'))

    log = _train(yml, tmp_path, '--auto_resume', '--force_yml', f'train:total_iter={last + 2}')
    assert re.search(rf'^Resuming training from epoch: \d+, iter: {last}\.$', log, re.M)
    assert safe_torch_load(os.path.join(exp, 'models', 'net_g_latest.pth'))['params']
    assert sorted(os.listdir(tmp_path / 'experiments')) == [NAME]  # not archived, not started over
    assert not [n for n in os.listdir(os.path.join(exp, 'models')) if n.endswith('.tmp')]


@pytest.mark.parametrize('damage', ['truncated_state', 'empty_state', 'truncated_network', 'pickled_code_network'])
def test_unreadable_newest_state_falls_back_to_the_previous_one(trained, tmp_path, damage):
    root, exp = _copy_run(trained, tmp_path)
    state, net = os.path.join(exp, 'training_states', '4.state'), os.path.join(exp, 'models', 'net_g_4.pth')
    if damage == 'truncated_state':
        data = open(state, 'rb').read()
        open(state, 'wb').write(data[:len(data) // 2])
    elif damage == 'empty_state':
        open(state, 'wb').close()
    elif damage == 'truncated_network':
        data = open(net, 'rb').read()
        open(net, 'wb').write(data[:len(data) // 3])
    else:
        torch.save({'params': {}, 'code': _RunsCode(str(tmp_path / 'marker'))}, net)
    stale = os.path.join(exp, 'models', '.net_g_6.pth.k1ll3d.tmp')  # what a kill during a save leaves
    open(stale, 'wb').write(b'partial')

    log = _train(trained['yml'], root, '--auto_resume', '--force_yml', 'train:total_iter=6')
    bad = state if damage.endswith('state') else net
    assert f'Cannot resume from iteration 4: {bad}: ' in log
    assert 'Falling back to the previous state.' in log
    assert re.search(r'^Resuming training from epoch: \d+, iter: 2\.$', log, re.M)
    assert not os.path.exists(stale) and not os.path.exists(tmp_path / 'marker')
    assert safe_torch_load(state)['iter'] == 4  # re-saved, complete, at iteration 4
    assert sorted(os.listdir(root / 'experiments')) == [NAME]


def test_no_readable_state_stops_with_a_clear_error_and_keeps_the_experiment(trained, tmp_path):
    root, exp = _copy_run(trained, tmp_path)
    for it in (2, 4):
        open(os.path.join(exp, 'training_states', f'{it}.state'), 'wb').write(b'garbage')
    before = sorted(os.listdir(exp))
    with pytest.raises(CheckpointError) as err:
        _train(trained['yml'], root, '--auto_resume')
    states = os.path.join(exp, 'training_states')
    assert str(err.value).startswith(f'--auto_resume found training states in {states} but none is usable:\n  '
                                     f'{states}/4.state: cannot read checkpoint')
    assert str(err.value).endswith('Remove that folder to start over.')
    assert sorted(os.listdir(root / 'experiments')) == [NAME] and sorted(os.listdir(exp)) == before


def test_explicit_resume_state_that_is_unreadable(trained, tmp_path):
    root, exp = _copy_run(trained, tmp_path)
    state = os.path.join(exp, 'training_states', '4.state')
    open(state, 'wb').close()
    with pytest.raises(CheckpointError, match=f'^{state}: checkpoint is empty \\(0 bytes\\)'):
        _train(trained['yml'], root, '--force_yml', f'path:resume_state={state}')


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')
