# lambda1 and the LR range tests of one architecture in one job (config small_jobs_together):
# one process, so one GPU slot, one CUDA start-up, one data load and, on SLURM, one queue wait
# instead of 1 + variants. The results are the separate rules' (same commands, same files).
if config["small_jobs_together"]:

    rule sharpness_range_test:
        """lambda1 of one architecture's freshly initialised networks and their LR range tests
        (every seed, every input-LR variant), run by `milr together` in one process.
        """
        input:
            data=DATA_OUT,
        output:
            sharpness=expand(SHARPNESS_OUT, seed=config["seeds"], allow_missing=True),
            range_tests=expand(
                RANGE_TEST_OUT,
                variant=list(config["input_lr_variants"]),
                seed=config["seeds"],
                allow_missing=True,
            ),
        log:
            f"{R}/logs/sharpness_range_test/{{dataset}}/d{{depth}}-w{{width}}.log",
        benchmark:
            f"{R}/benchmarks/sharpness_range_test/{{dataset}}/d{{depth}}-w{{width}}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU,
        params:
            # a function of the wildcards alone: Snakemake leaves params derived from input or
            # output files out of its params trigger, and a changed ramp must rerun this job
            commands=lambda wc: plan.small_jobs_commands(
                config, wc.dataset, wc.depth, wc.width
            ),
            device=config["device"],
            code=CODE["sharpness_range_test"],
        shell:
            "milr together --device {params.device} --threads {threads} {params.commands}"
            " > {log} 2>&1"
