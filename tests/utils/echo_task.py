"""A throwaway `echo` task, registered only by tests, to prove that adding a task is one spec and its
handler (tests/shared/test_tasks.py, tests/workers/test_handlers.py)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from shared.schemas import ClassifyParams, TextInput
from shared.tasks import TASKS, Engine, Queue, TaskRegistry, TaskSpec
from workers.handlers import HandlerResult
from workers.runtime import WorkerRuntime

__all__ = ["ECHO", "EchoResult", "echo", "registry_with_echo", "task_names"]


class EchoResult(BaseModel):
    """The echo task's result: the text, unchanged."""

    echo: str


def echo(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ClassifyParams, timeout_s: float | None
) -> HandlerResult:
    """The echo task's handler."""
    return HandlerResult(EchoResult(echo=input_.text).model_dump())


#: The whole definition of the echo task.
ECHO = TaskSpec(
    name="echo",
    queue=Queue.CLASSIFY,
    engine=Engine.CLASSIFIER,
    input="shared.schemas:TextInput",
    params="shared.schemas:ClassifyParams",
    result="tests.utils.echo_task:EchoResult",
    handler="tests.utils.echo_task:echo",
    summary="the text, unchanged",
)


def registry_with_echo() -> TaskRegistry:
    """The built-in tasks plus `echo`."""
    return TASKS.with_tasks(ECHO)


def task_names(registry: TaskRegistry) -> type[StrEnum]:
    """A `TaskName` enum for `registry`, built as shared.tasks builds it for `TASKS`."""
    return StrEnum("TaskName", [(name.upper(), name) for name in registry.names])
