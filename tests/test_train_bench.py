"""benchmark_train.py / benchmark_data.py libraries on tiny sizes: every row is produced, refusals are reported."""
import importlib.util
import os
import re
import torch

from msrn_plugin.bench.train_bench import MODES, format_table, measure_modes
from msrn_plugin.models import msrn_model

TINY = dict(scale=2, batch_size=2, lq_size=8, num_feat=8, num_block=1, warmup=1, steps=1)


def test_modes_are_the_rows_of_the_issue():
    assert list(MODES) == ['fp32 eager', 'TF32', 'bf16', 'bf16+channels_last', 'bf16+channels_last+compile']


def test_measure_modes_gives_each_row_against_fp32():
    flags = (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision())
    rows = measure_modes(['fp32 eager', 'bf16+channels_last'], 'cpu', **TINY)
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == flags  # restored
    assert [r['mode'] for r in rows] == ['fp32 eager', 'bf16+channels_last']
    assert rows[0]['speedup'] == 1.0
    for row in rows:
        assert row['it_per_s'] > 0 and row['patches_per_s'] == row['it_per_s'] * 2 and 0 < row['loss'] < 1
    table = format_table(rows).splitlines()
    assert table[0] == '| mode | iterations/s | patches/s | vs fp32 eager | warm-up (s) |'
    assert re.fullmatch(r'\| bf16\+channels_last \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \|', table[3])


def test_refused_mode_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(msrn_model, 'find_cxx_compiler', lambda: None)
    rows = measure_modes(['bf16+channels_last+compile'], 'cpu', **TINY)
    assert rows == [{'mode': 'bf16+channels_last+compile',
                     'error': 'ValueError: Training switches refused: use_compile: torch.compile on the CPU needs a '
                              'C++ compiler and none was found ($CXX, g++, c++, clang++); install one (e.g. apt-get '
                              'install g++) or set use_compile: false.'}]
    assert 'not run: ValueError' in format_table(rows)


def test_benchmark_data_script_prints_the_ratio_and_disk_use(capsys):
    path = os.path.join(os.path.dirname(__file__), os.pardir, 'scripts', 'benchmark_data.py')
    spec = importlib.util.spec_from_file_location('benchmark_data_script', path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(['--gt-size', '96', '--batch-size', '2', '--batches', '2', '--repeats', '1',
                        '--no-folders']) == 0
    out = capsys.readouterr().out
    assert re.search(r'raw LMDB, RawLMDBDataset +0 +[\d.]+', out)
    assert re.search(r'PNG LMDB, PairedImageDataset +0 +[\d.]+', out)
    assert re.search(r'raw / PNG LMDB with 0 workers: [\d.]+x goal >= 10x: (met|NOT met)', out)
    assert re.search(r'Disk use for the same images \(HR \+ x4\): raw [\d.]+ MiB, PNG sub-images \(480/240\) [\d.]+ '
                     'MiB', out)
