"""How the CLI reports failures: the project's own errors as one line, any
other exception with its traceback (a bug must not pass for bad input)."""

import pytest

from maskdet import cli
from maskdet.errors import InputError, MaskdetError, MissingFileError
from maskdet.io.images import ImageError
from maskdet.params import ParamsError


def test_a_missing_model_is_one_line_naming_it_with_status_2(tmp_path, capsys):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not used")
    status = cli.main(["predict", str(image), "--model", str(tmp_path / "no-model")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "no-model" in err and err.startswith("maskdet predict: error:")


def test_an_internal_fault_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("an internal NumPy-style fault")

    monkeypatch.setattr(cli, "_cmd_params", broken)
    with pytest.raises(ValueError, match="internal"):
        cli.main(["params"])


def test_project_errors_share_one_base_and_keep_the_builtin_types():
    for error in (InputError, MissingFileError, ImageError, ParamsError):
        assert issubclass(error, MaskdetError)
    assert issubclass(InputError, ValueError) and issubclass(MissingFileError, FileNotFoundError)


def test_serve_refuses_bad_limits_and_a_missing_model_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert cli.main(["serve", "--max-in-flight", "0"]) == 2
    assert "--max-in-flight 0: expected a whole number of at least 1" in capsys.readouterr().err
    assert cli.main(["serve", "--model", "models:/maskdet@champion"]) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith("maskdet serve: error: --model models:/maskdet@champion: no model there")
    assert "make repro" in said and len(said.splitlines()) == 1
