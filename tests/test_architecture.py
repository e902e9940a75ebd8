"""The architecture's rules hold by construction: DVC stage deps are exactly
the project modules each stage runs, and the import rules of
docs/architecture.md are checked by import-linter (in `make lint`), which a
wrong-way import breaks."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import grimp
import yaml

from tests.helpers import BIN, ROOT

# What each DVC stage runs: the notebook's own imports, or the CLI command's module.
# `maskdet.cli` counts as a file only: each command imports its own modules lazily.
CLI_STAGES = {
    "check_params": ["maskdet.params", "maskdet.io.atomic"],
    "sample": ["maskdet.params", "maskdet.data.sample"],
    "data": ["maskdet.params", "maskdet.data.prepare"],
    "report": ["maskdet.params", "maskdet.stages.report"],
}


def notebook_imports(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return sorted(set(re.findall(r"^\s*from (maskdet[\w.]*) import", code, re.M)))


def closure(graph, roots: list[str]) -> set[str]:
    """The project modules loaded when ``roots`` are imported (their packages' __init__ included)."""
    seen, todo = set(roots), list(roots)
    while todo:
        module = todo.pop()
        parts = module.split(".")
        for found in graph.find_modules_directly_imported_by(module) | {
            ".".join(parts[:i]) for i in range(1, len(parts))
        }:
            if found not in seen:
                seen.add(found)
                todo.append(found)
    return seen


def as_file(module: str) -> str:
    path = Path(*module.split("."))
    return str(path / "__init__.py") if (ROOT / path).is_dir() else f"{path}.py"


def test_each_stage_lists_exactly_the_project_modules_it_runs():
    """A module the stage imports but does not list would leave `dvc status`
    'up to date' with stale outputs; one it lists but never imports re-runs it
    for nothing."""
    graph = grimp.build_graph("maskdet", include_external_packages=False)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    wrong = []
    for name, stage in stages.items():
        listed = {d for d in stage.get("deps", []) if d.startswith("maskdet/")}
        notebook = next((d for d in stage.get("deps", []) if d.startswith("notebooks/")), None)
        if notebook:
            expected = {as_file(m) for m in closure(graph, notebook_imports(ROOT / notebook))}
        else:
            assert name in CLI_STAGES, f"stage {name}: neither a notebook nor a known CLI command"
            expected = {as_file(m) for m in closure(graph, CLI_STAGES[name])} | {"maskdet/cli.py"}
        if listed != expected:
            wrong.append(f"{name}: missing {sorted(expected - listed)}, not imported {sorted(listed - expected)}")
    assert not wrong, "dvc.yaml deps differ from the imports:\n" + "\n".join(wrong)


def test_the_served_model_ships_every_module_the_runtime_imports(tmp_path):
    """The registered model carries predict/ and what it imports, nothing more:
    the copy holds predict's whole import closure, and no study or data code."""
    from maskdet.study.registry import runtime_package

    graph = grimp.build_graph("maskdet", include_external_packages=False)
    needed = closure(graph, [m for m in graph.modules if m.startswith("maskdet.predict")])
    package = runtime_package(tmp_path)
    shipped = {p.relative_to(tmp_path).as_posix() for p in package.rglob("*.py")}
    assert {as_file(m) for m in needed} <= shipped
    assert not any(s.startswith(("maskdet/study", "maskdet/data", "maskdet/stages", "maskdet/app")) for s in shipped)


def test_the_import_rules_fail_on_a_runtime_module_that_imports_the_study(tmp_path):
    """The contracts are live: the same check `make lint` runs passes on the
    project and fails, naming the import, when the Predictor's code reaches up
    into the study."""
    for rel in ("maskdet", "pyproject.toml"):
        src = ROOT / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / rel)

    def lint():
        return subprocess.run(
            [str(BIN / "lint-imports"), "--no-cache"],
            cwd=tmp_path,
            env={"PATH": str(BIN), "PYTHONPATH": str(tmp_path)},
            capture_output=True,
            text=True,
        )

    assert lint().returncode == 0
    crops = tmp_path / "maskdet" / "predict" / "crops.py"
    crops.write_text(crops.read_text() + "\nfrom maskdet.study.datasets import read_manifest  # noqa: E402\n")
    broken = lint()
    assert broken.returncode != 0
    assert "maskdet.predict.crops -> maskdet.study.datasets" in broken.stdout
