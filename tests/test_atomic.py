"""The shared crash-safe writer: the previous file survives a failed write, and no temporary file is left."""
import cv2
import numpy as np
import os
import pytest
import stat
import torch

from msrn_plugin.prep.lmdb_writer import write_lmdb_atomic
from msrn_plugin.utils.atomic import atomic_path, atomic_write, current_umask
from msrn_plugin.utils.checkpoint import atomic_torch_save
from msrn_plugin.utils.image_io import write_image


def test_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'summary.csv'
    path.write_text('old')
    with atomic_write(path, 'w') as f:
        f.write('new')
        assert path.read_text() == 'old'  # nothing under the final name until the block ends
    assert path.read_text() == 'new'
    assert os.listdir(tmp_path) == ['summary.csv']


def test_failed_write_keeps_previous_file(tmp_path):
    path = tmp_path / 'net_g_4.pth'
    path.write_bytes(b'complete')
    with pytest.raises(RuntimeError, match='disk full'):
        with atomic_write(path) as f:
            f.write(b'part')
            raise RuntimeError('disk full')
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['net_g_4.pth']


def test_atomic_path_names_a_hidden_temporary_beside_the_target(tmp_path):
    with atomic_path(tmp_path / 'model.onnx') as tmp:
        assert os.path.dirname(tmp) == str(tmp_path)
        assert os.path.basename(tmp).startswith('.model.onnx.') and tmp.endswith('.tmp')
        with open(tmp, 'wb') as f:
            f.write(b'onnx')
    assert (tmp_path / 'model.onnx').read_bytes() == b'onnx'
    assert os.listdir(tmp_path) == ['model.onnx']


def test_text_mode_only_w_or_wb(tmp_path):
    with pytest.raises(ValueError, match="atomic_write: mode must be 'w' or 'wb', got 'a'."):
        with atomic_write(tmp_path / 'x', 'a'):
            pass


@pytest.fixture(params=[0o022, 0o077], ids=['umask022', 'umask077'])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_get_the_mode_of_a_plain_open(tmp_path, umask):
    """mkstemp creates 0600 files; the final file must get 0666 & ~umask, as ``open(path, 'w')`` would."""
    with open(tmp_path / 'plain.txt', 'w') as f:
        f.write('x')
    expected = 0o666 & ~umask
    assert _mode(tmp_path / 'plain.txt') == expected
    with atomic_write(tmp_path / 'a.txt', 'w') as f:
        f.write('x')
    with atomic_path(tmp_path / 'b.onnx') as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'x')
    atomic_torch_save({'params': {'w': torch.zeros(1)}}, tmp_path / 'net_g_1.pth')
    write_image(tmp_path / 'sr.png', np.zeros((4, 4, 3), np.uint8))
    for name in ('a.txt', 'b.onnx', 'net_g_1.pth', 'sr.png'):
        assert _mode(tmp_path / name) == expected, name
    assert current_umask() == umask


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / 'summary.csv'
    path.write_text('old')
    os.chmod(path, 0o640)
    with atomic_write(path, 'w') as f:
        f.write('new')
    assert path.read_text() == 'new'
    assert _mode(path) == 0o640


def test_lmdb_files_are_readable_as_a_plain_open_would_allow(tmp_path, umask):
    img = np.zeros((4, 4, 3), np.uint8)
    data = cv2.imencode('.png', img)[1].tobytes()
    lmdb_path = str(tmp_path / 'train.lmdb')
    write_lmdb_atomic(lmdb_path, [('0001', data, img.shape)], map_size=2**22, info={})
    readable = (0o666 & ~umask) & 0o444
    for name in sorted(os.listdir(lmdb_path)):
        assert _mode(os.path.join(lmdb_path, name)) & 0o444 == readable, name


def test_prepared_benchmark_files_are_readable_by_the_group(tmp_path, umask):
    from msrn_plugin.prep.benchmark import prepare_benchmark

    (tmp_path / 'HR').mkdir()
    cv2.imwrite(str(tmp_path / 'HR' / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    prepare_benchmark(str(tmp_path / 'HR'), str(tmp_path / 'Set1'), scales=[2], progress=False)
    for name in ('GTmod2/a.png', 'LRbicx2/a.png'):
        assert _mode(tmp_path / 'Set1' / name) == 0o666 & ~umask, name
