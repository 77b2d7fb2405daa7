"""Logging setup for the server's processes, with secrets masked in every line.

URLs reach the logs in several places: uvicorn's access log writes each request path with its
query string (a signed `/media/...?exp=..&sig=..` link is a bearer credential until it
expires), and deliveries log the webhook or upload URL they called (an upload endpoint is
often a presigned S3 URL, its signature in the query). `RedactSecrets` masks the query of any
URL that carries a signature or token, and the password of a URL's user info, before a
handler writes the line.

Logs are text by default, or one JSON object per line (`OPENIMAGINE_LOG__FORMAT=json`). Each
record carries the UUID of the task it is about (`task_uuid`) while one is set with
`task_context`: the worker sets it while it runs a task (JSON lines show it).
"""

from __future__ import annotations

import contextvars
import copy
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]

_task_uuid: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "openimagine_task_uuid", default=None
)

# Query parameters that make a URL a credential: our signed media links (`sig`), S3, GCS and
# CloudFront presigned URLs, Azure SAS (`sig`), and bearer tokens passed in the query.
_SECRET_PARAM = re.compile(
    r"(?:^|[&;])(?:sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token"
    r"|x-goog-signature|x-goog-credential|key-pair-id|policy|token|access_token"
    r"|api_?key)=",
    re.IGNORECASE,
)
_QUERY = re.compile(r"\?([^\s\"'<>#]*)")
_USERINFO_PASSWORD = re.compile(r"(://[^/\s:@]*):[^/\s@]*@")
MASKED_QUERY = "?[redacted]"  # ASCII: a log file may not be UTF-8


def redact(text: str) -> str:
    """`text` with the query of each signed URL replaced by `?[redacted]`, and the password
    of a URL's user info by `***`."""
    if "?" in text:
        text = _QUERY.sub(_mask_query, text)
    if "@" in text:
        text = _USERINFO_PASSWORD.sub(r"\1:***@", text)
    return text


def _mask_query(match: re.Match[str]) -> str:
    return MASKED_QUERY if _SECRET_PARAM.search(match.group(1)) else match.group(0)


class RedactSecrets(logging.Filter):
    """Masks signed URLs (see `redact`) in a record's message and string arguments.

    The arguments are masked one by one rather than formatting the message here, because
    uvicorn's access formatter reads the request path back out of `record.args`.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record in place; never drops it."""
        args = record.args
        if isinstance(record.msg, str):
            masked = redact(record.msg)
            # A template whose placeholders the mask would swallow is left to its arguments.
            if not args or masked.count("%") == record.msg.count("%"):
                record.msg = masked
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in args.items()}
        return True


def _redact_arg(value: object) -> object:
    return redact(value) if isinstance(value, str) else value


@contextmanager
def task_context(task_uuid: str | None) -> Iterator[None]:
    """Records logged inside the block (in this task, and in the threads and tasks it
    starts) carry `task_uuid`."""
    token = _task_uuid.set(task_uuid)
    try:
        yield
    finally:
        _task_uuid.reset(token)


class TaskContext(logging.Filter):
    """Sets `record.task_uuid` from `task_context` (None outside one), unless the call gave
    one (`extra={"task_uuid": ...}`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate the record; never drops it."""
        if getattr(record, "task_uuid", None) is None:
            record.task_uuid = _task_uuid.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: `ts` (UTC, ISO 8601), `level`, `logger`, `message`,
    `pid`, and `task_uuid` and `exc_info` when there are. The message is formatted after
    `RedactSecrets` masked its arguments; a traceback is masked here."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (ASCII: a log file may not be UTF-8)."""
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        task_uuid = getattr(record, "task_uuid", None)
        if task_uuid is not None:
            entry["task_uuid"] = task_uuid
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str)


def _formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(LOG_FORMAT)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs (so that a second call changes its format)."""


def configure_logging(fmt: LogFormat = "text") -> None:
    """Log INFO and above to stderr, as text or JSON lines, every line through
    `RedactSecrets` and `TaskContext` (the CLI and each worker process call this at start;
    a command calls it again with its settings' format)."""
    root = logging.getLogger()
    if not root.handlers:  # as `basicConfig`: a handler someone else installed is kept
        root.addHandler(_StderrHandler(sys.stderr))
        root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for handler in root.handlers:
        if isinstance(handler, _StderrHandler):
            handler.setFormatter(_formatter(fmt))
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
        if not any(isinstance(f, TaskContext) for f in handler.filters):
            handler.addFilter(TaskContext())


def uvicorn_log_config(fmt: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's own logging configuration, its handlers (the access log's included) behind
    `RedactSecrets`: uvicorn's loggers do not propagate to the root's handlers. JSON lines
    when `fmt` is json."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    filters = config.setdefault("filters", {})
    filters["redact_secrets"] = {"()": RedactSecrets}
    filters["task_context"] = {"()": TaskContext}
    if fmt == "json":
        config["formatters"] = {name: {"()": JsonFormatter} for name in config["formatters"]}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).extend(["redact_secrets", "task_context"])
    return config
