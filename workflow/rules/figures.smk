# One rule per paper figure (figure_<name>), defined in a loop: each writes a PNG for the
# report, a PDF for papers and a caption file that the report includes.
for figure_name in FIGURES:

    rule:
        name:
            f"figure_{figure_name}"
        input:
            **figure_tables(figure_name),
            eta=rules.aggregate.output.eta,
            sharpness=rules.aggregate.output.sharpness,
            fits=rules.fit.output.fits,
            probes=rules.aggregate.output.probes,
            study=rules.aggregate.output.study,
        output:
            png=report(
                f"{R}/figures/{figure_name}.png",
                caption="../report/figure.rst",
                category="Figures",
                labels={"figure": figure_name},
            ),
            pdf=f"{R}/figures/{figure_name}.pdf",
            caption=f"{R}/figures/{figure_name}.txt",
        log:
            f"{R}/logs/figures/{figure_name}.log",
        localrule: True
        conda:
            "../../envs/analysis.yaml"
        threads: 1
        params:
            name=figure_name,
            config_name=CONFIG_NAME,
            code=CODE["figures"],
            tables=" ".join(
                f"--{option.replace('_', '-')} {path}"
                for option, path in figure_tables(figure_name).items()
            ),
        shell:
            "milr figure {params.name} --eta {input.eta} --sharpness {input.sharpness}"
            " --fits {input.fits} --probes {input.probes} --study {input.study}"
            " {params.tables} --config-name {params.config_name:q}"
            " --png {output.png} --pdf {output.pdf}"
            " --caption {output.caption} > {log} 2>&1"
