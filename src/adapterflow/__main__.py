"""``python -m adapterflow STEP ...``: one step of the workflow outside Snakemake
(:mod:`adapterflow.steps`)."""

from adapterflow.steps import main

if __name__ == "__main__":
    main()
