if not config["small_jobs_together"]:

    rule sharpness:
        """lambda1 (top Hessian eigenvalue of the loss) of one architecture's freshly initialised
        networks, every seed in one job (one data load and, on a GPU, one CUDA start-up).
        """
        input:
            data=DATA_OUT,
        output:
            expand(SHARPNESS_OUT, seed=config["seeds"], allow_missing=True),
        log:
            f"{R}/logs/sharpness/{{dataset}}/d{{depth}}-w{{width}}.log",
        benchmark:
            f"{R}/benchmarks/sharpness/{{dataset}}/d{{depth}}-w{{width}}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU,
        params:
            args=plan.sharpness_args(config),
            seeds=" ".join(str(s) for s in config["seeds"]),
            device=config["device"],
            code=CODE["sharpness"],
        shell:
            "milr sharpness --dataset {wildcards.dataset} --data {input.data}"
            " --depth {wildcards.depth} --width {wildcards.width} --seed {params.seeds}"
            " {params.args} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
