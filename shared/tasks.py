"""The task registry: one `TaskSpec` per task, and every per-task table derived from it.

A task is defined here and nowhere else. From `TASKS` derive:

- `TaskName` (the enum of task names: `task` in `POST /v1/jobs`, `JobOut.task`, the `task` filter),
  re-exported by `shared.constants`;
- routing: `TASK_QUEUES` (task -> Celery queue), re-exported by `shared.constants`, and the Celery
  routes and task names built from it (`shared.queueing`, `workers.celery_app`);
- the API schema: `shared.schemas.JobCreate`, the union discriminated on `task` of one
  `<Task>JobCreate` model per spec (`job_create_models`), and `parse_job_payload`;
- the worker's dispatch: `workers.handlers.HANDLERS` resolves each spec's `handler` on first use;
- the classifier task set: `workers.classifiers.suite.CLASSIFIER_TASKS` (specs with engine `classifier`);
- README's tasks table (`python -m shared.docs` prints it; a test keeps README in step).

Models and handlers are named by dotted `"module:attribute"` strings and imported lazily: this module
imports nothing of the project, so the lowest modules (`shared.constants`) can derive from it, and the
API, which reads the same specs, never imports a worker module.

How to add a task (say `entities`):

1. Its input, params and result models: reuse `shared.schemas.TextInput` / `ClassifyParams` or add
   models to `shared/schemas.py` (inputs, params; params extend `_Deadlines`) and `shared/results.py`.
2. Its handler, a function anywhere under `workers/` with the `workers.handlers.Handler` signature
   and typed arguments: `def handle(rt: WorkerRuntime, job_id: str, input_: TextInput,
   params: ClassifyParams, timeout_s: float | None) -> HandlerResult`.
3. One `TaskSpec(...)` appended to `TASKS` below, naming those by their dotted paths.
4. Run `python -m shared.docs --write-readme` to regenerate README's tasks table.

Nothing else: the API accepts it, the queue routes it, the worker registers and dispatches it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Any

from pydantic import BaseModel

__all__ = [
    "TASKS",
    "TASK_QUEUES",
    "Engine",
    "Queue",
    "TaskName",
    "TaskRegistry",
    "TaskSpec",
    "resolve",
]


class Queue(StrEnum):
    """Celery queues (Redis lists) that workers consume."""

    GENERATE = "generate"  # served by generation workers (one vLLM engine each)
    CLASSIFY = "classify"  # served by classifier workers (one encoder + heads each)
    WEBHOOKS = "webhooks"  # served by webhook workers (HTTP deliveries, no model)


class Engine(StrEnum):
    """The model a task's handler runs on."""

    VLLM = "vllm"  # the worker's vLLM engine (`WorkerRuntime.require_generation`)
    CLASSIFIER = "classifier"  # the worker's encoder + heads (`WorkerRuntime.require_classifiers`)


def resolve(path: str) -> Any:
    """The object a dotted `"package.module:attribute"` path names (imports the module)."""
    module, sep, attribute = path.partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"{path!r} is not a 'module:attribute' path")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class TaskSpec:
    """Everything about one task; `TASKS` holds one per task."""

    name: str  # the `task` of `POST /v1/jobs`; also the Celery task `textfleet.<name>`
    queue: Queue  # the Celery queue that carries its jobs
    engine: Engine  # the model its handler needs
    input: str  # "module:Model" of `input` (a shared.validation.RequestModel)
    params: str  # "module:Model" of `params` (every field has a default: `params` may be omitted)
    result: str  # "module:Model" of `result`
    handler: str  # "module:function" run by the worker (workers.handlers.Handler); the API never imports it
    summary: str = ""  # one line for the docs

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", self.name):
            raise ValueError(f"task name {self.name!r} must be lowercase letters, digits and _")
        for path in (self.input, self.params, self.result, self.handler):
            if path.count(":") != 1:
                raise ValueError(f"{self.name}: {path!r} is not a 'module:attribute' path")

    def input_model(self) -> type[BaseModel]:
        """The model of the task's `input`."""
        return _model(self.input)

    def params_model(self) -> type[BaseModel]:
        """The model of the task's `params`."""
        return _model(self.params)

    def result_model(self) -> type[BaseModel]:
        """The model of the task's `result`."""
        return _model(self.result)


@cache
def _model(path: str) -> type[BaseModel]:
    model = resolve(path)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{path!r} is not a pydantic model")
    return model


@dataclass(frozen=True)
class TaskRegistry:
    """An ordered set of task specs (order = the docs' and the schema union's order)."""

    specs: tuple[TaskSpec, ...]
    _by_name: dict[str, TaskSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, TaskSpec] = {}
        for spec in self.specs:
            if spec.name in by_name:
                raise ValueError(f"task {spec.name!r} is registered twice")
            by_name[spec.name] = spec
        object.__setattr__(self, "_by_name", by_name)

    def __iter__(self) -> Iterator[TaskSpec]:
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> TaskSpec:
        """The spec of task `name` (a `TaskName` or its value); KeyError for an unknown task."""
        return self._by_name[str(name)]

    @property
    def names(self) -> tuple[str, ...]:
        """Task names in registry order."""
        return tuple(spec.name for spec in self.specs)

    def with_tasks(self, *specs: TaskSpec) -> TaskRegistry:
        """A registry with `specs` added (tests use it to register throwaway tasks)."""
        return TaskRegistry((*self.specs, *specs))

    def queues(self) -> dict[str, Queue]:
        """Which queue carries which task."""
        return {spec.name: spec.queue for spec in self.specs}

    def by_engine(self, engine: Engine) -> tuple[str, ...]:
        """The names of the tasks that run on `engine`."""
        return tuple(spec.name for spec in self.specs if spec.engine is engine)


#: Every task textfleet runs. Append a spec here to add one (see the module docstring).
TASKS = TaskRegistry(
    (
        TaskSpec(
            name="generate",
            queue=Queue.GENERATE,
            engine=Engine.VLLM,
            input="shared.schemas:GenerateInput",
            params="shared.schemas:GenerateParams",
            result="shared.results:GenerateResult",
            handler="workers.generation:generate",
            summary="free text generation (prompt or chat), optionally constrained and moderated",
        ),
        TaskSpec(
            name="summarize",
            queue=Queue.GENERATE,
            engine=Engine.VLLM,
            input="shared.schemas:TextInput",
            params="shared.schemas:SummarizeParams",
            result="shared.results:SummarizeResult",
            handler="workers.generation:summarize",
            summary="a two or three sentence summary of a text",
        ),
        TaskSpec(
            name="moderate",
            queue=Queue.CLASSIFY,
            engine=Engine.CLASSIFIER,
            input="shared.schemas:TextInput",
            params="shared.schemas:ModerateParams",
            result="shared.results:ModerationResult",
            handler="workers.classify:moderate",
            summary="OpenAI-style moderation over 13 categories (or a custom model's labels); "
            "per-request `categories` and `thresholds`",
        ),
        TaskSpec(
            name="risk",
            queue=Queue.CLASSIFY,
            engine=Engine.CLASSIFIER,
            input="shared.schemas:TextInput",
            params="shared.schemas:ClassifyParams",
            result="shared.results:RiskResult",
            handler="workers.classify:risk",
            summary="fraud / financial-risk score (0..1) and `level`: low, medium or high",
        ),
        TaskSpec(
            name="sentiment",
            queue=Queue.CLASSIFY,
            engine=Engine.CLASSIFIER,
            input="shared.schemas:TextInput",
            params="shared.schemas:ClassifyParams",
            result="shared.results:SentimentResult",
            handler="workers.classify:sentiment",
            summary="`label`: negative, neutral or positive, with `scores`",
        ),
        TaskSpec(
            name="extract",
            queue=Queue.GENERATE,
            engine=Engine.VLLM,
            input="shared.schemas:TextInput",
            params="shared.schemas:ExtractParams",
            result="shared.results:ExtractResult",
            handler="workers.extract:handle",
            summary="JSON valid against a JSON Schema (constrained decoding)",
        ),
        TaskSpec(
            name="entities",
            queue=Queue.CLASSIFY,
            engine=Engine.CLASSIFIER,
            input="shared.schemas:TextInput",
            params="shared.schemas:ClassifyParams",
            result="shared.results:EntitiesResult",
            handler="workers.classify:entities",
            summary="named entities with character offsets: PERSON, ORG, LOCATION, MISC (entity head); "
            "MONEY, DATE, EMAIL, PHONE, URL (exact rules); `text == input.text[start:end]`",
        ),
    )
)

#: The kinds of job a client can submit, derived from `TASKS` (members: `TaskName.MODERATE`, ...).
TaskName = StrEnum("TaskName", [(name.upper(), name) for name in TASKS.names], module=__name__)  # type: ignore[misc]
TaskName.__doc__ = "The kinds of job a client can submit (`task` in `POST /v1/jobs`)."
#: Which queue carries which task, derived from `TASKS`.
TASK_QUEUES: Mapping[str, Queue] = TASKS.queues()
