"""The official `openai` client against a running fleet (`textfleet dev`: real vLLM, real classifiers,
real Redis, PostgreSQL then SQLite): moderations, chat completions (also streamed), completions and
models; each request is a recorded priority-9 job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from shared.settings import MODERATION_CATEGORIES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

INSULT = "You are a worthless idiot and a pathetic moron, everyone hates you, you stupid loser."
KIND = "The garden looks lovely in the morning sun."
MESSAGES: list[Any] = [
    {"role": "developer", "content": "You answer in one short sentence."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
]


@pytest.fixture
def oai(stack: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack}/v1", api_key="textfleet", timeout=300, max_retries=0) as client:
        yield client


@pytest.fixture
def model(oai: openai.OpenAI) -> str:
    return oai.models.list().data[0].id


def _job(client: httpx.Client, response_id: str) -> dict[str, Any]:
    """The job behind a response (`<prefix>-<job id>`), as `GET /v1/jobs/{id}` records it."""
    job: dict[str, Any] = client.get(f"/v1/jobs/{response_id.rsplit('-', 1)[1]}").json()
    assert job["status"] == "succeeded" and job["priority"] == 9, job
    return job


def test_models(oai: openai.OpenAI) -> None:
    ids = [m.id for m in oai.models.list().data]
    assert ids == ["smollm2-135m-instruct", "textfleet-moderation"]
    assert oai.models.retrieve(ids[0]).owned_by == "textfleet"


def test_moderation_of_a_string(oai: openai.OpenAI, client: httpx.Client) -> None:
    response = oai.moderations.create(input=INSULT, model="omni-moderation-latest")
    assert response.model == "textfleet-moderation"
    [result] = response.results
    scores = result.category_scores.model_dump(by_alias=True)
    assert set(scores) == set(MODERATION_CATEGORIES)
    assert result.flagged and result.categories.harassment
    assert result.category_scores.harassment > result.category_scores.sexual_minors
    assert result.category_applied_input_types.harassment == ["text"]
    job = _job(client, response.id)
    assert job["task"] == "moderate" and job["input"] == {"text": INSULT}


def test_moderation_of_a_list(oai: openai.OpenAI) -> None:
    response = oai.moderations.create(input=[KIND, INSULT, KIND])
    assert [r.flagged for r in response.results] == [False, True, False]
    first, _, third = response.results
    # the same text scores the same, up to float noise from being batched with a longer text
    assert first.category_scores.model_dump() == pytest.approx(third.category_scores.model_dump(), abs=1e-4)


def test_chat_completion(oai: openai.OpenAI, model: str, client: httpx.Client) -> None:
    response = oai.chat.completions.create(
        model=model, messages=MESSAGES, max_completion_tokens=12, temperature=0, seed=7
    )
    [choice] = response.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == response.usage.prompt_tokens + response.usage.completion_tokens
    job = _job(client, response.id)
    assert job["task"] == "generate" and job["input"]["messages"][0]["role"] == "system"
    assert job["result"]["text"] == choice.message.content


def test_chat_completion_streamed_matches_the_plain_one(oai: openai.OpenAI, model: str) -> None:
    body: dict[str, Any] = {"model": model, "messages": MESSAGES, "max_tokens": 12, "temperature": 0}
    plain = oai.chat.completions.create(**body)
    chunks = list(oai.chat.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert plain.usage is not None and chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1


def test_chat_completion_with_a_response_format(oai: openai.OpenAI, model: str) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    response = oai.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Is water wet? Answer in JSON."}],
        max_tokens=32,
        temperature=0,
        response_format=response_format,
    )
    assert isinstance(json.loads(response.choices[0].message.content or "")["ok"], bool)


def test_completions_one_choice_per_prompt(oai: openai.OpenAI, model: str) -> None:
    prompts = ["The capital of France is", "One, two, three,"]
    response = oai.completions.create(model=model, prompt=prompts, max_tokens=6, temperature=0)
    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.text and c.finish_reason in ("stop", "length") for c in response.choices)
    assert response.usage is not None and 0 < response.usage.completion_tokens <= 12
    streamed = list(
        oai.completions.create(model=model, prompt=prompts, max_tokens=6, temperature=0, stream=True)
    )
    for index, choice in enumerate(response.choices):
        text = "".join(c.choices[0].text for c in streamed if c.choices and c.choices[0].index == index)
        assert text == choice.text
