rule sharpness:
    """lambda1 (top Hessian eigenvalue of the loss) of one freshly initialised network."""
    input:
        data=f"{R}/data/{{dataset}}.pt",
    output:
        SHARPNESS_OUT,
    log:
        f"{R}/logs/sharpness/{{dataset}}/d{{depth}}-w{{width}}-s{{seed}}.log",
    benchmark:
        f"{R}/benchmarks/sharpness/{{dataset}}/d{{depth}}-w{{width}}-s{{seed}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    resources:
        gpu=GPU,
    params:
        args=plan.sharpness_args(config),
        device=config["device"],
        code=CODE["sharpness"],
    shell:
        "milr sharpness --dataset {wildcards.dataset} --data {input.data}"
        " --depth {wildcards.depth} --width {wildcards.width} --seed {wildcards.seed}"
        " {params.args} --out {output} --device {params.device} --threads {threads} > {log} 2>&1"
