"""The shared crash-safe writer: the previous file survives a failed write, and no temporary file is left."""
import os
import pytest

from msrn_plugin.utils.atomic import atomic_path, atomic_write


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
