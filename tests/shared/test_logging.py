"""Exception logs: type, message and stack (file, line, function) in both renderers; never local
variables, never the values a database statement was given; bounded whatever the exception."""

from __future__ import annotations

import json
import logging
import logging.config
import secrets
from collections.abc import Callable

import pytest
import structlog
import uvicorn.config
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from shared.db.models import Job
from shared.db.session import session_scope
from shared.errors import InvalidOutputError
from shared.logging import (
    HIDDEN_MESSAGE,
    MAX_FRAMES,
    MAX_MESSAGE,
    configure_logging,
    describe_exception,
    error_fields,
    safe_message,
)
from shared.settings import Settings
from tests.utils.factories import add_jobs, job_row

MARKER = "MRK" + secrets.token_hex(8)
Render = Callable[[BaseException], str]


def _fails_with_a_payload_in_its_locals() -> None:
    payload = {"text": MARKER * 1000}  # what rich tracebacks used to print
    raise ValueError(f"boom with {len(payload)} key")


def _recurse(depth: int) -> None:
    if depth == 0:
        raise RuntimeError("deep")
    _recurse(depth - 1)


@pytest.fixture(params=["console", "json"])
def render(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Render:
    """Log an exception with `log.exception` through the configured renderer; what it wrote."""

    def emit(exc: BaseException) -> str:
        configure_logging(Settings(log_format=request.param), process="test")  # onto the test's stderr
        capsys.readouterr()
        try:
            raise exc
        except BaseException:
            structlog.get_logger("test").exception("request.unhandled_error", path="/v1/jobs")
        return capsys.readouterr().err

    return emit


def test_exception_log_has_type_message_and_stack_but_no_locals(render: Render) -> None:
    try:
        _fails_with_a_payload_in_its_locals()
    except ValueError as exc:
        out = render(exc)
    assert "ValueError" in out
    assert "boom with 1 key" in out
    assert "_fails_with_a_payload_in_its_locals" in out
    assert "test_logging.py" in out
    assert MARKER not in out


def test_structured_exception_in_json() -> None:
    try:
        _fails_with_a_payload_in_its_locals()
    except ValueError as exc:
        described = describe_exception(exc)
    assert described["type"] == "ValueError"
    assert described["message"] == "boom with 1 key"
    innermost = described["frames"][-1]
    assert innermost["function"] == "_fails_with_a_payload_in_its_locals"
    assert innermost["file"].endswith("test_logging.py")
    assert isinstance(innermost["line"], int)
    assert set(innermost) == {"file", "line", "function"}


def test_rendering_is_bounded_whatever_the_exception(render: Render) -> None:
    try:
        _recurse(MAX_FRAMES * 3)
    except RuntimeError as exc:
        deep = render(exc)
    assert "outer frames omitted" in deep or '"frames_omitted"' in deep
    assert deep.count("_recurse") <= MAX_FRAMES + 1

    huge = render(ValueError(MARKER * 1_000_000))  # 19 MB of message
    assert len(huge) < MAX_MESSAGE + 10_000
    assert "more characters" in huge


def test_chained_causes_are_rendered(render: Render) -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RuntimeError("outer") from inner
    except RuntimeError as exc:
        out = render(exc)
    assert "RuntimeError" in out and "outer" in out
    assert "KeyError" in out and "inner" in out


def test_validation_errors_are_summarised_without_their_input(render: Render) -> None:
    class Body(BaseModel):
        count: int

    with pytest.raises(ValidationError) as caught:
        Body.model_validate({"count": MARKER})
    out = render(caught.value)
    assert "count" in out
    assert MARKER not in out


def _insert(database_url: str, job: Job) -> None:
    with session_scope(database_url) as session:
        add_jobs(session, [job])


@pytest.mark.usefixtures("settings_env")
def test_database_errors_never_repeat_the_values(render: Render, database_url: str) -> None:
    """A real database refusal (duplicate id), whose statement held a payload: only its first line,
    with the parameters hidden (and PostgreSQL's DETAIL with the key value dropped)."""
    first = job_row(input_={"text": MARKER})
    _insert(database_url, first)
    duplicate = job_row(input_={"text": MARKER}, job_id=first.id)
    with pytest.raises(IntegrityError) as caught:
        _insert(database_url, duplicate)
    out = render(caught.value)
    assert "IntegrityError" in out
    assert MARKER not in out
    assert first.id not in out  # PostgreSQL's DETAIL names the key's value


def test_lone_surrogates_in_a_log_line_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(Settings(log_format="json"), process="test")
    structlog.get_logger("test").warning("odd", value="a\udfffb")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["value"] == "a\\udfffb"


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_hide_message_withholds_every_message_of_the_chain(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`job.crashed` and `request.unhandled_error` log the type and stack, never the message: an
    exception raised on a job's path may quote its input (here, as a KeyError of a metadata key)."""
    configure_logging(Settings(log_format=log_format), process="test")
    capsys.readouterr()
    try:
        try:
            raise KeyError(MARKER)
        except KeyError as inner:
            raise RuntimeError(f"lookup of {MARKER} failed") from inner
    except RuntimeError:
        structlog.get_logger("test").exception("job.crashed", hide_message=True)
    out = capsys.readouterr().err
    assert "RuntimeError" in out and "KeyError" in out and "test_logging.py" in out
    assert HIDDEN_MESSAGE in out
    assert MARKER not in out
    assert "hide_message=" not in out and '"hide_message"' not in out


def test_error_fields_name_the_type_and_code_never_the_message() -> None:
    refused = InvalidOutputError(f"the output does not match the schema: {MARKER!r} is not one of ['a']")
    assert error_fields(refused) == {
        "error_type": "shared.errors.InvalidOutputError",
        "error_code": "invalid_output",
    }
    assert error_fields(ValueError(MARKER)) == {"error_type": "ValueError"}


@pytest.mark.usefixtures("settings_env")
def test_safe_message_of_a_database_error_drops_the_statement_and_its_values(database_url: str) -> None:
    first = job_row(input_={"text": MARKER})
    _insert(database_url, first)
    with pytest.raises(IntegrityError) as caught:
        _insert(database_url, job_row(input_={"text": MARKER}, job_id=first.id))
    message = safe_message(caught.value)
    assert message.startswith("sqlalchemy.exc.IntegrityError: ")
    assert MARKER not in message and "[SQL" not in message
    if "DETAIL" in str(caught.value):  # PostgreSQL names the key's value: `error=str(exc)` logged it
        assert first.id in str(caught.value)
        assert first.id not in message
    assert safe_message(ConnectionError("Error 111 connecting to 127.0.0.1:6379")) == (
        "ConnectionError: Error 111 connecting to 127.0.0.1:6379"
    )


@pytest.mark.parametrize("logger", ["uvicorn.error", "celery.app.trace"])
def test_libraries_logging_a_request_or_task_failure_never_show_its_message(
    logger: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Starlette re-raises every 500 to uvicorn, which logs it with the exception: the message
    (which may quote the request) is withheld there too, also when the server had configured its own
    loggers first (as `uvicorn api.app:app` does with its default logging config)."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    configure_logging(Settings(log_format="json"), process="test")
    capsys.readouterr()
    try:
        raise ValueError(f"bad value {MARKER}")
    except ValueError:
        logging.getLogger(logger).exception("Exception in ASGI application")
    out = capsys.readouterr().err
    assert "ValueError" in out and "Exception in ASGI application" in out
    assert MARKER not in out
