"""textfleet workers: the Celery app, job execution, engines (vLLM) and classifiers (PyTorch).

Heavy dependencies (vllm, torch, transformers) are imported lazily, inside the functions that load
models, so importing this package stays cheap.
"""

__all__ = ["celery_app", "execution", "handlers", "runtime", "worker"]
