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
    """Power laws eta* ~ C (depth x width)^-alpha and the same for lambda1, with 95% intervals;
    the paper's law beside its rivals (with and without depth 1); within-depth width slopes.
    """
    input:
        eta=rules.aggregate.output.eta,
        sharpness=rules.aggregate.output.sharpness,
        study=rules.aggregate.output.study,
    output:
        fits=report(
            f"{R}/tables/fits.csv", caption="../report/table.rst", category="Tables"
        ),
        laws=report(
            f"{R}/tables/laws.csv", caption="../report/table.rst", category="Tables"
        ),
        slopes=report(
            f"{R}/tables/slopes.csv", caption="../report/table.rst", category="Tables"
        ),
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
        "milr fit --eta {input.eta} --sharpness {input.sharpness} --study {input.study}"
        " --out {output.fits} --laws-out {output.laws} --slopes-out {output.slopes}"
        " {params.args} > {log} 2>&1"


rule validate:
    """Leave-one-architecture-out: each architecture predicted by the law refitted without it,
    and how often its measured eta* falls inside the prediction interval."""
    input:
        eta=rules.aggregate.output.eta,
        fits=rules.fit.output.fits,
        study=rules.aggregate.output.study,
    output:
        loao=report(
            f"{R}/tables/loao.csv", caption="../report/table.rst", category="Tables"
        ),
        coverage=report(
            f"{R}/tables/loao_coverage.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
    log:
        f"{R}/logs/validate.log",
    localrule: True
    conda:
        "../../envs/analysis.yaml"
    threads: 1
    params:
        args=plan.predict_args(config),
        code=CODE["predict"],
    shell:
        "milr validate --eta {input.eta} --fits {input.fits} --study {input.study}"
        " --out {output.loao}"
        " --summary-out {output.coverage} {params.args} > {log} 2>&1"
