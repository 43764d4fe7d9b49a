"""Build an SFT set: chat records tokenized with an LM's chat template, labels on assistant
tokens only.

Rule build_sft (adapterflow.train.sft.build_sft). input: lm (the converted LM directory) and
one of qa (a generate_qa directory), niah (a generate_niah JSONL) or chat (a chat JSONL);
params: sft (the sft block), name; output: the SFT directory (results/sft/{lm}/{sft}).

Outside Snakemake, with the rule's names:
    python -m adapterflow build_sft --input lm=results/lms/smollm2 \\
        --input chat=data/chats.jsonl --output results/sft/smollm2/chats \\
        --param 'sft={"chat": "data/chats.jsonl", "max_length": 512}' --param name=chats
"""

import logging

from adapterflow.cli import running
from adapterflow.train.sft import build_sft

logger = logging.getLogger("build_sft")

if __name__ == "__main__":
    with running(snakemake.log, rule=True, logger=logger):
        build_sft(
            snakemake.params.sft,
            snakemake.input.lm,
            snakemake.output[0],
            qa=snakemake.input.get("qa"),
            niah=snakemake.input.get("niah"),
            chat=snakemake.input.get("chat"),
            name=snakemake.params.get("name") or "sft",
        )
