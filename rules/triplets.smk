rule make_pairs:
    input:
        dataset=lambda wc: f"results/clean/{config['pairs'][wc.pairs]['dataset']}",
        held_out=held_out_dirs(),
    output:
        "results/pairs/{pairs}.jsonl",
    log:
        "results/logs/make_pairs/{pairs}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        pairs=lambda wc: pairs_block(wc.pairs),
        held_out_splits=held_out_splits(),
        library=library_code("make_pairs.py"),
    script:
        "../scripts/make_pairs.py"


rule mine_triplets:
    input:
        unpack(mine_inputs),
    output:
        "results/triplets/{triplets}.jsonl",
    log:
        "results/logs/mine_triplets/{triplets}.log",
    benchmark:
        "results/benchmarks/mine_triplets/{triplets}.tsv"
    conda:
        "../envs/gpu.yaml"
    threads: 4
    resources:
        # Dense mining embeds every pair with the model; the other strategies are CPU work.
        gpu=lambda wc: int(config["triplets"][wc.triplets]["strategy"] == "dense"),
        mem_mb=lambda wc, attempt: 8000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    params:
        mining=lambda wc: triplets_block(wc.triplets),
        # How the pairs write a document (strategy, max_chars): corpus documents match it.
        pairs=lambda wc: pairs_block(config["triplets"][wc.triplets]["pairs"]),
        model=mining_model,
        held_out_splits=held_out_splits(),
        library=library_code("mine_triplets.py"),
    script:
        "../scripts/mine_triplets.py"
