"""Conda env files: they parse, pin exact versions, and agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

# conda-forge names of packages that PyPI calls otherwise
CONDA_TO_PYPI = {"pytorch": "torch"}


def pyproject_pins(root) -> dict[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = {}
    for spec in project["dependencies"]:
        name, _, version = spec.partition("==")
        assert version, f"{spec} in pyproject.toml is not an exact pin"
        pins[name.lower()] = version
    return pins


@pytest.mark.parametrize("env", ["train", "analysis"])
def test_env_file_pins_exact_versions_that_match_pyproject(root, env):
    doc = yaml.safe_load((root / "envs" / f"{env}.yaml").read_text())
    assert doc["channels"][0] == "conda-forge"
    pins = pyproject_pins(root)
    checked = 0
    for dep in doc["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for spec in dep["pip"]:
                name, _, version = spec.partition("==")
                assert version and pins[name.lower()] == version, spec
                checked += 1
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)=([0-9][^=]*)(?:=(.+))?", dep)
        assert match, f"{dep} in envs/{env}.yaml is not pinned to an exact version"
        name, version = match.group(1), match.group(2)
        pypi_name = CONDA_TO_PYPI.get(name, name)
        if pypi_name in pins:
            assert pins[pypi_name] == version, f"{dep} disagrees with pyproject.toml"
            checked += 1
    assert checked >= 3


def test_train_env_is_the_cuda_build(root):
    deps = yaml.safe_load((root / "envs" / "train.yaml").read_text())["dependencies"]
    torch_dep = next(d for d in deps if isinstance(d, str) and d.startswith("pytorch="))
    assert torch_dep.endswith("=cuda*")
    assert any(isinstance(d, str) and d.startswith("cuda-version=") for d in deps)


def test_every_rule_that_runs_python_names_an_env(root):
    for smk in (root / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = re.findall(r"^rule (\w+):", text, flags=re.M)
        if smk.name == "common.smk":
            continue
        assert text.count("conda:") >= len(rules), f"{smk.name} has a rule without conda:"
