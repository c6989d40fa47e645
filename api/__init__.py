"""textfleet's HTTP intake: a FastAPI app that validates jobs, records them and enqueues them by name.

Nothing under `api/` imports the workers (or torch / vllm): jobs cross to workers by Celery task name
through `shared.queueing`. The ASGI app is `api.app:app`; tests build their own with `create_app()`.
"""
