"""The task registry: every per-task table derives from `TASKS`, and a new spec flows through all of them."""

from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared.constants import TASK_QUEUES, Queue, TaskName, celery_task_name
from shared.queueing import make_celery
from shared.schemas import (
    JOB_CREATE_MODELS,
    ClassifyParams,
    TextInput,
    job_create_models,
    job_create_union,
    parse_job_payload,
)
from shared.settings import get_settings
from shared.tasks import TASKS, Engine, TaskRegistry, TaskSpec, resolve
from tests.utils.echo_task import ECHO, registry_with_echo
from workers.classifiers.suite import CLASSIFIER_TASKS
from workers.handlers import HANDLERS


def test_the_builtin_tasks_keep_their_names_and_queues() -> None:
    assert list(TaskName) == ["generate", "summarize", "moderate", "risk", "sentiment", "extract", "entities"]
    assert TaskName("moderate").name == "MODERATE"
    assert dict(TASK_QUEUES) == {
        "generate": Queue.GENERATE,
        "summarize": Queue.GENERATE,
        "moderate": Queue.CLASSIFY,
        "risk": Queue.CLASSIFY,
        "sentiment": Queue.CLASSIFY,
        "extract": Queue.GENERATE,
        "entities": Queue.CLASSIFY,
    }


def test_every_table_is_derived_from_the_registry() -> None:
    assert [t.value for t in TaskName] == list(TASKS.names)
    assert dict(TASK_QUEUES) == TASKS.queues()
    assert list(JOB_CREATE_MODELS) == list(TASKS.names)
    assert list(HANDLERS) == list(TASKS.names)
    assert list(CLASSIFIER_TASKS) == list(TASKS.by_engine(Engine.CLASSIFIER))
    for spec in TASKS:
        model = JOB_CREATE_MODELS[spec.name]
        assert model.model_fields["input"].annotation is spec.input_model()
        assert model.model_fields["params"].annotation is spec.params_model()
        assert issubclass(spec.result_model(), BaseModel)


def test_every_handler_is_typed_with_its_task_models() -> None:
    for spec in TASKS:
        handler = HANDLERS[spec.name]  # resolving checks the input and params annotations
        hints = typing.get_type_hints(handler)
        assert hints["input_"] is spec.input_model()
        assert hints["params"] is spec.params_model()


def test_a_throwaway_task_is_accepted_routed_and_parsed() -> None:
    registry = registry_with_echo()
    adapter: TypeAdapter[object] = TypeAdapter(job_create_union(job_create_models(registry)))
    body = adapter.validate_python({"task": "echo", "input": {"text": "hi"}, "priority": 7})
    assert type(body).__name__ == "EchoJobCreate"
    assert isinstance(body.input, TextInput) and body.input.text == "hi"  # type: ignore[attr-defined]
    assert isinstance(body.params, ClassifyParams)  # type: ignore[attr-defined]
    with pytest.raises(ValidationError) as err:
        adapter.validate_python({"task": "echo", "input": {"txt": "hi"}})
    assert {e["loc"][:2] for e in err.value.errors()} >= {("echo", "input")}
    # The built-in schema does not know it: the registry is what decides.
    with pytest.raises(ValidationError):
        TypeAdapter(job_create_union(JOB_CREATE_MODELS)).validate_python({"task": "echo", "input": {}})
    # Routing: its queue, and the Celery route of its task name.
    assert registry.queues()["echo"] is Queue.CLASSIFY
    assert celery_task_name("echo") == "textfleet.echo"
    # The worker's side parses the stored payload with the spec's models.
    input_, params = parse_job_payload("echo", {"text": "hi"}, {"timeout_s": 3}, registry)
    assert isinstance(input_, TextInput) and isinstance(params, ClassifyParams) and params.timeout_s == 3


def test_celery_routes_follow_the_registry() -> None:
    routes = make_celery(get_settings()).conf.task_routes
    for spec in TASKS:
        assert routes[celery_task_name(spec.name)] == {"queue": spec.queue.value}


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        TASKS.with_tasks(TaskSpec(**{**ECHO.__dict__, "name": "risk"}))
    with pytest.raises(ValueError, match="lowercase"):
        TaskSpec(**{**ECHO.__dict__, "name": "Echo"})
    with pytest.raises(ValueError, match="module:attribute"):
        TaskSpec(**{**ECHO.__dict__, "handler": "tests.utils.echo_task.echo"})
    with pytest.raises(TypeError, match="not a pydantic model"):
        TaskSpec(**{**ECHO.__dict__, "result": "tests.utils.echo_task:echo"}).result_model()
    assert resolve("shared.tasks:TASKS") is TASKS
    assert isinstance(registry_with_echo(), TaskRegistry) and "echo" in registry_with_echo()
