# Config validation (defaults filled in from the schema), the job plan, and shared helpers.
# The logic lives in the milr package (milr.config, milr.plan, milr.names); this file wires it in.
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

PACKAGE_ROOT = Path(workflow.basedir).joinpath("workflow")
sys.path.insert(0, str(PACKAGE_ROOT))

from milr import MilrError  # noqa: E402
from milr import plan  # noqa: E402
from milr.config import validate_config  # noqa: E402
from milr.io import code_fingerprint  # noqa: E402
from milr.names import (
    BISECT_PATTERN,
    DATA_PATTERN,
    FIGURE_EXTRA_TABLES,
    FIGURES,
    RANGE_TEST_PATTERN,
    SHARPNESS_PATTERN,
    WILDCARDS,
)  # noqa: E402

try:
    validate_config(config)
except MilrError as err:
    sys.exit(f"milr: error: {err}")

R = config["results"]
# Jobs call `milr`, the wrapper in workflow/bin: it runs the package from this checkout, with
# --sdm conda under the job's env's python, otherwise under $MILR_PYTHON when the user sets it
# (tests/test_envs.py runs each env's rules in a venv of that env's packages this way), else
# under the interpreter that runs Snakemake (the project's venv). The shell prefix reaches every
# job, on SLURM too.
USES_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
MILR_PYTHON = (
    "unset MILR_PYTHON"
    if USES_CONDA
    # ${{...}} once formatted here: Snakemake formats the shell prefix like a command
    else f"export MILR_PYTHON=${{{{MILR_PYTHON:-{shlex.quote(sys.executable)}}}}}"
)
# Where raw downloads live, how long a job waits for a GPU and how many jobs share one change no
# result: environment variables, not job params.
# Jobs ignore Ctrl-C (trap '' INT reaches every command a job runs): Snakemake alone takes it
# and stops its jobs, instead of every job printing its own KeyboardInterrupt traceback.
shell.prefix(
    f"set -euo pipefail; trap '' INT; export PATH={shlex.quote(str(PACKAGE_ROOT / 'bin'))}:$PATH; "
    f"{MILR_PYTHON}; export MILR_DATA_DIR={shlex.quote(str(config['data_dir']))}; "
    f"export MILR_GPU_WAIT_S={config['gpu_wait_s']}; "
    f"export MILR_JOBS_PER_GPU={config['jobs_per_gpu']}; "
)
# Jobs that train ask for a GPU only when the config says the study runs on CUDA.
GPU = 1 if config["device"] == "cuda" else 0
# Snakemake's code trigger sees only the workflow's text, not imported modules: each step
# carries a fingerprint of the package modules it imports (milr.io.code_fingerprint).
CODE = {
    step: code_fingerprint(modules)
    for step, modules in {
        "data": ["data"],
        "bisect": ["measure"],
        "sharpness": ["sharpness"],
        "tables": ["tables"],
        "fit": ["fit", "evidence"],
        "predict": ["predict"],
        "range_test": ["range_test"],
        "sharpness_range_test": ["sharpness", "range_test"],
        "baseline": ["baseline"],
        "figures": ["figures"],
    }.items()
}
# The config file named in figure captions: the last --configfile, else config.yaml.
CONFIG_NAME = Path((workflow.overwrite_configfiles or ["config.yaml"])[-1]).name
DATA_OUT = f"{R}/{DATA_PATTERN}"
BISECT_OUT = f"{R}/{BISECT_PATTERN}"
SHARPNESS_OUT = f"{R}/{SHARPNESS_PATTERN}"
RANGE_TEST_OUT = f"{R}/{RANGE_TEST_PATTERN}"


wildcard_constraints:
    **WILDCARDS,


def all_targets():
    """Tables, fits and every figure the config has data for."""
    return [
        f"{R}/tables/eta_star.csv",
        f"{R}/tables/sharpness.csv",
        f"{R}/tables/fits.csv",
        f"{R}/tables/laws.csv",
        f"{R}/tables/slopes.csv",
        f"{R}/tables/loao.csv",
        f"{R}/tables/lr_finder.csv",
        *[f"{R}/figures/{name}.png" for name in plan.supported_figures(config)],
    ]


def figure_tables(name):
    """The tables figure ``name`` reads besides the common ones: option -> file."""
    made_by = {
        "loao": rules.validate.output.loao,
        "lr_finder": rules.lr_finder.output.table,
        "laws": rules.fit.output.laws,
    }
    return {option: made_by[option] for option in FIGURE_EXTRA_TABLES.get(name, ())}


def journal_path(wildcards):
    """The resume journal: outside the declared outputs, which Snakemake deletes on failure."""
    return f"{R}/journal/{BISECT_PATTERN.format(**wildcards)}l"


def check_gpus():
    """A CUDA study on a machine without a GPU stops before its first job, in one line, not
    job by job. Only where jobs run on this machine: a SLURM login node has no GPU of its own.
    """
    if config["device"] == "cuda" and workflow.local_exec and not workflow.remote_exec:
        from milr.gpu import require_gpus

        if problem := require_gpus():
            sys.exit(f"milr: error: {problem}")


def partial_tables():
    """After a stopped or failed run: tables of what finished, every missing job marked."""
    import os
    import subprocess

    expected = plan.bisect_paths(config) + plan.sharpness_paths(config)
    command = [sys.executable, "-m", "milr", "-q", "aggregate", "--allow-missing"]
    command += ["--eta-out", f"{R}/partial/eta_star.csv"]
    command += ["--sharpness-out", f"{R}/partial/sharpness.csv", *expected]
    subprocess.run(
        command, env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}, check=False
    )
    print(plan.stopped_note(R, sys.argv))


def finished():
    """After a finished run: the stopped runs' partial tables go; where to look is said."""
    import shutil

    shutil.rmtree(f"{R}/partial", ignore_errors=True)  # written by partial_tables only
    print(plan.closing_note(R, sys.argv, sys.executable))
