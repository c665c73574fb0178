# milr: maximal initial learning rates of deep ReLU networks (Iyer, Hanin & Rolnick, ICML 2023).
#   snakemake --cores 8 --resources gpu=4                 # config.yaml: 2 GPUs x jobs_per_gpu 2
#   snakemake --cores 2 --configfile presets/quick.yaml   # the CPU preset
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/sharpness.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/small_jobs.smk"
include: "workflow/rules/figures.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),


onstart:
    check_gpus()


onerror:
    partial_tables()


onsuccess:
    finished()
