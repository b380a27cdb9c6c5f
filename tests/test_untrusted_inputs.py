"""Untrusted inputs (issue 14): nothing written outside its place, no input overwritten, no memory blow-up from a
small file, and every option value checked before BasicSR writes anything."""
import logging
import numpy as np
import os
import pytest
import struct
import sys
import torch
import tracemalloc
import yaml
import zlib
from catalogue_helpers import REPO, edit, eval_options, files_under, make_pairs, train_options, write_options

from msrn_plugin import test as test_cli
from msrn_plugin import train as train_cli
from msrn_plugin.archs.msrn_arch import MSRN
from msrn_plugin.inference import MSRNer
from msrn_plugin.inference.batch import process_folder
from msrn_plugin.prep import PrepError
from msrn_plugin.prep.benchmark import prepare_benchmark
from msrn_plugin.utils.checkpoint import CheckpointError, atomic_torch_save
from msrn_plugin.utils.convert import convert_official_checkpoint
from msrn_plugin.utils.image_io import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageTooLargeError, image_size,
                                        max_pixels_limit, read_image, write_image)
from msrn_plugin.utils.options import (MAX_OPTION_VALUES, OptionFileError, apply_force_yml, load_options,
                                       parse_override_value, parse_yaml)
from msrn_plugin.utils.outputs import find_overwrites
from msrn_plugin.utils.pipeline import run_pipeline
from msrn_plugin.utils.validation import OptionValidationError, validate_options

sys.path.insert(0, os.path.join(REPO, 'scripts'))
import inference_msrn  # noqa: E402
import prepare_benchmark as prepare_benchmark_script  # noqa: E402

MB = 1 << 20


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """x2 LQ/GT folders (2 pairs of 48x48 GT) and a tiny x2 MSRN checkpoint."""
    root = tmp_path_factory.mktemp('untrusted_data')
    pairs = make_pairs(str(root / 'x2'), scale=2, size=48, count=2)
    ckpt = str(root / 'net_x2.pth')
    atomic_torch_save({'params': MSRN(num_feat=8, num_block=1, upscale=2).state_dict()}, ckpt)
    return {'root': root, 'gt': pairs['gt'], 'lq': pairs['lq'], 'ckpt': ckpt}


def _refused(tmp_path, kind, opt, extra=(), error=OptionValidationError, name='case'):
    """Run the pipeline on ``opt``; return the message after checking that nothing was created under the root."""
    yml = write_options(str(tmp_path / f'{name}.yml'), opt)
    root = tmp_path / f'root_{name}'
    root.mkdir()
    with pytest.raises(error) as err:
        run_pipeline(kind, ['-opt', yml, *extra], root_path=str(root))
    assert files_under(str(root)) == []
    return str(err.value)


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header (8-bit RGB) declaring ``width`` x ``height``, with a few zero rows: a few hundred bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)

    rows = zlib.compress(b'\0' * (3 * width + 1) * 4, 9)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)) +
            chunk(b'IDAT', rows) + chunk(b'IEND', b''))


def billion_laughs(levels: int) -> str:
    lines = ['  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    lines += [f'  l{i}: &l{i} [' + ', '.join([f'*l{i - 1}'] * 10) + ']' for i in range(1, levels)]
    return 'name: laughs\nunused:\n' + '\n'.join(lines) + '\n'


# ================================================================ names: nothing outside experiments/ and results/


def test_experiment_name_with_a_path_is_refused_before_anything_is_written(tmp_path, data, capsys, monkeypatch):
    work = tmp_path / 'a' / 'b'
    work.mkdir(parents=True)
    yml = write_options(str(work / 'x.yml'), train_options(data['gt'], data['lq'], name='../../victim'))
    monkeypatch.chdir(work)
    assert train_cli.main(['-opt', yml]) == 2
    err = capsys.readouterr().err
    assert "- name: '../../victim' is not a plain folder name; it becomes a folder under experiments/" in err
    assert 'e.g. name: victim.' in err and 'Traceback' not in err
    assert files_under(str(tmp_path)) == ['a', 'a/b', 'a/b/x.yml']


def test_absolute_name_in_test_does_not_rename_an_existing_folder(tmp_path, data, capsys, monkeypatch):
    victim = tmp_path / 'victim'
    (victim / 'keep').mkdir(parents=True)
    work = tmp_path / 'work'
    work.mkdir()
    yml = write_options(str(work / 't.yml'), eval_options(data['gt'], data['lq'], data['ckpt'], name=str(victim)))
    monkeypatch.chdir(work)
    assert test_cli.main(['-opt', yml]) == 2
    assert f"name: '{victim}' is not a plain folder name; it becomes a folder under results/" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ['victim', 'work'] and os.listdir(victim) == ['keep']
    assert os.listdir(work) == ['t.yml']


def test_force_yml_name_and_dataset_name_and_suffix(tmp_path, data):
    message = _refused(tmp_path, 'train', train_options(data['gt'], data['lq']), ['--force_yml', 'name=../x'])
    assert "name: '../x' is not a plain folder name" in message
    opt = edit(eval_options(data['gt'], data['lq'], data['ckpt']), datasets__test_1__name='../../../escape')
    opt['val'].update(save_img=True, suffix='a/../../b')
    message = _refused(tmp_path, 'test', opt, name='dataset')
    assert "datasets.test_1.name: '../../../escape' is not a plain folder name; it becomes a folder under " \
        'results/<name>/visualization/' in message
    assert "val.suffix: 'a/../../b' is not a plain folder name" in message
    message = _refused(tmp_path, 'test', edit(opt, datasets__test_1__name=None, val__suffix=None), name='unnamed')
    assert 'datasets.test_1.name: missing; BasicSR logs it and saves images under it (e.g. name: Set5).' in message


@pytest.mark.parametrize('name', ['MSRN_x4', 'debug_MSRN x2.v1', '001_MSRN-x4'])
def test_plain_names_pass(data, name):
    validate_options(train_options(data['gt'], data['lq'], name=name))


# ================================================================ no run overwrites one of its own inputs


def _inference(args, ckpt):
    return inference_msrn.main([*args, '--model_path', ckpt])


def test_inference_suffix_output_that_is_another_input(tmp_path, data, caplog):
    folder = tmp_path / 'D'
    img = (np.arange(16 * 16 * 3) % 251).astype(np.uint8).reshape(16, 16, 3)
    write_image(folder / 'a.png', img)
    write_image(folder / 'a_x.png', img[::-1])
    before = {n: (folder / n).read_bytes() for n in os.listdir(folder)}
    assert _inference(['-i', str(folder), '-o', str(folder), '--suffix', 'x'], data['ckpt']) == 2
    assert f'{folder / "a_x.png"}: the output would overwrite the input {folder / "a_x.png"} (the same path)' in \
        caplog.text
    assert 'nothing was written. Choose another output folder (-o) or another --suffix.' in caplog.text
    assert {n: (folder / n).read_bytes() for n in os.listdir(folder)} == before


def test_inference_output_folder_that_links_to_the_input_folder(tmp_path, data, caplog):
    folder = tmp_path / 'in'
    write_image(folder / 'a.png', np.full((12, 12, 3), 7, np.uint8))
    before = (folder / 'a.png').read_bytes()
    os.symlink(folder, tmp_path / 'out')
    assert _inference(['-i', str(folder), '-o', str(tmp_path / 'out')], data['ckpt']) == 2
    assert f'{tmp_path / "out" / "a.png"}: the output would overwrite the input {folder / "a.png"} (the same file, ' \
        'through a link)' in caplog.text
    assert os.listdir(folder) == ['a.png'] and (folder / 'a.png').read_bytes() == before


def test_prepare_benchmark_into_its_own_input_folder(tmp_path, caplog):
    gt = tmp_path / 'S' / 'GTmod4'
    write_image(gt / 'baby.png', np.full((18, 22, 3), 50, np.uint8))  # not a multiple of 4: mod-crop would change it
    before = (gt / 'baby.png').read_bytes()
    with pytest.raises(PrepError) as err:
        prepare_benchmark(str(gt), str(tmp_path / 'S'), scales=[4], progress=False)
    assert str(err.value).startswith(f'{gt / "baby.png"}: the output would overwrite the input {gt / "baby.png"}')
    args = ['--input', str(gt), '--output', str(tmp_path / 'S'), '--scales', '4', '--no-progress']
    assert prepare_benchmark_script.main(args) == 2
    assert 'Write the benchmark to another --output folder' in caplog.text
    assert files_under(str(tmp_path)) == ['S', 'S/GTmod4', 'S/GTmod4/baby.png']
    assert (gt / 'baby.png').read_bytes() == before


def test_convert_onto_its_own_input(tmp_path):
    from official_msrn import OfficialMSRN
    src = tmp_path / 'MSRN_x2.pt'
    torch.save(OfficialMSRN(scale=2, n_feats=8, n_blocks=1).state_dict(), src)
    before = src.read_bytes()
    os.symlink(src, tmp_path / 'link.pth')
    for output in (src, tmp_path / 'link.pth'):
        with pytest.raises(CheckpointError, match=r'the output would overwrite the input .*MSRN_x2.pt .*Write the '
                                                  'BasicSR checkpoint to another --output'):
            convert_official_checkpoint(src, output)
    assert src.read_bytes() == before and sorted(os.listdir(tmp_path)) == ['MSRN_x2.pt', 'link.pth']


def test_onnx_export_onto_its_own_checkpoint(tmp_path, data, caplog):
    import export_onnx as export_script
    ckpt = tmp_path / 'net.pth'
    ckpt.write_bytes(open(data['ckpt'], 'rb').read())
    before = ckpt.read_bytes()
    assert export_script.main(['--model_path', str(ckpt), '-o', str(ckpt)]) == 2
    assert f'{ckpt}: the output would overwrite the input {ckpt} (the same path); nothing was written. Write the ' \
        '.onnx file to another --output.' in caplog.text
    assert ckpt.read_bytes() == before and os.listdir(tmp_path) == ['net.pth']


@pytest.mark.parametrize('where', ['same', 'parent'])
def test_haze_synthesis_does_not_replace_the_folder_of_its_inputs(tmp_path, where):
    from msrn_plugin.prep.haze import synthesize_haze_folder
    clear = tmp_path / 'data' / 'clear_in'
    write_image(clear / 'a.png', np.full((16, 16, 3), 120, np.uint8))
    before = files_under(str(tmp_path))
    output = clear if where == 'same' else tmp_path / 'data'
    with pytest.raises(PrepError) as err:
        synthesize_haze_folder(clear, output, overwrite=True)
    assert str(err.value) == (f'{output}: the output folder is replaced as a whole, and it holds the input {clear}; '
                              'nothing was written. Choose an output folder outside the folder of clear images.')
    assert files_under(str(tmp_path)) == before


def test_find_overwrites_resolves_links_and_relative_paths(tmp_path, monkeypatch):
    (tmp_path / 'a.png').write_bytes(b'a')
    os.link(tmp_path / 'a.png', tmp_path / 'hard.png')
    monkeypatch.chdir(tmp_path)
    inputs = [str(tmp_path / 'a.png')]
    assert find_overwrites(['a.png', 'sub/../hard.png', 'b.png'], inputs) == [('a.png', inputs[0]),
                                                                             ('sub/../hard.png', inputs[0])]
    calls = []
    with pytest.raises(ValueError, match=r'a.png: the output would overwrite the input .*a.png \(the same path\)'):
        process_folder(tmp_path, calls.append, output_for=lambda path: path, show_progress=False)
    assert calls == [] and (tmp_path / 'a.png').read_bytes() == b'a'


# ================================================================ resource exhaustion


def test_billion_laughs_is_refused_from_the_node_graph_with_little_memory(tmp_path):
    path = tmp_path / 'laughs.yml'
    path.write_text(billion_laughs(9))  # 10**9 values if expanded; the file is about 500 bytes
    assert path.stat().st_size < 1000
    tracemalloc.start()
    with pytest.raises(OptionFileError) as err:
        load_options(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2 * MB
    assert str(err.value) == (
        f'{path}: refused to load this option file: its aliases (*name) expand to more than {MAX_OPTION_VALUES:,} '
        'values (a "billion laughs" file, which would exhaust memory when BasicSR logs the options); write the values '
        'out instead of nesting aliases.')
    from basicsr.utils.options import ordered_yaml
    with pytest.raises(yaml.YAMLError):  # BasicSR's own parser, through compat fix 2
        yaml.load(billion_laughs(9), Loader=ordered_yaml()[0])
    with pytest.raises(OptionFileError, match='an alias refers to the value that contains it'):
        parse_yaml('a: &a [1, *a]\n')
    assert parse_yaml(billion_laughs(3))['unused']['l2'][9][9][9] == 'lol'  # 1,111 values: fine


def test_billion_laughs_through_the_command_line(tmp_path, capsys, monkeypatch):
    (tmp_path / 'laughs.yml').write_text(billion_laughs(7))
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(['-opt', 'laughs.yml']) == 2
    assert 'laughs.yml: refused to load this option file: its aliases' in capsys.readouterr().err
    assert os.listdir(tmp_path) == ['laughs.yml']


def test_image_declaring_a_huge_size_is_refused_from_its_header(tmp_path):
    path = tmp_path / 'huge.png'
    path.write_bytes(png_declaring(20000, 20000))
    assert path.stat().st_size < 2000
    tracemalloc.start()
    for read in (image_size, read_image):
        with pytest.raises(ImageTooLargeError) as err:
            read(path)
        assert str(err.value) == (
            f'{path}: the image declares 20000x20000 = 400,000,000 pixels, more than the limit of 100,000,000 (it '
            'would need about 1.1 GiB as 8-bit RGB); refused before decoding. If the image is genuine, raise the '
            'limit (--max-pixels N, or MSRN_MAX_PIXELS=N; 0: no limit) or split it.')
    assert tracemalloc.get_traced_memory()[1] < 2 * MB
    tracemalloc.stop()


def test_pixel_limit_argument_and_environment(tmp_path, monkeypatch):
    path = tmp_path / 'small.png'
    write_image(path, np.zeros((30, 40, 3), np.uint8))
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS and max_pixels_limit(0) is None
    with pytest.raises(ImageTooLargeError, match=r'declares 40x30 = 1,200 pixels, more than the limit of 1,000'):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3) and image_size(path, max_pixels=0) == (30, 40)
    monkeypatch.setenv(MAX_PIXELS_ENV, '1000')
    with pytest.raises(ImageTooLargeError):
        image_size(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, 'lots')
    with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV}='lots': not a number of pixels"):
        read_image(path)


def test_inference_reports_the_huge_file_and_finishes_the_others(tmp_path, data, caplog):
    folder = tmp_path / 'in'
    write_image(folder / 'good.png', np.full((10, 12, 3), 90, np.uint8))
    (folder / 'huge.png').write_bytes(png_declaring(20000, 20000))
    assert _inference(['-i', str(folder), '-o', str(tmp_path / 'out')], data['ckpt']) == 1
    assert f'{folder / "huge.png"}: the image declares 20000x20000 = 400,000,000 pixels' in caplog.text
    assert os.listdir(tmp_path / 'out') == ['good.png']
    assert read_image(tmp_path / 'out' / 'good.png').shape == (20, 24, 3)
    caplog.clear()
    assert _inference(['-i', str(folder / 'good.png'), '-o', str(tmp_path / 'o2'), '--max-pixels', '100'],
                      data['ckpt']) == 1
    assert 'good.png: the image declares 12x10 = 120 pixels, more than the limit of 100' in caplog.text
    assert _inference(['-i', str(folder / 'good.png'), '-o', str(tmp_path / 'o3'), '--max-pixels', '-5'],
                      data['ckpt']) == 2
    assert 'max_pixels must be a whole number >= 0 (0: no limit), got -5.' in caplog.text
    assert not (tmp_path / 'o2').exists() and not (tmp_path / 'o3').exists()


def test_startup_validation_reports_a_huge_image_without_a_traceback(tmp_path, data):
    gt, lq = tmp_path / 'GT', tmp_path / 'LQ'
    gt.mkdir()
    lq.mkdir()
    (gt / 'img000.png').write_bytes(png_declaring(20000, 20000))
    (lq / 'img000.png').write_bytes(png_declaring(10000, 10000))
    message = _refused(tmp_path, 'train', train_options(str(gt), str(lq)))
    assert f'datasets.train: {lq / "img000.png"}: the image declares 10000x10000 = 100,000,000 pixels' not in message
    assert f'datasets.train: {gt / "img000.png"}: the image declares 20000x20000 = 400,000,000 pixels, more than ' \
        'the limit of 100,000,000' in message


def test_tiles_bound_what_the_network_sees():
    net = MSRN(num_feat=8, num_block=1, upscale=2).eval()
    upsampler = MSRNer(net, 2, tile=16)
    seen = []
    net.register_forward_hook(lambda module, args, out: seen.append(tuple(args[0].shape[2:])))
    img = (np.random.default_rng(0).random((70, 100, 3)) * 255).astype(np.uint8)
    tiled = upsampler.enhance(img)
    bound = 16 + 2 * upsampler.tile_pad
    assert len(seen) == 5 * 7 and max(max(s) for s in seen) <= bound < 70
    whole = MSRNer(net, 2).enhance(img)
    assert tiled.shape == (140, 200, 3) and np.abs(tiled.astype(int) - whole).max() <= 1


def test_tiled_enhance_holds_the_output_image_and_one_tile():
    """With --tile, the float copies are per tile: the peak is the uint8 output plus a tile, not 4 float32 images."""
    upsampler = MSRNer(MSRN(num_feat=8, num_block=1, upscale=2).eval(), 2, tile=24)
    img = (np.random.default_rng(1).random((200, 300, 3)) * 255).astype(np.uint8)
    out_bytes = 400 * 600 * 3
    tracemalloc.start()
    out = upsampler.enhance(img)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (400, 600, 3) and out.dtype == np.uint8
    assert peak < 2 * out_bytes, peak  # the whole-image float path held 13 x out_bytes (float32 copies)


# ================================================================ values checked before side effects


def test_bad_values_are_all_listed_before_anything_is_written(tmp_path, data):
    opt = edit(train_options(data['gt'], data['lq']), datasets__train__batch_size_per_gpu=-1,
               datasets__train__num_worker_per_gpu=-1, train__total_iter='abc',
               datasets__train__dataset_enlarge_ratio=0, logger__print_freq=0, manual_seed=-1)
    message = _refused(tmp_path, 'train', opt)
    assert message.startswith(f'{tmp_path / "case.yml"}: 6 problems found before starting; nothing was run or '
                              'written:\n')
    for line in ['manual_seed: -1 is out of range; use a whole number from 0 to 2**31 - 1',
                 'datasets.train.batch_size_per_gpu: -1 is out of range; use a whole number >= 1, e.g. 16.',
                 'datasets.train.num_worker_per_gpu: -1 is out of range; use a whole number >= 0 (0: load in the '
                 'main process), e.g. 4.',
                 'datasets.train.dataset_enlarge_ratio: 0 is out of range; use a whole number >= 1, e.g. 1.',
                 "train.total_iter: 'abc' is not a number; use a whole number >= 1, e.g. 1000000.",
                 'logger.print_freq: 0 is out of range; use a whole number >= 1, e.g. 100.']:
        assert f'  - {line}' in message


@pytest.mark.parametrize('value,expected', [
    (0, '0 is out of range; use a whole number >= 1, e.g. 16.'),
    ('4', "'4' is text, not a number; write 4 without quotes."),
    (4.0, '4.0 must be written as a whole number without a dot (BasicSR passes it on as an int), e.g. 16.'),
])
def test_batch_size_values(tmp_path, data, value, expected):
    message = _refused(tmp_path, 'train', edit(train_options(data['gt'], data['lq']),
                                               datasets__train__batch_size_per_gpu=value))
    assert f'datasets.train.batch_size_per_gpu: {expected}' in message


@pytest.mark.parametrize('change,expected', [
    (dict(datasets__train__io_backend='disk'), "datasets.train.io_backend: must be a section (key: value lines, e.g. "
     "type: ...), got the str 'disk'."),
    (dict(train__scheduler='MultiStepLR'), "train.scheduler: must be a section (key: value lines, e.g. type: ...), got "
     "the str 'MultiStepLR'."),
    (dict(path__pretrain_network_g=5), 'path.pretrain_network_g: 5 is not a file path.'),
    (dict(train__pixel_opt__reduction='avg'), "train.pixel_opt.reduction: 'avg' is not one of none, mean, sum."),
    (dict(datasets__train__use_hflip='yes'), "datasets.train.use_hflip: 'yes' is not true or false; write e.g. true."),
])
def test_sections_paths_and_choices(tmp_path, data, change, expected):
    message = _refused(tmp_path, 'train', edit(train_options(data['gt'], data['lq']), **change))
    assert f'  - {expected}' in message


def test_lr_written_as_1e_3_is_the_number_with_a_note(tmp_path, data, caplog):
    opt = train_options(data['gt'], data['lq'])
    text = yaml.safe_dump(opt, sort_keys=False).replace('lr: 0.001', 'lr: 1e-3').replace('gamma: 0.5', "gamma: '0.5'")
    assert 'lr: 1e-3' in text and yaml.safe_load(text)['train']['optim_g']['lr'] == '1e-3'  # PyYAML: text
    path = tmp_path / 'lr.yml'
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger='basicsr'):
        loaded = load_options(path)
    assert loaded['train']['optim_g']['lr'] == 0.001 and loaded['train']['scheduler']['gamma'] == 0.5
    assert f"{path}: train.optim_g.lr: read the text '1e-3' as the number 0.001" in caplog.text
    from basicsr.utils.options import ordered_yaml
    assert yaml.load(text, Loader=ordered_yaml()[0])['train']['optim_g']['lr'] == 0.001  # what BasicSR then reads
    raw = edit(opt, train__optim_g__lr='1e-3')
    checked = validate_options(raw)
    assert checked['train']['optim_g']['lr'] == 0.001 and raw['train']['optim_g']['lr'] == '1e-3'  # a copy
    message = _refused(tmp_path, 'train', edit(opt, train__optim_g__lr='fast'))
    assert "train.optim_g.lr: 'fast' is not a number; use a number >= 0, e.g. 2e-4." in message


def test_force_yml_numbers_are_read_as_yaml_1_2_does(tmp_path, data):
    opt = train_options(data['gt'], data['lq'])
    out = apply_force_yml(opt, ['train:warmup_iter=-1', 'train:optim_g:weight_decay=1e-4', 'train:total_iter=2E+1'])
    assert out['train']['warmup_iter'] == -1 and out['train']['optim_g']['weight_decay'] == 1e-4
    assert out['train']['total_iter'] == 20.0
    validate_options(out)
    assert [parse_override_value(v) for v in ('-3', '+2.5e-3', '.5', '1.', '-.inf', '1_000')] == \
        [-3, 0.0025, 0.5, 1.0, float('-inf'), '1_000']
    message = _refused(tmp_path, 'train', opt, ['--force_yml', 'train:warmup_iter=-2'])
    assert 'train.warmup_iter: -2 is out of range; use a whole number >= -1 (-1: no warm-up), e.g. -1.' in message
    _refused(tmp_path, 'train', opt, ['--force_yml', 'train:optim_g:lr=!!float fast'], error=OptionFileError,
             name='float')


def test_force_yml_parse_error_is_the_exit_2_message(tmp_path, data, capsys, monkeypatch):
    yml = write_options(str(tmp_path / 'x.yml'), train_options(data['gt'], data['lq']))
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(['-opt', yml, '--force_yml', 'train:optim_g:lr=!!float fast']) == 2
    assert capsys.readouterr().err == ("msrn_plugin/train.py: error: --force_yml value '!!float fast': not a number "
                                       'after !!float; write e.g. !!float 1e-4.\n')


@pytest.mark.parametrize('encoding,expected', [
    ('cp1252', ':2: not UTF-8 text (byte 0x93, which is \'\u201c\' in Windows-1252 (cp1252)); the file is in another '
     'encoding. BasicSR reads option files as UTF-8: save it as UTF-8'),
    ('utf-16', ': the file is UTF-16 text (it starts with a UTF-16 byte-order mark); BasicSR reads option files as '
     'UTF-8: save it as UTF-8'),
])
def test_option_file_not_in_utf8(tmp_path, capsys, monkeypatch, encoding, expected):
    path = tmp_path / 'x.yml'
    path.write_bytes('name: x\n# the \u201cbest\u201d settings\nscale: 2\n'.encode(encoding))
    with pytest.raises(OptionFileError) as err:
        load_options(path)
    assert str(err.value).startswith(f'{path}{expected}')
    monkeypatch.chdir(tmp_path)
    assert train_cli.main(['-opt', 'x.yml']) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'msrn_plugin/train.py: error: x.yml{expected}') and 'Traceback' not in err
    path.write_bytes('name: x  # caf\u00e9\nscale: 2\n'.encode('utf-8-sig'))  # UTF-8 with a BOM is fine
    assert load_options(path) == {'name': 'x', 'scale': 2}


def test_auto_resume_with_a_state_of_another_network_size(tmp_path, data):
    root = tmp_path / 'root'
    exp = root / 'experiments' / 'resume_me'
    (exp / 'models').mkdir(parents=True)
    (exp / 'training_states').mkdir()
    torch.save({'epoch': 0, 'iter': 4, 'optimizers': [], 'schedulers': []}, exp / 'training_states' / '4.state')
    torch.save({'params': MSRN(num_feat=8, num_block=1, upscale=2).state_dict()}, exp / 'models' / 'net_g_4.pth')
    before = files_under(str(root))
    opt = train_options(data['gt'], data['lq'], name='resume_me')
    opt['network_g']['num_feat'] = 16
    yml = write_options(str(tmp_path / 'r.yml'), opt)
    with pytest.raises(OptionValidationError) as err:
        run_pipeline('train', ['-opt', yml, '--auto_resume'], root_path=str(root))
    assert ('--auto_resume / path.resume_state: this experiment was trained with num_feat 8, the options say 16 ('
            f'{exp / "models" / "net_g_4.pth"} does not fit network_g); set network_g.num_feat: 8 to resume, or give '
            'the run a new name to start over.') in str(err.value)
    assert files_under(str(root)) == before  # nothing archived, nothing added
    opt['network_g']['num_feat'] = 8
    validate_options(opt, resume=True, root_path=str(root))  # the matching size resumes
