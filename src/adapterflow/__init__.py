"""adapterflow: raw text to evaluated LoRA adapters, one Snakemake rule per step.

The library is plain Python with no Snakemake import; the workflow's scripts call it.
"""

__version__ = "0.1.0"
