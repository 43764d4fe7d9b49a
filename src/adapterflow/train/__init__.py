"""Training: tokenize triplets once, then train LoRA adapters with sentence-transformers.

- :mod:`~adapterflow.train.tokenize` — triplets JSONL → a ``datasets`` directory of token ids;
- :mod:`~adapterflow.train.collator` — pads pre-tokenized columns per batch for the trainer;
- :mod:`~adapterflow.train.sampler` — length-grouped batches without duplicate texts;
- :mod:`~adapterflow.train.losses` — the configured contrastive loss;
- :mod:`~adapterflow.train.callbacks` — ``train_log.jsonl`` (loss, lr, throughput, memory);
- :mod:`~adapterflow.train.merge` — writes the ``adapterflow.json`` of adapters trained on a
  merged base (:mod:`adapterflow.models` reads it);
- :mod:`~adapterflow.train.adapter` — :func:`~adapterflow.train.adapter.train_adapter`.
"""
