rule prepare:
    """Download (MNIST, CIFAR-10) or draw (Gaussian) a dataset into one compact cache file."""
    output:
        DATA_OUT,
    log:
        f"{R}/logs/prepare/{{dataset}}.log",
    cache: "omit-software"
    localrule: True
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        args=lambda wc: plan.data_args(config, wc.dataset),
        code=CODE["data"],
    shell:
        "milr prepare --dataset {wildcards.dataset} --out {output} {params.args} > {log} 2>&1"
