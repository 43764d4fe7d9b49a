"""``python -m adapterflow STEP ...``: one step of the workflow outside Snakemake, its
``scripts/STEP.py`` run with the rule's names from the command line (:mod:`adapterflow.steps`)."""

from adapterflow.steps import main

if __name__ == "__main__":
    main()
