"""vLLM `SamplingParams` from a `GenerationRequest`: the one place request params become engine options."""

from __future__ import annotations

from typing import Any

from shared.errors import InvalidInputError
from workers.engines.base import GenerationRequest

__all__ = ["sampling_params"]

#: SamplingParams fields a request's `extra` may set (anything else is rejected, not silently ignored).
_EXTRA_SAMPLING_KEYS = frozenset(
    {
        "ignore_eos",
        "min_p",
        "stop_token_ids",
        "include_stop_str_in_output",
        "skip_special_tokens",
        "spaces_between_special_tokens",
        "logit_bias",
        "bad_words",
        "allowed_token_ids",
    }
)


def sampling_params(request: GenerationRequest, prompt_tokens: int, max_model_len: int) -> Any:
    """The `vllm.SamplingParams` of `request`, whose prompt is `prompt_tokens` long, on an engine whose
    context holds `max_model_len` tokens. Raises InvalidInputError (field `params`) for bad options."""
    from vllm import SamplingParams
    from vllm.exceptions import VLLMClientError
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    p = request.params
    extra: dict[str, Any] = dict(request.extra)
    unknown = sorted(set(extra) - _EXTRA_SAMPLING_KEYS)
    if unknown:
        raise InvalidInputError(f"unsupported sampling options: {', '.join(unknown)}", field="params")
    # Never ask for more than the context has room for: vLLM would stop there anyway.
    max_tokens = max(1, min(request.max_tokens, max_model_len - prompt_tokens))
    stop = [p.stop] if isinstance(p.stop, str) else list(p.stop) if p.stop else None
    try:
        if request.constraint is not None:
            extra["structured_outputs"] = StructuredOutputsParams(**request.constraint.engine_options())
        return SamplingParams(
            n=1,
            max_tokens=max_tokens,
            min_tokens=min(p.min_tokens, max_tokens),
            temperature=p.temperature,
            top_p=p.top_p,
            top_k=0 if p.top_k in (-1, 0) else p.top_k,
            stop=stop,
            seed=p.seed,
            presence_penalty=p.presence_penalty,
            frequency_penalty=p.frequency_penalty,
            repetition_penalty=p.repetition_penalty,
            output_kind=RequestOutputKind.FINAL_ONLY,
            **extra,
        )
    except (VLLMClientError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"invalid sampling parameters: {exc}", field="params") from exc
