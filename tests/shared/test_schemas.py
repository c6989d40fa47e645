"""The job contract: request validation, statuses and payload parsing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.constants import TASK_QUEUES, Queue, TaskName, celery_task_name
from shared.schemas import (
    TERMINAL_STATUSES,
    GenerateInput,
    JobCreate,
    JobStatus,
    parse_job_payload,
)
from shared.settings import get_settings

adapter: TypeAdapter[object] = TypeAdapter(JobCreate)


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_statuses_are_exactly_the_six() -> None:
    assert [s.value for s in JobStatus] == ["queued", "running", "succeeded", "failed", "canceled", "expired"]
    assert {s for s in JobStatus if s.is_terminal} == TERMINAL_STATUSES
    assert not JobStatus.QUEUED.is_terminal and not JobStatus.RUNNING.is_terminal


def test_every_task_has_a_queue_and_name() -> None:
    assert set(TASK_QUEUES) == set(TaskName)
    assert TASK_QUEUES[TaskName.GENERATE] is Queue.GENERATE
    assert TASK_QUEUES[TaskName.MODERATE] is Queue.CLASSIFY
    assert celery_task_name("risk") == "textfleet.risk"


def _errors(body: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        adapter.validate_python(body)
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_unknown_task_lists_valid_ones() -> None:
    [(_loc, msg)] = _errors({"task": "translate", "input": {}})
    assert "generate" in msg and "sentiment" in msg


def test_generate_needs_exactly_one_of_prompt_or_messages() -> None:
    assert "exactly one" in _errors({"task": "generate", "input": {}})[0][1]
    both = {"task": "generate", "input": {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}}
    assert "exactly one" in _errors(both)[0][1]


def test_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTFLEET_MAX_INPUT_CHARS", "10")
    monkeypatch.setenv("TEXTFLEET_MAX_TOKENS_LIMIT", "50")
    monkeypatch.setenv("TEXTFLEET_DEFAULT_MAX_TOKENS", "20")
    [(loc, msg)] = _errors({"task": "sentiment", "input": {"text": "x" * 11}})
    assert loc.endswith("input.text") and "maximum is 10" in msg
    [(loc, msg)] = _errors({"task": "generate", "input": {"prompt": "x"}, "params": {"max_tokens": 51}})
    assert loc.endswith("params.max_tokens") and "maximum is 50" in msg
    with pytest.raises(ValidationError, match="maximum is 10"):
        GenerateInput(messages=[{"role": "user", "content": "123456"}, {"role": "user", "content": "123456"}])  # type: ignore[list-item]


def test_unknown_fields_and_bad_types_are_rejected() -> None:
    [(loc, _)] = _errors({"task": "moderate", "input": {"text": "hi", "lang": "en"}})
    assert loc.endswith("input.lang")
    [(loc, _)] = _errors({"task": "generate", "input": {"prompt": "x"}, "params": {"temperature": "hot"}})
    assert loc.endswith("params.temperature")
    [(loc, _)] = _errors({"task": "risk", "input": {"text": "x"}, "priority": 10})
    assert loc.endswith("priority")
    assert _errors(
        {"task": "generate", "input": {"prompt": "x"}, "params": {"max_tokens": 5, "min_tokens": 9}}
    )


def test_parse_job_payload_round_trip() -> None:
    input_, params = parse_job_payload("generate", {"prompt": "hi"}, {"max_tokens": 3, "stop": ["\n"]})
    assert input_.model_dump(exclude_none=True) == {"prompt": "hi"}
    assert params.max_tokens == 3  # type: ignore[attr-defined]
    with pytest.raises(ValidationError):
        parse_job_payload("sentiment", {"text": ""}, {})
