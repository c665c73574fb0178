rule aggregate:
    """Tidy tables: one row per bisection job and per sharpness job."""
    input:
        eta=plan.bisect_paths(config),
        sharpness=plan.sharpness_paths(config),
    output:
        eta=report(
            f"{R}/tables/eta_star.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        sharpness=report(
            f"{R}/tables/sharpness.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        probes=report(
            f"{R}/tables/probes.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        study=f"{R}/tables/study.json",
    log:
        f"{R}/logs/aggregate.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        study=plan.study_args(config),
        code=CODE["tables"],
    shell:
        "milr aggregate --eta-out {output.eta} --sharpness-out {output.sharpness}"
        " --probes-out {output.probes} --study-out {output.study} {params.study}"
        " {input.eta} {input.sharpness} > {log} 2>&1"


rule fit:
    """Power laws eta* ~ C (depth x width)^-alpha and the same for lambda1, with 95% intervals."""
    input:
        eta=rules.aggregate.output.eta,
        sharpness=rules.aggregate.output.sharpness,
    output:
        report(f"{R}/tables/fits.csv", caption="../report/table.rst", category="Tables"),
    log:
        f"{R}/logs/fit.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        args=plan.fit_args(config),
        code=CODE["fit"],
    shell:
        "milr fit --eta {input.eta} --sharpness {input.sharpness} --out {output}"
        " {params.args} > {log} 2>&1"
