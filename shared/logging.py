"""structlog configuration: JSON lines in production, coloured console in development.

Bind per-job context with `structlog.contextvars.bound_contextvars(job_id=..., task=...)`; every
log line emitted inside (including from stdlib loggers) carries it.

Exceptions are rendered the same way by both renderers, by `describe_exception`: the type, the message
and the stack as (file, line, function), never local variables (rich tracebacks render every local of
every frame: request payloads, and seconds of CPU on the event loop for a large one) and never source
lines. The work is bounded whatever the exception: at most `MAX_FRAMES` frames, `MAX_CHAIN` chained
exceptions and `MAX_MESSAGE` characters of message. Database errors keep only their first line, cut
before any quoted value (PostgreSQL's DETAIL and CONTEXT lines and SQLAlchemy's parameters repeat the
data that was refused), and a pydantic ValidationError is summarised without its input values.

What a log line may say (issue 12, privacy): ids, counts, sizes, timings, codes and exception types;
never a job's input, params, metadata values, result or error text (a schema error quotes the
generated value it refused; a tokenizer error may quote the prompt). A failure on a job's path is
logged with `error_fields` (type and code, no message); an infrastructure failure (Redis, database)
with `safe_message` (the message, cut before the values a statement was given).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import types
from typing import Any

import structlog

from shared.settings import Settings

__all__ = [
    "HIDDEN_MESSAGE",
    "MAX_CHAIN",
    "MAX_FRAMES",
    "MAX_MESSAGE",
    "configure_logging",
    "describe_exception",
    "error_fields",
    "format_exception_text",
    "safe_message",
]

#: Frames rendered per exception (the innermost ones; the rest are counted).
MAX_FRAMES = 64
#: Exceptions rendered per chain (`raise ... from ...` and exceptions raised while handling another).
MAX_CHAIN = 4
#: Characters of an exception's message rendered.
MAX_MESSAGE = 1000
#: The message of an exception logged with `hide_message=True` (see `_exc_of`).
HIDDEN_MESSAGE = "<message withheld: it may quote job data>"
#: Libraries' loggers that log exceptions raised on a request's or a job's path, whose messages may
#: quote its data: uvicorn's "Exception in ASGI application" (Starlette re-raises every 500 to the
#: server after our handler answered), Celery's task failures. Their exceptions render without messages.
_HIDE_MESSAGES_OF = frozenset({"uvicorn.error", "celery.app.trace", "celery.worker.request"})
#: Loggers of the servers we run in that may come with handlers of their own.
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.app.trace")
#: Modules whose exception messages repeat the values a statement was given.
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "sqlite3")


def configure_logging(settings: Settings, *, process: str = "textfleet") -> None:
    """Route structlog and stdlib logging through one renderer. Safe to call more than once."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.CallsiteParameterAdder({structlog.processors.CallsiteParameter.PROCESS}),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            exception_formatter=structlog.dev.plain_traceback,  # never rich: it renders locals
        )
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _exception_as_json if settings.json_logs else _exception_as_text,
            _encodable,
            renderer,
        ],
    )
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # A server started with its own logging config (`uvicorn api.app:app` runs uvicorn's dictConfig before
    # the app starts) gives its loggers handlers of their own that render exception messages: route
    # them through ours instead, where `_HIDE_MESSAGES_OF` withholds them.
    for name in _SERVER_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = []
        library.propagate = True
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    structlog.contextvars.bind_contextvars(process_name=process)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler whose own failures (a closed stream, a broken renderer) are reported in one
    line, not with the stdlib's dump of the record and its traceback (which would repeat the values)."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (the stdlib name)
        if logging.raiseExceptions and sys.__stderr__ is not None:
            exc = sys.exc_info()[1]
            with contextlib.suppress(Exception):
                sys.__stderr__.write(f"logging error in {record.name}: {type(exc).__name__}\n")


# --- Exceptions ------------------------------------------------------------------------------------


def describe_exception(exc: BaseException, *, messages: bool = True) -> dict[str, Any]:
    """`{"type", "message", "frames": [{"file", "line", "function"}], "frames_omitted"?, "causes"?}`:
    what a log line says about `exc` (its causes, outermost first, under `causes`). With
    `messages=False` every message is left out (an exception on a job's path may quote its data)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < MAX_CHAIN and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    described = [_describe_one(item, messages) for item in chain]
    head = described[0]
    if len(described) > 1:
        head["causes"] = described[1:]
    return head


def _describe_one(exc: BaseException, messages: bool) -> dict[str, Any]:
    frames: list[dict[str, Any]] = []
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append({"file": code.co_filename, "line": tb.tb_lineno, "function": code.co_name})
        tb = tb.tb_next
    message = _safe_message(exc) if messages else HIDDEN_MESSAGE
    out: dict[str, Any] = {"type": _qualified_name(type(exc)), "message": message}
    if len(frames) > MAX_FRAMES:
        out["frames_omitted"] = len(frames) - MAX_FRAMES
        frames = frames[-MAX_FRAMES:]
    out["frames"] = frames
    return out


def error_fields(exc: BaseException) -> dict[str, str]:
    """What a log line says of a failure on a job's path: `error_type` and, for textfleet's own
    errors, `error_code`; never the message (it may quote the job's input or output)."""
    fields = {"error_type": _qualified_name(type(exc))}
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        fields["error_code"] = code
    return fields


def safe_message(exc: BaseException) -> str:
    """`Type: message` of an infrastructure failure (Redis, database, HTTP), without the values a
    database statement or validator was given, and bounded (`MAX_MESSAGE`)."""
    message = _safe_message(exc)
    name = _qualified_name(type(exc))
    return f"{name}: {message}" if message else name


def _qualified_name(cls: type) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _safe_message(exc: BaseException) -> str:
    """The message of `exc`, without the values a database or validator was given."""
    try:
        if exc.__class__.__module__.startswith("pydantic") and hasattr(exc, "errors"):
            problems = exc.errors(include_input=False, include_url=False, include_context=False)
            shown = "; ".join(f"{'.'.join(map(str, p['loc']))}: {p['msg']}" for p in problems[:10])
            message = f"{len(problems)} validation error(s): {shown}"
        else:
            message = str(exc)
    except Exception:  # a broken __str__ must not break the log line
        message = "<unprintable message>"
    if exc.__class__.__module__.startswith(_DATABASE_MODULES):
        message = message.split("\n", 1)[0].split(': "', 1)[0]
    if len(message) > MAX_MESSAGE:
        message = f"{message[:MAX_MESSAGE]}... ({len(message) - MAX_MESSAGE} more characters)"
    return message


def _exc_of(event_dict: structlog.types.EventDict) -> BaseException | None:
    """The exception of a log call (`exc_info`); `hide_message=True` beside it (popped here) is
    read by the callers: `log.exception("job.crashed", hide_message=True)`."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
        return exc_info[1]
    return None


def _exception_as_json(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    hide = bool(event_dict.pop("hide_message", False)) or event_dict.get("logger") in _HIDE_MESSAGES_OF
    exc = _exc_of(event_dict)
    if exc is not None:
        event_dict["exception"] = describe_exception(exc, messages=not hide)
    return event_dict


def _exception_as_text(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    hide = bool(event_dict.pop("hide_message", False)) or event_dict.get("logger") in _HIDE_MESSAGES_OF
    exc = _exc_of(event_dict)
    if exc is not None:
        event_dict["exception"] = format_exception_text(describe_exception(exc, messages=not hide))
    return event_dict


def format_exception_text(described: dict[str, Any]) -> str:
    """`describe_exception`'s result as a Python-style traceback (causes first, like Python)."""
    blocks: list[str] = []
    for item in [*reversed(described.get("causes", [])), described]:
        lines = ["Traceback (most recent call last):"]
        if item.get("frames_omitted"):
            lines.append(f"  ... {item['frames_omitted']} outer frames omitted")
        lines += [f'  File "{f["file"]}", line {f["line"]}, in {f["function"]}' for f in item["frames"]]
        lines.append(f"{item['type']}: {item['message']}" if item["message"] else item["type"])
        blocks.append("\n".join(lines))
    return "\n\nThe above exception was the cause of (or raised while handling) this one:\n\n".join(blocks)


def _encodable(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Escape lone surrogates in string values: a log line must always be writable as UTF-8."""
    for key, value in event_dict.items():
        if isinstance(value, str) and not value.isascii():
            event_dict[key] = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return event_dict
