"""PyTorch classifiers of classify workers: moderation, risk and sentiment over one sentence encoder.

* `encoder.SentenceEncoder`: all-MiniLM-L6-v2-style sentence embeddings (mean pooling, L2 norm).
* `heads`: the per-task heads and their safetensors storage; `seeds` + `training`: how they are
  trained at `textfleet models prepare` time (`training.prepare_heads`).
* `workers.batching.MicroBatcher` (shared with the DB path) gathers single requests into batches.
* `suite.EncoderClassifierSuite`: the `base.ClassifierSuite` that workers use.

Importing this package is cheap: torch and transformers are imported when models are loaded.
"""

from __future__ import annotations

from workers.classifiers.base import ClassifierSuite

__all__ = ["ClassifierSuite"]
