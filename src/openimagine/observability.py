"""Logging setup for the server's processes, with secrets masked in every line.

URLs reach the logs in several places: uvicorn's access log writes each request path with its
query string (a signed `/media/...?exp=..&sig=..` link is a bearer credential until it
expires), and deliveries log the webhook or upload URL they called (an upload endpoint is
often a presigned S3 URL, its signature in the query). `RedactSecrets` masks the query of any
URL that carries a signature or token, and the password of a URL's user info, before a
handler writes the line.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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


def configure_logging() -> None:
    """Log INFO and above to stderr, every line through `RedactSecrets` (the CLI and each
    worker process call this once, at start)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, its handlers (the access log's included) behind
    `RedactSecrets`: uvicorn's loggers do not propagate to the root's handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": RedactSecrets}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact_secrets")
    return config
