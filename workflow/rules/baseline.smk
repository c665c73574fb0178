# The baseline practitioners use instead of eta*: the learning-rate range test (LR finder),
# run on every network of the main threshold's searches, and its table beside eta*.


if not config["small_jobs_together"]:

    rule range_test:
        """The LR range test of one architecture, every seed in one job: an exponential ramp of SGD
        rates until the loss diverges. Writes one result file per seed."""
        input:
            data=DATA_OUT,
        output:
            expand(RANGE_TEST_OUT, seed=config["seeds"], allow_missing=True),
        log:
            f"{R}/logs/range_test/{{dataset}}/{{variant}}/d{{depth}}-w{{width}}.log",
        benchmark:
            f"{R}/benchmarks/range_test/{{dataset}}/{{variant}}/d{{depth}}-w{{width}}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU,
        params:
            args=lambda wc: plan.range_test_args(config, wc.variant),
            seeds=" ".join(str(s) for s in config["seeds"]),
            device=config["device"],
            code=CODE["range_test"],
        shell:
            "milr range-test --dataset {wildcards.dataset} --data {input.data}"
            " --depth {wildcards.depth} --width {wildcards.width} --seed {params.seeds}"
            " {params.args} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"


rule lr_finder:
    """The range tests' suggestions beside eta*: per network, then the fractions above eta*
    and far below it, and the cost relative to one eta* search."""
    input:
        eta=rules.aggregate.output.eta,
        study=rules.aggregate.output.study,
        tests=plan.range_test_paths(config),
    output:
        table=report(
            f"{R}/tables/lr_finder.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        summary=report(
            f"{R}/tables/lr_finder_summary.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/lr_finder.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        code=CODE["baseline"],
    shell:
        "milr lr-finder --eta {input.eta} --study {input.study} --out {output.table}"
        " --summary-out {output.summary} {input.tests} > {log} 2>&1"
