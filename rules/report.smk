localrules:
    figures,


rule aggregate:
    input:
        evals=eval_outputs(".json"),
    output:
        csv=report(
            "results/tables/metrics.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        md=report(
            "results/tables/summary.md",
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        "results/logs/aggregate/aggregate.log",
    conda:
        "../envs/cpu.yaml"
    params:
        library=library_code("aggregate.py"),
    script:
        "../scripts/aggregate.py"


rule figures:
    input:
        metrics="results/tables/metrics.csv",
        details=embedding_eval_outputs(".details.csv"),
    output:
        bars=report(
            figure_outputs("bars"),
            caption="../report/figures_tasks.rst",
            category="Figures",
            subcategory="Per task",
        ),
        heatmap=report(
            figure_outputs("heatmap"),
            caption="../report/figures_heatmap.rst",
            category="Figures",
            subcategory="Overview",
        ),
        per_item=report(
            figure_outputs("per_item"),
            caption="../report/figures_per_item.rst",
            category="Figures",
            subcategory="Per item",
        ),
    log:
        "results/logs/figures/figures.log",
    conda:
        "../envs/cpu.yaml"
    params:
        out_dir=lambda wc, output: os.path.dirname(output.heatmap[0]),
        # The encoders' tasks; causal-LM tasks have figures of their own.
        tasks=evaluated_tasks(),
        library=library_code("figures.py"),
    script:
        "../scripts/figures.py"
