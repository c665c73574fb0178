"""Conda env files: exact pins, consistent with pyproject.toml where the channels agree, and
sufficient: every rule runs in a venv that holds only its env's packages.

conda cannot run on the development machine, so sufficiency is checked with venvs built from
each env's package list (PyPI names, CPU wheels, the env's versions where PyPI has them). Jobs
run under such a venv through $MILR_PYTHON, which common.smk honours."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ENVS = ("train", "analysis")
# conda-forge names of packages that PyPI calls otherwise
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda packages with no PyPI counterpart in a venv: the interpreter, the installer, and the
# metapackage that selects the CUDA line
CONDA_ONLY = {"python", "pip", "cuda-version"}
# Where the conda env and the pip venv differ on purpose (PyPI name: why). Everything else
# must agree on major.minor.
INTENDED_DIFFERENCES = {
    "torch": "conda-forge's newest build is 2.13.0; PyPI's 2.13.0 has no torchvision that "
    "imports beside it on the development machines, so the venv keeps 2.14.1",
    "torchvision": "follows torch: 0.28 pairs with torch 2.13, 0.29 with 2.14",
}
# pyproject.toml packages that only the driver (Snakemake itself) imports: in no job env
DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "pygments"}
PIN = re.compile(r"([A-Za-z0-9_.-]+)=([0-9][^=]*)(?:=(.+))?")


def env_doc(root: Path, env: str) -> dict:
    return yaml.safe_load((root / "envs" / f"{env}.yaml").read_text())


def env_packages(root: Path, env: str) -> dict[str, str]:
    """PyPI name -> version the env pins (conda and pip sections), conda-only packages left out."""
    packages = {}
    for dep in env_doc(root, env)["dependencies"]:
        if isinstance(dep, dict):  # the pip: section
            for spec in dep["pip"]:
                name, _, version = spec.partition("==")
                packages[name.lower()] = version
            continue
        name, version, _ = PIN.fullmatch(dep).groups()
        if name not in CONDA_ONLY:
            packages[CONDA_TO_PYPI.get(name, name)] = version
    return packages


def pyproject_pins(root: Path) -> dict[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = {}
    for spec in project["dependencies"]:
        name, _, version = spec.partition("==")
        assert version, f"{spec} in pyproject.toml is not an exact pin"
        pins[name.lower()] = version
    return pins


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def rule_envs(root: Path) -> dict[str, str]:
    """Rule name (a prefix for rules defined in a loop) -> the env its conda: directive names."""
    envs = {}
    for smk in sorted((root / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"\n(?=[ \t]*rule\b)", smk.read_text())
        for block in (b for b in blocks if re.match(r"\s*rule\b", b)):
            name = re.match(r"\s*rule (\w+):", block) or re.search(r'name:\s*f?"(\w+?)[{"]', block)
            env = re.search(r'conda:\s*"\.\./\.\./envs/(\w+)\.yaml"', block)
            assert name and env, f"a rule in {smk.name} names no conda env:\n{block[:300]}"
            envs[name.group(1)] = env.group(1)
    return envs


def env_of(rule: str, envs: dict[str, str]) -> str:
    return next(env for name, env in envs.items() if rule == name or rule.startswith(name))


@pytest.mark.parametrize("env", ENVS)
def test_env_pins_exact_versions_from_conda_forge(root, env):
    doc = env_doc(root, env)
    assert doc["channels"][:2] == ["conda-forge", "nodefaults"]
    for dep in doc["dependencies"]:
        if isinstance(dep, str):
            assert PIN.fullmatch(dep), f"{dep} in envs/{env}.yaml is not pinned to an exact version"
    assert "checked 20" in (root / "envs" / f"{env}.yaml").read_text()  # where and when


def test_envs_and_pyproject_hold_the_same_packages(root):
    in_envs = set().union(*(env_packages(root, env) for env in ENVS))
    assert in_envs | DRIVER_ONLY == set(pyproject_pins(root))


@pytest.mark.parametrize("env", ENVS)
def test_env_versions_agree_with_pyproject_except_listed_differences(root, env):
    pins = pyproject_pins(root)
    for name, version in env_packages(root, env).items():
        if name in INTENDED_DIFFERENCES:
            assert minor(version) != minor(pins[name]), f"{name} agrees now: drop its entry"
        else:
            assert minor(version) == minor(pins[name]), f"{name}: env {version}, pip {pins[name]}"


def test_train_env_is_a_cuda_build_with_a_documented_driver(root):
    text = (root / "envs" / "train.yaml").read_text()
    deps = env_doc(root, "train")["dependencies"]
    assert next(d for d in deps if str(d).startswith("pytorch=")).endswith("=cuda*")
    cuda = next(d for d in deps if str(d).startswith("cuda-version="))
    assert re.search(rf"{re.escape(cuda.split('=')[1])} \(needs an NVIDIA driver >= \d+", text)


def test_every_rule_names_an_env(root):
    envs = rule_envs(root)
    assert set(envs.values()) == set(ENVS)
    assert envs["bisect"] == envs["sharpness"] == envs["prepare"] == "train"
    assert envs["range_test"] == envs["sharpness_range_test"] == "train"
    assert envs["aggregate"] == envs["fit"] == envs["figure_"] == "analysis"


# ----------------------------------------------------------------------------------------------
# Sufficiency: build a venv per env and run, in it, every rule that names that env.


def venv_requirements(root: Path, env: str) -> list[str]:
    """The env's packages as PyPI requirements: its own versions, the pip venv's where listed."""
    pins = pyproject_pins(root)
    return [
        f"{name}=={pins[name] if name in INTENDED_DIFFERENCES else version}"
        for name, version in env_packages(root, env).items()
    ]


def build_venv(path: Path, requirements: list[str]) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    run = subprocess.run([*pip, "--disable-pip-version-check", *requirements],
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return path / "bin" / "python"


def rules_run(log: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", log, flags=re.M)) - {"all"}


@pytest.mark.slow
def test_each_env_runs_every_rule_that_names_it(root, tmp_path, monkeypatch):
    from test_data import fake_mnist
    from test_workflow import TINY, snakemake

    pythons = {env: build_venv(tmp_path / env, venv_requirements(root, env)) for env in ENVS}
    work = tmp_path / "study"
    work.mkdir()
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    fake_mnist(work / "data", n_train=300, n_val=100)
    envs = rule_envs(root)
    ran = {}
    # The training half first (everything upstream of the tables), then the analysis half.
    for env, args in [("train", ["--omit-from", "aggregate"]), ("analysis", [])]:
        monkeypatch.setenv("MILR_PYTHON", str(pythons[env]))
        run = snakemake(work, *args)
        assert run.returncode == 0, f"{env} env:\n{run.stderr[-3000:]}"
        ran[env] = rules_run(run.stderr)
        assert ran[env] and {env_of(rule, envs) for rule in ran[env]} == {env}, ran
    planned = snakemake(work, "--dry-run", "--forceall")  # every job the config asks for
    assert rules_run(planned.stdout) == ran["train"] | ran["analysis"]


# ----------------------------------------------------------------------------------------------
# Pin files: workflow/bin/pin-envs against stand-ins for conda and snakemake (no conda here).

FAKE_CONDA = """#!/bin/sh
case "$1" in
  info) echo '{"platform": "linux-64"}' ;;
  list) echo "# platform: linux-64"; echo "@EXPLICIT"; echo "https://conda.example/$5.conda#00" ;;
esac
"""
FAKE_SNAKEMAKE = """#!/bin/sh
echo "$@" >> "$CALLS"
case "$*" in
  *--list-conda-envs*) printf 'environment\\tcontainer\\tlocation\\n'
    printf 'envs/train.yaml\\t\\t.snakemake/conda/aaa_\\n'
    printf 'envs/analysis.yaml\\t\\t.snakemake/conda/bbb_\\n' ;;
esac
"""


def fake_tools(tmp_path: Path, snakemake_script: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"conda": FAKE_CONDA, "snakemake": snakemake_script}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PIN_DIR": str(tmp_path),
            "CALLS": str(tmp_path / "calls")}  # fmt: skip


def test_pin_envs_writes_one_explicit_list_per_env(root, tmp_path):
    env = fake_tools(tmp_path, FAKE_SNAKEMAKE)
    run = subprocess.run([str(root / "workflow/bin/pin-envs")], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name, prefix in [("train", "aaa_"), ("analysis", "bbb_")]:
        pin = (tmp_path / f"{name}.linux-64.pin.txt").read_text()
        assert "@EXPLICIT" in pin and f".snakemake/conda/{prefix}" in pin
    assert "--conda-create-envs-only" in (tmp_path / "calls").read_text()


def test_pin_envs_fails_when_snakemake_lists_no_env(root, tmp_path):
    env = fake_tools(tmp_path, "#!/bin/sh\nexit 0\n")
    run = subprocess.run([str(root / "workflow/bin/pin-envs")], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert run.returncode == 1 and "listed no conda env" in run.stderr
    assert not list(tmp_path.glob("*.pin.txt"))
