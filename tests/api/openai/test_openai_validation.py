"""The OpenAI endpoints refuse what they cannot run, in OpenAI's error shape, with the official client
(over the app in-process), and store and enqueue nothing; `/v1/models` names the fleet's models."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import Broker, Rows


@pytest.fixture
def client(api: TestClient) -> openai.OpenAI:
    """The official client, talking to the app through the test client (no network, no retries)."""
    return openai.OpenAI(base_url="http://testserver/v1", api_key="textfleet", http_client=api, max_retries=0)


def _model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def _chat(client: openai.OpenAI, **body: Any) -> None:
    body.setdefault("model", _model(client))
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    client.chat.completions.create(**body)


CHAT_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("n above 1", {"n": 2}, "n"),
    ("tool role", {"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}, "messages.0.role"),
    ("no messages", {"messages": []}, "messages"),
    ("empty content", {"messages": [{"role": "user", "content": ""}]}, "messages.0.content"),
    ("image part", {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages.0"),
    ("temperature", {"temperature": 3}, "temperature"),
    ("max_tokens over the limit", {"max_tokens": 10**6}, "max_tokens"),
    ("max_completion_tokens over the limit", {"max_completion_tokens": 10**6}, "max_completion_tokens"),
    ("logprobs", {"logprobs": True}, "logprobs"),
    ("tools", {"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ("stream_options without stream", {"stream_options": {"include_usage": True}}, "stream_options"),
    ("bad response_format", {"response_format": {"type": "json_schema"}}, "response_format"),
    ("unknown parameter", {"extra_body": {"temprature": 0.5}}, "temprature"),
]


@pytest.mark.parametrize(("case", "body", "param"), CHAT_BAD, ids=[c[0] for c in CHAT_BAD])
def test_chat_completions_refuse_bad_requests(
    client: openai.OpenAI, rows: Rows, broker: Broker, case: str, body: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        _chat(client, **body)
    error = caught.value
    assert error.status_code == 400, case
    assert error.param is not None and error.param.startswith(param), (case, error.body)
    assert error.type == "invalid_request_error"
    assert rows.count() == 0 and broker.jobs() == {}


def test_unknown_model_is_a_404(client: openai.OpenAI, rows: Rows) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        _chat(client, model="gpt-4o-mini")
    assert caught.value.code == "model_not_found" and caught.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o-mini")
    assert rows.count() == 0


COMPLETION_BAD: list[tuple[str, dict[str, Any], str]] = [
    ("n above 1", {"n": 3}, "n"),
    ("best_of", {"best_of": 2}, "best_of"),
    ("echo", {"echo": True}, "echo"),
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("empty prompt in a list", {"prompt": ["fine", ""]}, "prompt.1"),
    ("token ids", {"prompt": [1, 2, 3]}, "prompt"),
]


@pytest.mark.parametrize(("case", "body", "param"), COMPLETION_BAD, ids=[c[0] for c in COMPLETION_BAD])
def test_completions_refuse_bad_requests(
    client: openai.OpenAI, rows: Rows, case: str, body: dict[str, Any], param: str
) -> None:
    body = {"model": _model(client), "prompt": "Once upon a time", **body}
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(**body)
    assert caught.value.param is not None and caught.value.param.startswith(param), (case, caught.value.body)
    assert rows.count() == 0


MODERATION_BAD: list[tuple[str, Any, str]] = [
    ("empty string", "", "input"),
    ("empty list", [], "input"),
    ("empty string in a list", ["fine", ""], "input.1"),
    ("too many", ["x"] * 257, "input"),
    ("image part", [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}], "input"),
]


@pytest.mark.parametrize(("case", "value", "param"), MODERATION_BAD, ids=[c[0] for c in MODERATION_BAD])
def test_moderations_refuse_bad_input(
    client: openai.OpenAI, rows: Rows, broker: Broker, case: str, value: Any, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(input=value)
    assert caught.value.param is not None and caught.value.param.startswith(param), (case, caught.value.body)
    assert rows.count() == 0 and broker.jobs() == {}


def test_bad_custom_moderation_model_names_model(client: openai.OpenAI, rows: Rows) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.moderations.create(input="hello", model="Not A Model!")
    assert caught.value.param == "model"
    assert rows.count() == 0


def test_invalid_json_is_a_400_in_openai_shape(api: TestClient) -> None:
    response = api.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_models_name_the_generation_and_moderation_models(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list().data]
    assert ids == ["smollm2-135m-instruct", "textfleet-moderation"]
    for model_id in ids:
        card = client.models.retrieve(model_id)
        assert card.id == model_id and card.owned_by == "textfleet" and card.object == "model"
