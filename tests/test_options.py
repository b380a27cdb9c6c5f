"""msrn_plugin.utils.options: the safe option-file loader and safe ``--force_yml`` handling."""
import pytest
import yaml
from collections import OrderedDict

import msrn_plugin  # noqa: F401  (installs compat fix 2 into BasicSR)
from msrn_plugin.utils.options import (OptionFileError, apply_force_yml, check_force_yml, load_options,
                                       parse_override_value, parse_yaml)

PLAIN = """\
name: MSRN_x4
scale: 4
lr: !!float 1e-4
resume_state: ~
betas: [0.9, 0.999]
base: &base {type: L1Loss, loss_weight: 1.0}
pixel_opt:
  <<: *base
  loss_weight: 0.5
"""


def test_plain_option_file_keeps_order_floats_nulls_and_merges(tmp_path):
    path = tmp_path / 'ok.yml'
    path.write_text(PLAIN)
    opt = load_options(path)
    assert isinstance(opt, OrderedDict) and isinstance(opt['pixel_opt'], OrderedDict)
    assert list(opt) == ['name', 'scale', 'lr', 'resume_state', 'betas', 'base', 'pixel_opt']
    assert opt['lr'] == pytest.approx(1e-4) and isinstance(opt['lr'], float)
    assert opt['scale'] == 4 and opt['resume_state'] is None and opt['betas'] == [0.9, 0.999]
    assert opt['pixel_opt'] == {'type': 'L1Loss', 'loss_weight': 0.5}


@pytest.mark.parametrize('tag', ['!!python/object/apply:builtins.open', '!!python/object/new:builtins.open',
                                 '!!python/name:builtins.open', '!!python/module:os'])
def test_python_tags_are_refused_with_file_and_line(tmp_path, tag):
    marker = tmp_path / 'marker'
    path = tmp_path / 'evil.yml'
    path.write_text(f"name: x\nscale: 2\nmodel_type: {tag} ['{marker}', 'w']\n")
    with pytest.raises(OptionFileError) as err:
        load_options(path)
    assert str(err.value).startswith(f'{path}:3: refused to load this option file: {tag}')
    assert 'Python tags construct objects and can run code' in str(err.value)
    assert not marker.exists()


def test_the_payload_is_real_under_pyyaml_full_loader(tmp_path):
    """Control: the same text does create the file with PyYAML's full Loader (what BasicSR 1.4.2 uses)."""
    marker = tmp_path / 'marker'
    yaml.load(f"x: !!python/object/apply:builtins.open ['{marker}', 'w']\n", Loader=yaml.UnsafeLoader)
    assert marker.exists()


def test_basicsr_parser_uses_the_safe_loader(tmp_path):
    from basicsr.utils.options import ordered_yaml
    marker = tmp_path / 'marker'
    with pytest.raises(OptionFileError, match=r'<string>:1: refused'):
        parse_yaml(f"x: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.load(f"x: !!python/object/apply:builtins.open ['{marker}', 'w']\n", Loader=ordered_yaml()[0])
    assert not marker.exists()
    assert yaml.load(PLAIN, Loader=ordered_yaml()[0])['lr'] == pytest.approx(1e-4)


def test_unknown_tag_duplicate_key_syntax_error_missing_file_and_non_mapping(tmp_path):
    cases = {
        'tag.yml': ('a: !foo 3\n', 'tag.yml:1: refused to load this option file: !foo (unknown tag)'),
        'dup.yml': ('a: 1\nb: 2\na: 3\n', "dup.yml:3: duplicate key 'a' (first on line 1); keep only one of them."),
        'syntax.yml': ('a: [1,\n', 'syntax.yml: not valid YAML:'),
        'list.yml': ('- a\n- b\n', 'list.yml: an option file must be a YAML mapping (key: value lines), got list.'),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(OptionFileError) as err:
            load_options(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / message.split(':')[0])), str(err.value)
        assert message.split(':', 1)[1] in str(err.value)
    with pytest.raises(OptionFileError, match='cannot read option file .*; check the -opt path.'):
        load_options(tmp_path / 'missing.yml')


def test_force_yml_values_are_parsed_without_eval(tmp_path):
    import basicsr.utils.options
    assert basicsr.utils.options._postprocess_yml_value is parse_override_value
    marker = tmp_path / 'marker'
    assert parse_override_value(f'[__import__("os").system("touch {marker}")]') == [
        f'__import__("os").system("touch {marker}")']
    assert not marker.exists()
    assert parse_override_value('[1, 2.5, a]') == [1, 2.5, 'a']
    assert parse_override_value('!!float 2e-4') == pytest.approx(2e-4)
    assert parse_override_value('~') is None and parse_override_value('None') is None
    assert parse_override_value('True') is True and parse_override_value('12') == 12
    assert parse_override_value('0.5') == 0.5 and parse_override_value('abc') == 'abc'
    with pytest.raises(OptionFileError, match=r"^--force_yml value '\[1, \{': not valid YAML"):
        parse_override_value('[1, {')


def test_force_yml_keys_that_could_break_out_of_basicsr_exec_are_refused():
    evil = 'name"];__import__("os").system("touch pwned");opt["name=x'  # exec-ed by BasicSR as opt["name"];...=x
    with pytest.raises(OptionFileError) as err:
        check_force_yml([evil])
    assert 'refused key' in str(err.value) and 'letters, digits' in str(err.value)
    with pytest.raises(OptionFileError, match='expected exactly one "="'):
        check_force_yml(['train:lr=1=2'])
    assert check_force_yml(['train:optim_g:lr = !!float 2e-4']) == [(['train', 'optim_g', 'lr'], '!!float 2e-4')]


def test_apply_force_yml_copies_and_names_missing_sections():
    opt = parse_yaml('train:\n  optim_g:\n    lr: 0.1\n')
    out = apply_force_yml(opt, ['train:optim_g:lr=!!float 2e-4', 'train:total_iter=10'], source='a.yml')
    assert out['train']['optim_g']['lr'] == pytest.approx(2e-4) and out['train']['total_iter'] == 10
    assert opt['train']['optim_g']['lr'] == 0.1 and 'total_iter' not in opt['train']
    with pytest.raises(OptionFileError, match=r'--force_yml val:val_freq: a.yml has no section val; add it'):
        apply_force_yml(opt, ['val:val_freq=5'], source='a.yml')
