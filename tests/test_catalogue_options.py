"""Catalogue of bad option files and bad data: each is refused at start-up with one clear message, nothing written.

Every case goes through ``run_pipeline`` (the code behind ``msrn_plugin/train.py`` and ``test.py``) with a fresh
``root_path`` and asserts the message, that the error is raised before BasicSR starts (no ``experiments/`` or
``results/`` folder appears), and for the command lines the exit status.
"""
import glob
import os
import pytest
import shutil
import torch
from catalogue_helpers import (REPO, edit, eval_options, files_under, make_lmdb, make_pairs, run_cli, train_options,
                               write_options)

from msrn_plugin import train as train_cli
from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.utils.options import OptionFileError, load_options
from msrn_plugin.utils.pipeline import run_pipeline
from msrn_plugin.utils.validation import OptionValidationError, checkpoint_upscale, validate_options

EVIL = """\
name: harmless_looking
model_type: SRModel
scale: 2
num_gpu: 0
datasets: {{}}
network_g: !!python/object/apply:os.system ["touch {marker}"]
path: {{}}
"""


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """x2 LQ/GT folders (2 pairs of 48x48 GT), the same as LMDBs, and checkpoints of several kinds."""
    root = tmp_path_factory.mktemp('catalogue_data')
    pairs = make_pairs(str(root / 'x2'), scale=2, size=48, count=2)
    out = {'root': root, 'gt': pairs['gt'], 'lq': pairs['lq'],
           'gt_lmdb': make_lmdb(pairs['gt'], str(root / 'gt.lmdb')),
           'lq_lmdb': make_lmdb(pairs['lq'], str(root / 'lq.lmdb'))}
    for scale in (2, 3):
        out[f'ckpt_x{scale}'] = str(root / f'msrn_x{scale}.pth')
        torch.save({'params': MSRN(num_feat=8, num_block=1, upscale=scale).state_dict()}, out[f'ckpt_x{scale}'])
    from basicsr.archs.edsr_arch import EDSR
    out['ckpt_edsr'] = str(root / 'edsr_x2.pth')
    torch.save({'params': EDSR(3, 3, num_feat=8, num_block=1, upscale=2).state_dict()}, out['ckpt_edsr'])
    out['ckpt_bare'] = str(root / 'bare_x2.pth')
    torch.save(MSRN(num_feat=8, num_block=1, upscale=2).state_dict(), out['ckpt_bare'])
    return out


def _refused(tmp_path, kind, opt, error=OptionValidationError, name='case'):
    """Run the pipeline on ``opt``; return the error message after checking nothing was created under root."""
    yml = write_options(str(tmp_path / f'{name}.yml'), opt)
    root = tmp_path / f'root_{name}'
    root.mkdir()
    with pytest.raises(error) as err:
        run_pipeline(kind, ['-opt', yml], root_path=str(root))
    assert files_under(str(root)) == []
    return str(err.value)


def _copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


# ---------------------------------------------------------------- option files run no code


@pytest.mark.parametrize('script', ['train.py', 'test.py'])
def test_malicious_option_file_creates_nothing_and_runs_nothing(tmp_path, script):
    marker = tmp_path / 'marker'
    (tmp_path / 'evil.yml').write_text(EVIL.format(marker=marker))
    proc = run_cli(script, ['-opt', 'evil.yml'], cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        f'msrn_plugin/{script}: error: evil.yml:6: refused to load this option file: !!python/object/apply:os.system '
        '(Python tags construct objects and can run code). Option files may only hold plain data (mappings, lists, '
        'strings, numbers, !!float, ~); remove the tag.')
    assert 'Traceback' not in proc.stderr
    assert not marker.exists() and files_under(str(tmp_path)) == ['evil.yml']


def test_force_yml_key_injection_is_refused_before_basicsr_execs_it(tmp_path, data):
    marker = tmp_path / 'marker'
    yml = write_options(str(tmp_path / 'ok.yml'), train_options(data['gt'], data['lq']))
    evil = f'name"];__import__("os").system("touch {marker}");opt["name=x'
    with pytest.raises(OptionFileError, match='refused key'):
        run_pipeline('train', ['-opt', yml, '--force_yml', evil], root_path=str(tmp_path / 'root'))
    assert not marker.exists() and not (tmp_path / 'root').exists()


# ---------------------------------------------------------------- options


def test_scale_and_network_upscale_disagree(tmp_path, data):
    message = _refused(tmp_path, 'train', edit(train_options(data['gt'], data['lq']), network_g__upscale=3))
    assert ('scale is 2 but network_g.upscale is 3; set network_g.upscale: 2 (or scale: 3) so that the data and the '
            'network agree.') in message


def test_network_upscale_left_at_the_architecture_default(tmp_path, data):
    opt = train_options(data['gt'], data['lq'])
    del opt['network_g']['upscale']
    message = _refused(tmp_path, 'train', opt)
    assert 'scale is 2 but network_g.upscale is 4 (not set: the architecture default); set network_g.upscale: 2' in \
        message


def test_unknown_network_key(tmp_path, data):
    opt = train_options(data['gt'], data['lq'])
    opt['network_g']['num_blocks'] = opt['network_g'].pop('num_block')
    message = _refused(tmp_path, 'train', opt)
    assert ('network_g.num_blocks: MSRN has no such argument (did you mean num_block?); its arguments are num_in_ch, '
            'num_out_ch, num_feat, num_block, upscale, img_range, rgb_mean, global_residual.') in message


def test_network_value_the_constructor_rejects(tmp_path, data):
    opt = edit(train_options(data['gt'], data['lq']), scale=5, network_g__upscale=5)
    message = _refused(tmp_path, 'train', opt)
    assert 'network_g: MSRN cannot be built from these arguments: MSRN: upscale must be one of (1, 2, 3, 4, 8), got 5' \
        in message


def test_unregistered_types_suggest_the_right_name(tmp_path, data):
    opt = edit(train_options(data['gt'], data['lq']), model_type='SRmodel', datasets__train__type='PairedImageDataSet')
    message = _refused(tmp_path, 'train', opt)
    assert "model_type: 'SRmodel' is not registered (did you mean SRModel?)" in message
    assert "datasets.train.type: 'PairedImageDataSet' is not registered (did you mean PairedImageDataset?)" in message


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_num_gpu_without_a_gpu(tmp_path, data):
    message = _refused(tmp_path, 'train', edit(train_options(data['gt'], data['lq']), num_gpu=1))
    assert 'num_gpu: 1 but 0 CUDA GPU(s) are visible; set num_gpu: auto (or 0 for the CPU).' in message


def test_every_problem_is_listed_at_once(tmp_path, data):
    opt = edit(train_options(data['gt'], str(tmp_path / 'nowhere')), network_g__upscale=3)
    opt['network_g']['num_blocks'] = 1
    message = _refused(tmp_path, 'train', opt)
    assert message.startswith(f'{tmp_path / "case.yml"}: 3 problems found before starting; nothing was run or '
                              'written:\n  - ')
    assert 'network_g.num_blocks' in message and 'scale is 2 but' in message and 'dataroot_lq' in message


# ---------------------------------------------------------------- dataroots and LMDBs


def test_missing_dataroot(tmp_path, data):
    missing = str(tmp_path / 'no_such_folder')
    message = _refused(tmp_path, 'train', train_options(missing, data['lq']))
    assert f'datasets.train.dataroot_gt: {missing} does not exist (relative paths start at {os.getcwd()}); fix the ' \
        'path or prepare the data first' in message


def test_unreadable_dataroot_is_a_file(tmp_path, data):
    a_file = os.path.join(data['gt'], 'img000.png')
    message = _refused(tmp_path, 'train', train_options(data['gt'], a_file))
    assert f'datasets.train.dataroot_lq: {a_file} is a file, not a folder; point it to the image folder' in message


def test_non_image_file_in_a_dataroot(tmp_path, data):
    gt = _copy(data['gt'], tmp_path / 'GT')
    (tmp_path / 'GT' / 'notes.txt').write_text('not an image')
    message = _refused(tmp_path, 'train', train_options(gt, data['lq']))
    assert f'datasets.train.dataroot_gt: {gt} holds files that are not images (notes.txt); BasicSR reads every file ' \
        'in a dataroot, so move them out.' in message


def test_folders_that_do_not_pair_up(tmp_path, data):
    lq = _copy(data['lq'], tmp_path / 'LQ')
    os.rename(os.path.join(lq, 'img001.png'), os.path.join(lq, 'other.png'))
    message = _refused(tmp_path, 'train', train_options(data['gt'], lq))
    assert 'datasets.train.dataroot_lq / dataroot_gt: the folders do not pair up: img001.png is not in lq_paths.' in \
        message


def test_lmdb_without_meta_info(tmp_path, data):
    gt = _copy(data['gt_lmdb'], tmp_path / 'gt.lmdb')
    os.remove(os.path.join(gt, 'meta_info.txt'))
    message = _refused(tmp_path, 'train', train_options(gt, data['lq_lmdb'], backend='lmdb'))
    assert f'datasets.train.dataroot_gt: {gt}: no meta_info.txt, so this is not a complete BasicSR LMDB' in message
    assert 'delete it and re-create it with scripts/prepare_div2k.py.' in message


def test_lmdb_keys_that_do_not_match_meta_info(tmp_path, data):
    lq = _copy(data['lq_lmdb'], tmp_path / 'lq.lmdb')
    with open(os.path.join(lq, 'meta_info.txt'), 'a') as f:
        f.write('img999.png (24,24,3) 1\n')
    message = _refused(tmp_path, 'train', train_options(data['gt_lmdb'], lq, backend='lmdb'))
    assert f'datasets.train.dataroot_lq: {lq}: written incompletely or modified: 1 key(s) listed in meta_info.txt ' \
        'are not in the database: img999; delete it and re-create it with scripts/prepare_div2k.py.' in message


def test_lmdb_backend_on_an_image_folder(tmp_path, data):
    message = _refused(tmp_path, 'train', train_options(data['gt'], data['lq'], backend='lmdb'))
    assert f'datasets.train.dataroot_gt: {data["gt"]} must be a folder ending in .lmdb for io_backend lmdb' in message


# ---------------------------------------------------------------- sizes


def test_lq_gt_sizes_that_do_not_match_the_scale(tmp_path, data):
    pairs = make_pairs(str(tmp_path / 'x3'), scale=3, size=48, count=2)  # LQ 16x16, but scale 2
    message = _refused(tmp_path, 'train', train_options(pairs['gt'], pairs['lq'], scale=2))
    assert ('datasets.train: LQ/GT sizes do not match scale 2 in 2 of 2 sampled pairs (img000.png: GT 48x48, LQ '
            '16x16, img001.png: GT 48x48, LQ 16x16); the GT must be 2x the LQ') in message


def test_lmdb_sizes_from_meta_info_that_do_not_match_the_scale(tmp_path, data):
    opt = train_options(data['gt_lmdb'], data['lq_lmdb'], backend='lmdb', scale=3, gt_size=30)
    opt['network_g']['upscale'] = 3
    message = _refused(tmp_path, 'train', opt)
    assert 'datasets.train: LQ/GT sizes do not match scale 3 in 2 of 2 pairs (' in message


def test_gt_size_not_divisible_by_the_scale(tmp_path, data):
    message = _refused(tmp_path, 'train', train_options(data['gt'], data['lq'], gt_size=31))
    assert 'datasets.train.gt_size: 31 is not divisible by scale 2 (LQ patches would be 15.5 pixels); use 30 or 32.' \
        in message


def test_gt_size_larger_than_the_sub_images(tmp_path, data):
    message = _refused(tmp_path, 'train', train_options(data['gt'], data['lq'], gt_size=64))
    assert ('datasets.train.gt_size: 64 is larger than the smallest sampled GT image (img000.png: 48x48); use '
            'gt_size <= 48 or make larger sub-images') in message
    message = _refused(tmp_path, 'train', train_options(data['gt_lmdb'], data['lq_lmdb'], backend='lmdb', gt_size=64),
                       name='lmdb')
    assert 'datasets.train.gt_size: 64 is larger than the smallest GT image (img000: 48x48)' in message


# ---------------------------------------------------------------- pretrained checkpoints


def test_pretrained_checkpoint_for_another_scale(tmp_path, data):
    message = _refused(tmp_path, 'test', eval_options(data['gt'], data['lq'], data['ckpt_x3']))
    assert f'path.pretrain_network_g: {data["ckpt_x3"]} is a x3 checkpoint but network_g.upscale is 2 (' in message
    assert 'use a x2 checkpoint, or set scale and network_g.upscale to 3.' in message


def test_pretrained_checkpoint_for_another_architecture(tmp_path, data):
    message = _refused(tmp_path, 'test', eval_options(data['gt'], data['lq'], data['ckpt_edsr']))
    assert f'path.pretrain_network_g: {data["ckpt_edsr"]} holds weights of another architecture, not MSRN (' in message


def test_pretrained_checkpoint_with_pickled_code(tmp_path, data):
    marker = tmp_path / 'marker'

    class RunsCode:

        def __reduce__(self):
            return os.system, (f'touch {marker}', )

    evil = str(tmp_path / 'evil.pth')
    torch.save({'params': RunsCode()}, evil)
    message = _refused(tmp_path, 'test', eval_options(data['gt'], data['lq'], evil))
    assert f'path.pretrain_network_g: {evil}: refused to load: the file holds pickled Python objects, not only ' \
        'weights (it would import and call ' in message
    assert not marker.exists()


def test_pretrained_checkpoint_missing_or_bare(tmp_path, data):
    missing = str(tmp_path / 'net_g_latest.pth')
    message = _refused(tmp_path, 'test', eval_options(data['gt'], data['lq'], missing))
    assert f'path.pretrain_network_g: {missing}: checkpoint not found; check the path.' in message
    message = _refused(tmp_path, 'test', eval_options(data['gt'], data['lq'], data['ckpt_bare']), name='bare')
    assert "has no 'params' entry; it looks like a bare state dict: set path.param_key_g: ~" in message


# ---------------------------------------------------------------- what passes, and the command-line exit status


def test_good_options_pass_for_folders_lmdbs_and_tests(data):
    validate_options(train_options(data['gt'], data['lq']))
    validate_options(train_options(data['gt_lmdb'], data['lq_lmdb'], backend='lmdb', gt_size=48))
    validate_options(eval_options(data['gt'], data['lq'], data['ckpt_x2']), is_train=False)
    opt = eval_options(data['gt'], data['lq'], data['ckpt_bare'])
    opt['path']['param_key_g'] = None
    validate_options(opt, is_train=False)
    assert checkpoint_upscale(torch.load(data['ckpt_x3'], weights_only=True)['params']) == 3


def test_shipped_option_files_fail_only_on_data_and_weights_not_yet_made():
    """The repository's own option files are consistent: the only problems are the datasets/weights not prepared."""
    files = sorted(glob.glob(os.path.join(REPO, 'options', '*.yml')))
    assert files
    for path in files:
        is_train = os.path.basename(path).startswith('train')
        try:
            validate_options(load_options(path), is_train=is_train, source=path)
        except OptionValidationError as err:
            unexpected = [p for p in err.problems if 'does not exist' not in p and 'not found' not in p]
            assert unexpected == [], path


def test_command_line_exit_status_and_message(tmp_path, data, capsys, monkeypatch):
    yml = write_options(str(tmp_path / 'x.yml'), edit(train_options(data['gt'], data['lq']), network_g__upscale=3))
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(['-opt', yml]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'msrn_plugin/train.py: error: {yml}: 1 problem found before starting; nothing was run or '
                          'written:\n  - scale is 2 but network_g.upscale is 3')
    assert files_under(str(tmp_path)) == ['x.yml']
