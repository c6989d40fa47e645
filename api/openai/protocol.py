"""OpenAI's request and response shapes for `/v1/chat/completions`, `/v1/completions`,
`/v1/moderations` and `/v1/models` (the subset textfleet serves; see the README).

Request models refuse unknown fields (a typo is a `400` naming the parameter). Parameters OpenAI
defines that textfleet cannot honour are accepted only at their neutral value (`n: 1`, `logprobs:
false`, ...) and are otherwise a `400` naming them (`UNSUPPORTED`). A few of vLLM's extra sampling
parameters (`top_k`, `min_tokens`, `repetition_penalty`) and textfleet's generation guardrails
(`moderate_input`, `moderate_output`) may be sent too (with the `openai` client: `extra_body`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, JsonValue

from shared.response_format import ResponseFormat
from shared.validation import RequestModel

__all__ = [
    "MAX_INPUTS",
    "UNSUPPORTED",
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessageIn",
    "Completion",
    "CompletionRequest",
    "ModelCard",
    "ModelList",
    "ModerationRequest",
    "ModerationResponse",
    "ModerationResultOut",
    "StreamOptions",
    "UsageOut",
]

#: Most strings one `/v1/moderations` or `/v1/completions` request may hold (each is one job).
MAX_INPUTS = 256

#: Parameters accepted only at the value given here (a different value is a 400 naming them).
UNSUPPORTED: dict[str, Any] = {
    "n": 1,
    "best_of": 1,
    "logprobs": None,
    "top_logprobs": None,
    "echo": False,
    "suffix": None,
    "logit_bias": None,
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "audio": None,
    "prediction": None,
}


class TextPart(RequestModel):
    """A text part of a message's or a moderation input's content (`{"type": "text", "text": ...}`)."""

    type: Literal["text"]
    text: str


class ChatMessageIn(RequestModel):
    """One message. `developer` is OpenAI's new name for `system` and is read as such; tool and
    function messages are refused (textfleet does not call tools)."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | Annotated[list[TextPart], Field(min_length=1)]
    name: Annotated[str, Field(max_length=64)] | None = None

    def text(self) -> str:
        """The message's content as one string (text parts joined by newlines, like vLLM)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class StreamOptions(RequestModel):
    include_usage: bool = False
    include_obfuscation: bool | None = None  # accepted, ignored: chunks carry no obfuscation field


Stop = str | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=16)] | None


class _Sampling(RequestModel):
    """What chat completions and completions share."""

    model: Annotated[str, Field(min_length=1, max_length=256)]
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    stop: Stop = None
    seed: int | None = None
    presence_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2.0, le=2.0)] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    user: Annotated[str, Field(max_length=256)] | None = None
    n: int | None = None
    logprobs: JsonValue = None
    logit_bias: JsonValue = None
    # vLLM's extras and textfleet's guardrails
    top_k: Annotated[int, Field(ge=-1)] | None = None
    min_tokens: Annotated[int, Field(ge=0)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0.0, le=2.0)] | None = None
    moderate_input: bool | None = None
    moderate_output: bool | Literal["block"] | None = None


class ChatCompletionRequest(_Sampling):
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=256)]
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    response_format: ResponseFormat | None = None
    metadata: Annotated[dict[Annotated[str, Field(max_length=64)], str], Field(max_length=16)] | None = None
    store: bool | None = None
    service_tier: str | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: str | None = None
    modalities: list[str] | None = None
    top_logprobs: JsonValue = None
    tools: JsonValue = None
    tool_choice: JsonValue = None
    functions: JsonValue = None
    function_call: JsonValue = None
    audio: JsonValue = None
    prediction: JsonValue = None


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
    best_of: int | None = None
    echo: bool | None = False
    suffix: str | None = None


class ModerationRequest(RequestModel):
    """`input`: a string, a list of strings, or a list of text parts; each string is one job."""

    input: str | Annotated[list[str] | list[TextPart], Field(min_length=1, max_length=MAX_INPUTS)]
    model: Annotated[str, Field(min_length=1, max_length=128)] | None = None

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        return [item.text if isinstance(item, TextPart) else item for item in self.input]


# --- Responses -----------------------------------------------------------------------------------


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    finish_reason: str
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str = Field(description="`chatcmpl-` + the id of the job that ran it (`GET /v1/jobs/{id}`).")
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut
    system_fingerprint: None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


class Completion(BaseModel):
    id: str = Field(description="`cmpl-` + the id of the job of the first prompt.")
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut
    system_fingerprint: None = None


class ModerationResultOut(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[Literal["text"]]]


class ModerationResponse(BaseModel):
    id: str = Field(description="`modr-` + the id of the job of the first input.")
    model: str
    results: list[ModerationResultOut]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "textfleet"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
