"""Finished jobs become OpenAI responses and stream chunks that the `openai` package's own types accept;
the moderation category table covers OpenAI's 13 categories; failed jobs become OpenAI errors."""

from __future__ import annotations

import json

import pytest
from openai.types import Completion, ModerationCreateResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from api.openai.errors import failure_body, job_error
from api.openai.moderation import category_map, moderation_response, moderation_result
from api.openai.streaming import ChatFormat, CompletionFormat, final_chunks
from api.openai.translate import chat_response, completion_response
from shared.results import JobStatus
from shared.settings import MODERATION_CATEGORIES
from tests.utils.openai_jobs import finished_job

OPENAI_CATEGORIES = {
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
}


def test_the_category_table_maps_every_openai_category_to_a_textfleet_one_or_none() -> None:
    table = category_map()
    assert set(table.categories) == OPENAI_CATEGORIES
    assert {s for s in table.categories.values() if s is not None} <= set(MODERATION_CATEGORIES)
    assert table.custom_model(None) is None and table.custom_model("omni-moderation-latest") is None
    assert table.custom_model("my-head") == "my-head"


def test_a_category_the_model_did_not_score_is_zero_and_not_applied() -> None:
    # a custom model trained on two labels only
    result = {
        "flagged": True,
        "categories": {"hate": True, "violence": False},
        "category_scores": {"hate": 0.91, "violence": 0.2},
    }
    out = moderation_result(result, category_map())
    assert out.flagged and out.categories["hate"] and out.category_scores["hate"] == 0.91
    assert out.category_scores["sexual"] == 0.0 and out.categories["sexual"] is False
    assert out.category_applied_input_types["sexual"] == []
    assert out.category_applied_input_types["violence"] == ["text"]
    quiet = moderation_result({**result, "categories": {"hate": False, "violence": False}}, category_map())
    assert not quiet.flagged


def test_moderation_response_is_openais_shape() -> None:
    scores = dict.fromkeys(MODERATION_CATEGORIES, 0.01)
    jobs = [
        finished_job("moderate", {"flagged": False, "categories": {}, "category_scores": scores}),
        finished_job(
            "moderate",
            {
                "flagged": True,
                "categories": {"harassment": True},
                "category_scores": {**scores, "harassment": 0.9},
            },
        ),
    ]
    response = moderation_response(jobs, "omni-moderation-latest")
    parsed = ModerationCreateResponse.model_validate(response.model_dump())
    assert parsed.id == f"modr-{jobs[0].id}" and parsed.model == "textfleet-moderation"
    assert [r.flagged for r in parsed.results] == [False, True]
    assert parsed.results[1].category_scores.harassment == 0.9
    assert parsed.results[1].category_applied_input_types.self_harm_instructions == ["text"]
    assert moderation_response(jobs, "my-head").model == "my-head"


def test_chat_response_and_chunks_are_openais_shape() -> None:
    job = finished_job()
    response = ChatCompletion.model_validate(chat_response(job, "m").model_dump())
    assert response.id == f"chatcmpl-{job.id}" and response.choices[0].message.content == "Blue."
    assert response.usage is not None and response.usage.total_tokens == 23
    form = ChatFormat([job], "m", True)
    ending = final_chunks(form, [job], ["Bl"])
    assert ending is not None
    chunks = [*form.opening(), form.delta(0, "Bl"), *ending]
    parsed = [ChatCompletionChunk.model_validate(chunk) for chunk in chunks]
    assert parsed[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in parsed if c.choices] == ["", "Bl", "ue.", None]
    assert [c.choices[0].finish_reason for c in parsed if c.choices] == [None, None, None, "stop"]
    assert parsed[-1].choices == [] and parsed[-1].usage is not None and parsed[-1].usage.total_tokens == 23
    assert len({c.id for c in parsed}) == 1
    plain = final_chunks(ChatFormat([job], "m", False), [job], [""])
    assert plain is not None and all("usage" not in chunk for chunk in plain)
    whole = final_chunks(ChatFormat([job], "m", False), [job], ["Blue."])
    assert whole is not None and [c["choices"][0]["delta"] for c in whole] == [{}], "nothing left to send"


def test_a_streamed_text_the_result_does_not_start_with_ends_nothing() -> None:
    job = finished_job()  # "Blue."; the stream had sent "Gre" from an attempt that died
    assert final_chunks(ChatFormat([job], "m", False), [job], ["Gre"]) is None


def test_completion_response_and_chunks_have_one_choice_per_prompt() -> None:
    jobs = [finished_job(), finished_job()]
    response = Completion.model_validate(completion_response(jobs, "m").model_dump())
    assert [c.index for c in response.choices] == [0, 1]
    assert response.usage is not None and response.usage.completion_tokens == 6
    form = CompletionFormat(jobs, "m", True)
    ending = final_chunks(form, jobs, ["", "Blu"])
    assert ending is not None
    chunks = [form.delta(1, "Blu"), *ending]
    for index, expected in ((0, ["Blue."]), (1, ["Blu", "e."])):
        assert [
            c["choices"][0]["text"] for c in chunks if c["choices"] and c["choices"][0]["index"] == index
        ] == expected
    # mid-stream chunks carry finish_reason null, as OpenAI's own do; the others are valid `Completion`s
    assert chunks[0]["choices"][0]["finish_reason"] is None
    parsed = [Completion.model_validate(chunk) for chunk in chunks[1:]]
    assert [c.choices[0].finish_reason for c in parsed if c.choices] == ["stop", "stop"]
    assert parsed[-1].usage is not None and parsed[-1].usage.total_tokens == 46


@pytest.mark.parametrize(
    ("status", "error", "code", "kind"),
    [
        (JobStatus.FAILED, {"code": "timeout", "message": "too slow"}, "timeout", "server_error"),
        (JobStatus.FAILED, {"code": "content_flagged", "message": "flagged: hate"}, "content_flagged", None),
        (JobStatus.FAILED, {"code": "unknown_model", "message": "no such head"}, "model_not_found", None),
        (JobStatus.EXPIRED, None, "expired", "server_error"),
        (JobStatus.CANCELED, None, "canceled", None),
        (JobStatus.RUNNING, None, "timeout", "server_error"),
    ],
)
def test_a_job_that_did_not_succeed_is_an_openai_error(
    status: JobStatus, error: dict[str, str] | None, code: str, kind: str | None
) -> None:
    body = failure_body(job_error(finished_job(status=status, error=error)))["error"]
    assert body["code"] == code and body["message"]
    assert body["type"] == (kind or "invalid_request_error")
    json.dumps(body)
