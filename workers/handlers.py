"""The worker's dispatch: what a task's handler looks like, and `HANDLERS`, derived from the task registry.

Each task's handler is named in its `shared.tasks.TaskSpec` by a dotted path and imported on first use,
so a worker imports only the handlers of the tasks it runs. A handler takes the job's input and params
already parsed with its task's models (`shared.schemas.parse_job_payload`), typed as those models.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from shared.tasks import TASKS, TaskRegistry, TaskSpec, resolve

if TYPE_CHECKING:
    from workers.runtime import WorkerRuntime

__all__ = ["HANDLERS", "Handler", "HandlerResult", "Handlers"]

In = TypeVar("In", bound=BaseModel, contravariant=True)
P = TypeVar("P", bound=BaseModel, contravariant=True)


@dataclass(frozen=True)
class HandlerResult:
    """A task's result object and, for generation, the tokens it used."""

    result: dict[str, Any]
    usage: dict[str, int] | None = None


class Handler(Protocol[In, P]):
    """Runs one job of a task: (runtime, job id, input, params, timeout) -> its result."""

    def __call__(
        self, rt: WorkerRuntime, job_id: str, input_: In, params: P, timeout_s: float | None, /
    ) -> HandlerResult: ...


class Handlers(Mapping[str, Handler[Any, Any]]):
    """Task name -> handler for the tasks of `registry`, each imported on first use."""

    def __init__(self, registry: TaskRegistry = TASKS) -> None:
        self.registry = registry
        self._resolved: dict[str, Handler[Any, Any]] = {}

    def __getitem__(self, task: str) -> Handler[Any, Any]:
        name = str(task)
        handler = self._resolved.get(name)
        if handler is None:
            handler = self._resolved[name] = _load(self.registry[name])
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.names)

    def __len__(self) -> int:
        return len(self.registry)


def _load(spec: TaskSpec) -> Handler[Any, Any]:
    """The handler `spec` names, checked: callable, and its input and params typed as the spec's models."""
    handler = resolve(spec.handler)
    if not callable(handler):
        raise TypeError(f"{spec.name}: {spec.handler} is not callable")
    parameters = list(inspect.signature(handler, eval_str=True).parameters.values())
    typed = [p.annotation for p in parameters[2:4]]
    expected = [spec.input_model(), spec.params_model()]
    if len(parameters) != 5 or typed != expected:
        raise TypeError(
            f"{spec.name}: {spec.handler} must take (rt, job_id, input_: {expected[0].__name__}, "
            f"params: {expected[1].__name__}, timeout_s)"
        )
    handler_: Handler[Any, Any] = handler
    return handler_


#: The handler of every registered task (`HANDLERS[task](rt, job_id, input_, params, timeout_s)`).
HANDLERS: Mapping[str, Handler[Any, Any]] = Handlers()
