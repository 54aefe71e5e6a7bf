"""A real server on a free local port and a headless Chromium (Debian's package) to drive it.

Screenshots go to build/screenshots/<lang>/ for review: 1366×768, as an agent's screen.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from api.app import create_app
from callcenter.clock import FixedClock
from callcenter.config import Settings
from callcenter.db import Database
from tests.conftest import IN_WINDOW, Users, make_database

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
VIEWPORT = {"width": 1366, "height": 768}

if not CHROMIUM.exists():  # .ci/run installs it; a developer without it is told how
    pytest.exit("browser tests need Debian's chromium: apt-get install chromium", returncode=4)


@dataclass
class LiveServer:
    url: str
    database: Database
    clock: FixedClock
    users: Users


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live(tmp_path: Any) -> Iterator[LiveServer]:
    database, drop = make_database("sqlite", tmp_path)
    clock = FixedClock(IN_WINDOW)
    settings = Settings(database_url=database.url, scheduler_enabled=False)
    app = create_app(settings, database=database, clock=clock, start_scheduler=False)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", database, clock, Users(database, clock))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        drop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Any]:
    contexts = []

    def make(lang: str = "zh_CN") -> Page:
        context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def screenshot(page: Page, lang: str, name: str) -> Path:
    path = SCREENSHOTS / lang / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)
    return path


# Text a zh-CN page may show in Latin letters: rule ids and key names.
ALLOWED_LATIN = {"IVR", "SV", "KPI", "CB", "RT", "CSV", "XLSX", "Alt", "Tab"}

# Every visible text node outside data values ([data-raw]), the language switch ([lang=en])
# and the lists of choices (<select>).
VISIBLE_TEXT_JS = """
() => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!el || el.closest('[data-raw],[lang="en"],script,style,select,[hidden]')) continue;
    if (!el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;
    const text = node.textContent.trim();
    if (text) out.push(text);
  }
  return out;
}
"""


def english_left(page: Page, data: tuple[str, ...] = ()) -> list[str]:
    """Words of Latin letters visible on a zh-CN page that are not allowed there. `data`:
    values that appear inside running text (the agent's name in the script's opening)."""
    import re

    words: list[str] = []
    for text in page.evaluate(VISIBLE_TEXT_JS):
        for value in data:
            text = text.replace(value, "")
        words += [w for w in re.findall(r"[A-Za-z]{2,}", text) if w not in ALLOWED_LATIN]
    return words
