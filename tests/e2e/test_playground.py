"""The playground at `GET /`, driven in the system Chromium by Playwright: a clip end to end,
and the server's validation errors shown next to the fields they name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers import ROOT, Server, t2v

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "test-artifacts" / "playground.png"
GENERATION_MS = 120_000

# Records every status line the page shows, so a test can see the live progress it went through.
_RECORD_STATUS = """() => {
  window.statuses = [];
  const status = document.getElementById('status');
  new MutationObserver(() => window.statuses.push(
    [status.textContent, document.getElementById('progress').value]
  )).observe(status, {childList: true, characterData: true, subtree: true});
}"""
_PLAYABLE = """() => {
  const v = document.querySelector('#results video');
  return v !== null && v.readyState >= 1 && v.duration > 0;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make tools` (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base, viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.goto("/")
    page.fill("#apiKey", server.key)
    yield page
    context.close()


def _server_message(server: Server, **task: object) -> str:
    """The message the API itself gives for this task, to compare with what the page shows."""
    reply = server.post([t2v(**task)])
    assert reply.status_code == 400, reply.text
    return str(reply.json()["errors"][0]["message"])


def test_playground_generates_a_playable_clip_with_cost_and_progress(page: Page, server: Server):
    expect(page.locator("#notice")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text("RANDOM WEIGHTS")
    expect(page.locator("#size option")).to_have_count(14)
    page.check('input[name="mode"][value="text"]')
    page.fill("#prompt", "a lighthouse in a storm")
    page.select_option("#size", "480x480")
    page.fill("#duration", "1")
    page.select_option("#outputFormat", "MP4")
    page.fill("#seed", "7")
    page.evaluate(_RECORD_STATUS)
    page.click("#submit")

    page.wait_for_function(_PLAYABLE, timeout=GENERATION_MS)
    duration = page.evaluate("document.querySelector('#results video').duration")
    assert abs(duration - 1.0) < 0.1
    expect(page.locator("#status")).to_have_text("Done: 1 of 1 ready.")
    assert page.evaluate("document.getElementById('progress').value") == 100
    statuses = page.evaluate("window.statuses")
    assert any(text.startswith("Generating") for text, _ in statuses), statuses
    result = page.locator("#results .result")
    expect(result).to_have_count(1)
    expect(result.locator(".cost")).to_have_text("$0.05")  # 480p, 1 s
    expect(result).to_contain_text("seed 7")
    src = page.evaluate("document.querySelector('#results video').src")
    expect(result.locator("a[download]")).to_have_attribute("href", src)
    assert page.evaluate("localStorage.getItem('openimagine.apiKey')") == server.key
    page.wait_for_function(  # a decoded first frame, for the screenshot
        "document.querySelector('#results video').readyState >= 2", timeout=30_000
    )
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_server_errors_show_next_to_the_field_they_name(page: Page, server: Server):
    # The browser's own range checks would stop these values; the server must name them.
    page.evaluate("document.getElementById('form').noValidate = true")
    page.select_option("#size", "480x480")
    page.fill("#duration", "99")
    page.click("#submit")
    duration_error = page.locator('[data-error-for="duration"]')
    expect(duration_error).to_have_text(_server_message(server, duration=99))
    expect(page.locator("#duration")).to_have_attribute("aria-invalid", "true")

    page.fill("#duration", "1")
    page.evaluate("""() => {
      const o = new Option('500x500', '500x500');
      document.getElementById('size').append(o);
      o.selected = true;
    }""")
    page.click("#submit")
    expect(duration_error).to_be_empty()
    expect(page.locator('[data-error-for="size"]')).to_have_text(
        _server_message(server, width=500, height=500)
    )

    page.fill("#apiKey", "oi_wrong")
    page.click("#submit")
    expect(page.locator('[data-error-for="apiKey"]')).to_have_text("Invalid API key.")
    expect(page.locator("#run")).to_be_hidden()  # nothing was queued


def test_result_errors_from_get_response_are_shown(page: Page, server: Server):
    # A cancelled task is the one worker-side failure every build can produce on demand.
    page.select_option("#size", "480x480")
    page.fill("#duration", "15")
    page.click("#submit")
    expect(page.locator("#task-uuid")).not_to_be_empty()
    task_uuid = page.locator("#task-uuid").inner_text()
    cancel = httpx.post(
        f"{server.base}/v1/tasks/{task_uuid}/cancel",
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    assert cancel.status_code == 200, cancel.text
    [error] = server.poll(task_uuid)["errors"]
    assert error["code"] == "taskCancelled"
    expect(page.locator("#results .result-error")).to_have_text(error["message"], timeout=60_000)
    expect(page.locator("#status")).to_have_text("Done: 0 of 1 ready, 1 failed.")
    expect(page.locator("#results video")).to_have_count(0)


def test_image_mode_sends_the_upload_and_shows_what_the_server_says(page: Page):
    page.check('input[name="mode"][value="image"]')
    expect(page.locator("#size")).to_be_hidden()
    expect(page.locator("#resolution")).to_be_visible()
    page.set_input_files(
        "#mediaFile", files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"no png"}]
    )
    page.fill("#duration", "1")
    page.click("#submit")
    # Refused at submit (next to the upload) or failed in the worker (in the results): either
    # way the page shows the server's words, and plays nothing.
    shown = page.locator('[data-error-for="media"]:not(:empty), #results .result-error')
    expect(shown.first).to_have_text(re.compile(r"\S"), timeout=GENERATION_MS)
    expect(page.locator("#results video")).to_have_count(0)
