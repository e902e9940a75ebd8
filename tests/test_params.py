import subprocess
import sys

import pytest
import yaml

from maskdet.params import ParamsError, load_params, parse_params
from tests.helpers import ROOT


def test_project_params_load_with_every_section_validated():
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "sample"
    assert params.data.split.train + params.data.split.val + params.data.split.test == pytest.approx(1)


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda r: r["data"].update(colour="red"), "unknown key 'data.colour'"),
        (lambda r: r.update(trian={}), "unknown key 'trian'"),
        (lambda r: r["data"].update(min_size="big"), "data.min_size = 'big'"),
        (lambda r: r["data"].update(crop_padding=1.5), "data.crop_padding = 1.5"),
        (lambda r: r["data"]["split"].update(test=-0.1), "data.split.test = -0.1"),
        (lambda r: r["data"]["split"].update(train=0.9), "add up to 1"),
        (lambda r: r["data"].update(source="kaggle"), "data.source = 'kaggle'"),
        (lambda r: r["data"]["sample"].update(crop_size=True), "data.sample.crop_size = True"),
        (lambda r: r["predict"].update(ultralight_input=[640]), "predict.ultralight_input = [640]"),
        (lambda r: r["predict"].update(ultralight_input=[400, 10]), "predict.ultralight_input.1 = 10"),
        (lambda r: r["predict"].update(ultralight_input="640x480"), "predict.ultralight_input = '640x480'"),
    ],
)
def test_bad_values_fail_with_one_line_naming_key_and_value(edit, expected):
    raw = _raw()
    edit(raw)
    with pytest.raises(ParamsError) as err:
        parse_params(raw)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_missing_dataset_path_is_named(tmp_path):
    raw = _raw()
    raw["data"].update(source="voc", path=str(tmp_path / "nowhere"))
    with pytest.raises(ParamsError, match=r"data.path = .*nowhere.*expected an existing folder"):
        parse_params(raw)


def test_cli_reports_bad_params_in_one_line_and_exit_2(tmp_path):
    raw = _raw()
    raw["data"]["split"]["val"] = 2
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [sys.executable, "-m", "maskdet", "params", "--params", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "data.split.val = 2" in result.stderr and str(bad) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "maskdet", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0
    for command in ("params", "assets", "sample", "data"):
        assert command in out.stdout


def test_code_defaults_are_the_documented_params_yaml():
    from maskdet.params import Params

    assert load_params(ROOT / "params.yaml").model_dump() == Params().model_dump()


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    path = tmp_path / "params.yaml"
    path.write_text(text.replace("train:\n", "train:\n  epochs: 3\n", 1) + "\n")
    assert "train:\n  epochs:" in text  # the second one below the first
    with pytest.raises(ParamsError, match="'epochs' is given twice"):
        load_params(path)
