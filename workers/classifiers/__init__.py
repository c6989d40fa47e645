"""PyTorch classifiers of classify workers: moderation, risk and sentiment over one sentence encoder.

* `encoder.SentenceEncoder`: all-MiniLM-L6-v2 with mean pooling (any layers' hidden states).
* `heads`: calibrated MLP heads (model directories); `defaults/` holds the shipped ones, trained
  from `../shared/data` by `textfleet.training` (`make models-train`; also `textfleet eval`) and
  installed by `textfleet models prepare` (`textfleet.models.heads`).
* `registry`: custom models under `models_dir/custom`; `policy`: per-request moderation policy.
* `workers.batching.MicroBatcher` (shared with the DB path) gathers single requests into batches.
* `suite.EncoderClassifierSuite`: the `base.ClassifierSuite` that workers use.

Importing this package is cheap: torch and transformers are imported when models are loaded.
"""

from __future__ import annotations

from workers.classifiers.base import ClassifierSuite

__all__ = ["ClassifierSuite"]
