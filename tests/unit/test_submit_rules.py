"""The checks every door applies before anything is stored: URLs the sender can send, text
every store can hold, task UUIDs; and what the logs and the banner mask."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from openimagine.cli.serve import shown_store_url
from openimagine.errors import InvalidInput
from openimagine.media.netguard import BlockedAddress
from openimagine.media.netguard import check_url as guard
from openimagine.models.rules import (
    MAX_URL_CHARS,
    check_new_task_uuid,
    check_task_uuid,
    check_text,
    check_url,
)
from openimagine.observability import RedactSecrets, redact

SENDABLE = [
    "https://bucket.s3.amazonaws.com/out.mp4?X-Amz-Signature=abc&X-Amz-Expires=3600",
    "http://127.0.0.1:9000/hook?token=abc",
    "https://user:pass@hooks.example.com:8443/h#frag",
    "http://[::1]:8080/hook",
    "http://xn--bcher-kva.example/hook",
    "http://bücher.example/hook",
    "HTTPS://EXAMPLE.COM/Hook",
    "https://example.com/" + "a" * (MAX_URL_CHARS - len("https://example.com/")),
]
UNSENDABLE = [
    "http://example.com:99999/",
    "http://example.com:65536/",
    "http://example.com:0/",
    "http://example.com:-1/",
    "http://example.com:8o/",
    "http://example.com/\x00",
    "http://example.com/\x7f",
    "http://example.com/\x85",
    "http://example.com/a b",
    " http://example.com/",
    "http://example.com/\n",
    "http://exa\u3000mple.com/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "//example.com/x",
    "http:///x",
    "http://",
    "http://[::1/",
    "http://%65xample.com/",
    "http://example.com/" + chr(0xD800),
    "https://example.com/" + "a" * (MAX_URL_CHARS + 1 - len("https://example.com/")),
]


@pytest.mark.parametrize("url", SENDABLE)
def test_urls_the_sender_can_send_are_kept_as_given(url: str):
    assert check_url("webhookURL", url) == url


@pytest.mark.parametrize("url", UNSENDABLE)
def test_urls_the_sender_cannot_send_are_refused_naming_the_parameter(url: str):
    with pytest.raises(InvalidInput) as info:
        check_url("uploadEndpoint", url)
    assert (info.value.code, info.value.parameter) == ("invalidUploadEndpoint", "uploadEndpoint")
    assert "uploadEndpoint" in info.value.message


@pytest.mark.parametrize("text", ["a\x00b", "\x00", "a" + chr(0xD800), chr(0xDFFF) + "z"])
def test_text_no_store_can_hold_is_refused(text: str):
    with pytest.raises(InvalidInput) as info:
        check_text("positivePrompt", text)
    assert (info.value.code, info.value.parameter) == ("invalidPositivePrompt", "positivePrompt")


@pytest.mark.parametrize("text", ["plain", "tabs\tand\nnewlines", "ünïcödé 🎬", "\U0001f3ac"])
def test_other_text_is_kept(text: str):
    assert check_text("positivePrompt", text) == text


def test_a_new_task_uuid_must_be_v4_and_is_canonical():
    value = str(uuid.uuid4())
    assert check_new_task_uuid(value.upper()) == value


@pytest.mark.parametrize(
    "value",
    [
        str(uuid.uuid1()),
        str(uuid.uuid3(uuid.NAMESPACE_DNS, "a")),
        str(uuid.uuid5(uuid.NAMESPACE_DNS, "a")),
        str(uuid.UUID(int=uuid.uuid4().int & ~(0xC << 60))),  # NCS variant
        "00000000-0000-0000-0000-000000000000",
    ],
)
def test_a_new_task_uuid_of_another_version_is_refused(value: str):
    with pytest.raises(InvalidInput) as info:
        check_new_task_uuid(value)
    assert (info.value.code, info.value.parameter) == ("invalidTaskUUID", "taskUUID")


def test_an_existing_task_is_looked_up_whatever_its_version():
    # The OpenAI door names tasks with UUID v5 (from an Idempotency-Key).
    v5 = str(uuid.uuid5(uuid.NAMESPACE_DNS, "a"))
    assert check_task_uuid(v5.upper()) == v5


@pytest.mark.parametrize(
    "value",
    ["12345678123456781234-5678-1234-5678", "{12345678-1234-4234-8234-12345678123}", "x" * 36],
)
def test_a_task_uuid_must_be_in_the_hyphenated_form(value: Any):
    with pytest.raises(InvalidInput):
        check_task_uuid(value)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:99999/h",
        "http://example.com:0/h",
        "http://[::1/h",
        "http://a\x00b.example/h",
    ],
)
async def test_the_guard_gives_up_a_stored_url_it_cannot_call(url: str):
    # Rows stored before submit checked URLs: a refusal ends the delivery, where an
    # unexpected error would be retried.
    with pytest.raises(BlockedAddress):
        await guard(url, ())


# -- what logs and the banner mask -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("GET /media/r/a.mp4?exp=1&sig=abc HTTP/1.1", "GET /media/r/a.mp4?[redacted] HTTP/1.1"),
        (
            "to https://b.s3.amazonaws.com/k?X-Amz-Algorithm=A&X-Amz-Signature=f failed",
            "to https://b.s3.amazonaws.com/k?[redacted] failed",
        ),
        ("https://x.example/u?X-Goog-Signature=1", "https://x.example/u?[redacted]"),
        ("http://h/hook?token=t", "http://h/hook?[redacted]"),
        ("GET /v1/videos?limit=3&after=x", "GET /v1/videos?limit=3&after=x"),
        ("postgresql://u:pw@db/x", "postgresql://u:***@db/x"),
        ("no url here", "no url here"),
    ],
)
def test_signed_queries_and_passwords_are_masked(text: str, shown: str):
    assert redact(text) == shown


def test_the_access_log_record_keeps_its_shape():
    # uvicorn's access formatter unpacks exactly these five arguments.
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/media/a.mp4?exp=1&sig=SECRET", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.args == ("127.0.0.1:5", "GET", "/media/a.mp4?[redacted]", "1.1", 200)
    assert "SECRET" not in record.getMessage()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://alice:s3cret@db.example:5432/oi",
            "postgresql+psycopg://alice:***@db.example:5432/oi",
        ),
        (
            "postgresql+psycopg://alice@db.example/oi?password=s3cret",
            "postgresql+psycopg://alice@db.example/oi?password=***",
        ),
        ("sqlite:////data/openimagine.db", "sqlite:////data/openimagine.db"),
        ("memory", "memory"),
    ],
)
def test_the_banner_masks_the_store_password(url: str, shown: str):
    assert shown_store_url(url) == shown


def test_a_listed_prefix_never_reveals_a_short_key():
    from openimagine.service.auth import generate_key, key_prefix

    generated = generate_key()
    assert key_prefix(generated) == generated[:10]  # long keys keep 30+ secret characters
    for short in ("secret", "oi_test_" + "a" * 20):
        shown = key_prefix(short)
        assert shown.startswith("#") and short[:4] not in shown and len(shown) == 9
        assert key_prefix(short) == shown  # stable: it names the key for `keys revoke`
