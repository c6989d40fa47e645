"""The instant classifiers (`textfleet worker --instant-classifiers`): every classifier task answers a
schema-valid result through the real handler and job path, custom models are refused, and the worker
refuses them in production."""

from __future__ import annotations

import pytest

from shared.constants import Queue, TaskName
from shared.errors import ConfigurationError, ModelError
from shared.schemas import JobStatus
from shared.settings import Settings
from tests.utils.factories import insert_job, load_job
from workers.classifiers.instant import InstantClassifierSuite
from workers.classifiers.suite import CLASSIFIER_TASKS
from workers.execution import execute
from workers.runtime import WorkerRuntime, load_runtime

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def instant(runtime: WorkerRuntime) -> WorkerRuntime:
    """The worker runtime of the test session, serving the classify queue with the instant suite."""
    runtime.classifiers = InstantClassifierSuite(runtime.settings)
    return runtime


@pytest.mark.parametrize("task", [t.value for t in CLASSIFIER_TASKS])
def test_every_classifier_task_succeeds_through_the_real_job_path(instant: WorkerRuntime, task: str) -> None:
    job_id = insert_job(instant.settings.database_url, task, input_={"text": "Meet me at 3pm in Paris."})
    assert execute(job_id, TaskName(task), instant) is JobStatus.SUCCEEDED
    job = load_job(instant.settings.database_url, job_id)
    assert job.status == "succeeded" and job.result is not None and job.error is None


def test_moderation_policy_applies_to_the_fixed_scores(instant: WorkerRuntime) -> None:
    job_id = insert_job(
        instant.settings.database_url,
        "moderate",
        input_={"text": "hello"},
        params={"categories": ["hate"], "thresholds": {"hate": 0.0}},
    )
    assert execute(job_id, TaskName("moderate"), instant) is JobStatus.SUCCEEDED
    result = load_job(instant.settings.database_url, job_id).result
    assert result == {
        "flagged": True,  # a score of 0.0 meets a threshold of 0.0
        "categories": {"hate": True},
        "category_scores": {"hate": 0.0},
        "thresholds": {"hate": 0.0},
        "model": None,
    }


def test_results_are_fresh_objects_and_custom_models_are_refused() -> None:
    suite = InstantClassifierSuite(Settings(classify_max_wait_ms=0))
    try:
        first = suite.classify(TaskName("sentiment"), "a")
        first["scores"]["neutral"] = 0.5
        assert suite.classify(TaskName("sentiment"), "b")["scores"]["neutral"] == 1.0
        assert [r["label"] for r in suite.classify_batch(TaskName("sentiment"), ["x", "y"])] == [
            "neutral"
        ] * 2
        with pytest.raises(ModelError, match="no custom models"):
            suite.classify(TaskName("moderate"), "a", model="mine")
        with pytest.raises(ModelError, match="not a classifier task"):
            suite.classify(TaskName("generate"), "a")
    finally:
        suite.close()
    with pytest.raises(ModelError, match="closed"):
        suite.classify(TaskName("risk"), "a")


def test_production_refuses_the_instant_classifiers() -> None:
    # a copy, not a validated build: production's own startup rules (secrets) are not this test's
    settings = Settings().model_copy(update={"environment": "production"})
    with pytest.raises(ConfigurationError, match="refused in production"):
        load_runtime(settings, (Queue.CLASSIFY,), "w", instant_classifiers=True)
