if config["search"]["batch_seeds"]:

    rule bisect_seeds:
        """eta* of one architecture for every seed at once: the seeds' searches advance in
        lockstep and each round trains their probes together (one stack with the batched
        trainer). Writes the same per-seed files as the one-seed rule below."""
        input:
            data=DATA_OUT,
        output:
            expand(BISECT_OUT, seed=config["seeds"], allow_missing=True),
        log:
            f"{R}/logs/bisect/{{dataset}}/{{variant}}/t{{threshold}}/d{{depth}}-w{{width}}-all.log",
        benchmark:
            f"{R}/benchmarks/bisect/{{dataset}}/{{variant}}/t{{threshold}}/d{{depth}}-w{{width}}-all.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU,
        params:
            args=lambda wc: plan.bisect_args(
                config, wc.dataset, wc.variant, wc.threshold
            ),
            seeds=" ".join(str(s) for s in config["seeds"]),
            journals=lambda wc: [
                journal_path({**wc, "seed": s}) for s in config["seeds"]
            ],
            device=config["device"],
            code=CODE["bisect"],
        shell:
            "milr bisect --dataset {wildcards.dataset} --data {input.data}"
            " --depth {wildcards.depth} --width {wildcards.width} --seed {params.seeds}"
            " {params.args} --journal {params.journals} --out {output}"
            " --device {params.device} --threads {threads} > {log} 2>&1"

else:

    rule bisect:
        """eta* of one architecture and seed (Algorithm 1 unless the config picks another
        search)."""
        input:
            data=DATA_OUT,
        output:
            BISECT_OUT,
        log:
            f"{R}/logs/bisect/{{dataset}}/{{variant}}/t{{threshold}}/d{{depth}}-w{{width}}-s{{seed}}.log",
        benchmark:
            f"{R}/benchmarks/bisect/{{dataset}}/{{variant}}/t{{threshold}}/d{{depth}}-w{{width}}-s{{seed}}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            gpu=GPU,
        params:
            args=lambda wc: plan.bisect_args(
                config, wc.dataset, wc.variant, wc.threshold
            ),
            journal=journal_path,
            device=config["device"],
            code=CODE["bisect"],
        shell:
            "milr bisect --dataset {wildcards.dataset} --data {input.data}"
            " --depth {wildcards.depth} --width {wildcards.width} --seed {wildcards.seed}"
            " {params.args} --journal {params.journal} --out {output}"
            " --device {params.device} --threads {threads} > {log} 2>&1"
