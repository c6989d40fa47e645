"""textfleet's HTTP intake: a FastAPI app that validates jobs, records them and enqueues them by name.

Nothing under `api/` imports the workers (or torch / vllm): jobs cross to workers by Celery task name
through `shared.queueing`. The ASGI app is `api.app:app`; tests build their own with `create_app()`.

Shape (every feature follows it; `api/jobs/` is the full example):

- `api/<feature>/router.py`: thin routes. A route validates (models), calls a service, shapes the
  HTTP answer; no SQL, no Redis commands, no business rules. It gets settings, sessions and
  services only from `api/deps.py` (`SettingsDep`, `SessionDep`, `JobsDep`, ...), never from
  `request.app.state` or by opening a session itself.
- `api/<feature>/protocol.py`: the HTTP request/response models that are not part of `shared/`
  (what workers also read lives in `shared/schemas.py` / `shared/results.py`).
- `api/<feature>/service.py`: the logic. Plain functions that take a `Session` (for `def` routes
  using `SessionDep`) and, where a feature needs state or runs off the request (async routes,
  batchers, subscriptions), a service class built ONCE in `api.app._start_services` and held on
  `app.state`, with a getter and an `Annotated` alias added to `api/deps.py`. Larger concerns get
  their own module beside it (jobs: `creation.py`, `idempotency.py`, `reads.py`, `intake.py` for the
  group commit, `waits.py` for long polling).
- Errors: raise the shared error tree (`shared.errors`); `api/errors.py` is the only HTTP mapping.
- Limits: request models read the limits in force through `shared.limits`, which the app sets per
  request from its own settings.
- Authentication: `api/auth/` is not a feature but serves them all: every `/v1` router is included
  with its `authenticate` dependency, and routes ask `api.deps` for the scope they need
  (`ReaderDep`, `WriterDep`, `AdminDep`).
- Wiring: include the router in `api.app.create_app`; tests mirror the tree (`tests/api/<feature>/`).

Imports flow one way: `app` -> `<feature>.router` -> `deps` -> `<feature>.service` -> `shared`;
a service never imports a router, `deps` or `app`.
"""
