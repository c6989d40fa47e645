"""The handlers of the classifier tasks: `moderate` (with the request's policy), `risk`, `sentiment`
and `entities`."""

from __future__ import annotations

from shared.constants import TaskName
from shared.results import EntitiesResult, ModerationResult, RiskResult, SentimentResult
from shared.schemas import ClassifyParams, ModerateParams, TextInput
from workers.classifiers.policy import apply_policy
from workers.handlers import HandlerResult
from workers.runtime import WorkerRuntime

__all__ = ["entities", "moderate", "risk", "sentiment"]

_MODERATE, _RISK, _SENTIMENT = TaskName("moderate"), TaskName("risk"), TaskName("sentiment")
_ENTITIES = TaskName("entities")


def moderate(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ModerateParams, timeout_s: float | None
) -> HandlerResult:
    """Moderation with the request's policy: categories, thresholds and a custom model."""
    suite = rt.require_classifiers()
    if params.model is None:
        raw = suite.classify(_MODERATE, input_.text, timeout_s=timeout_s)
    else:
        raw = suite.classify(_MODERATE, input_.text, timeout_s=timeout_s, model=params.model)
    result = {**apply_policy(raw, params), "model": params.model}
    return HandlerResult(ModerationResult.model_validate(result).model_dump())


def risk(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ClassifyParams, timeout_s: float | None
) -> HandlerResult:
    """Fraud / financial-risk score and level."""
    raw = rt.require_classifiers().classify(_RISK, input_.text, timeout_s=timeout_s)
    return HandlerResult(RiskResult.model_validate(raw).model_dump())


def sentiment(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ClassifyParams, timeout_s: float | None
) -> HandlerResult:
    """Negative / neutral / positive."""
    raw = rt.require_classifiers().classify(_SENTIMENT, input_.text, timeout_s=timeout_s)
    return HandlerResult(SentimentResult.model_validate(raw).model_dump())


def entities(
    rt: WorkerRuntime, job_id: str, input_: TextInput, params: ClassifyParams, timeout_s: float | None
) -> HandlerResult:
    """Named entities with character offsets into the input."""
    raw = rt.require_classifiers().classify(_ENTITIES, input_.text, timeout_s=timeout_s)
    return HandlerResult(EntitiesResult.model_validate(raw).model_dump())
