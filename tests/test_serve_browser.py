"""The chat page in a real browser: Debian's headless Chromium driven by Playwright opens the page,
sends a message, sees the reply stream in pieces, presses stop (the server frees the row), shows
token probabilities with their alternatives on hover, reports tokens/s, and starts a new chat. A
screenshot is saved to test-artifacts/serve_chat_page.png.

Skips (saying why) where Playwright or the system Chromium is missing; .ci/run installs both."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from serve_helpers import http, metric, running_server, slowed

pytest.importorskip("fastapi")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright cannot download its own browser offline: it drives the system's, with these flags.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
NAME = "page-model"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")
    if not Path(CHROMIUM).exists():
        pytest.skip("the browser test needs Debian's chromium (apt-get install -y chromium); .ci/run installs it")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, small_tokenizer):
    """A random model whose checkpoint says ignore_eos, so replies run to the page's max tokens, and
    whose logits are scaled up (final norm x5) so that token probabilities vary as a trained
    model's do instead of all being about 1/vocabulary."""
    import torch

    from llmlab.checkpoint import load, save_checkpoint
    from llmlab.config import preset
    from llmlab.model import TransformerLM
    from llmlab.serve import ServeConfig, create_app

    torch.manual_seed(0)
    model = TransformerLM(preset("tiny", vocab_size=small_tokenizer.vocab_size, n_layer=2, d_model=64, n_head=4,
                                 n_kv_head=2, context_length=4096)).eval()
    with torch.no_grad():
        model.final_norm.weight.mul_(5)
    path = save_checkpoint(tmp_path_factory.mktemp("page") / "model", model, small_tokenizer,
                           generation_config={"eos_token_id": small_tokenizer.eos_token_id, "ignore_eos": True})
    model, tokenizer = load(path)
    # At least 5 ms a token: the page must see a reply still streaming when it presses stop.
    with running_server(create_app(slowed(model, 0.005), tokenizer, ServeConfig(model_name=NAME))) as url:
        yield url


@pytest.mark.slow  # a browser, and seconds of streaming
def test_chat_page_streams_stops_and_shows_probabilities(browser, served):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(served + "/")
    page.wait_for_function(f"document.getElementById('model').textContent.includes('{NAME}')")

    # Every change to the reply's text, as the browser renders it.
    page.evaluate("""() => {
        window.lengths = [];
        new MutationObserver(() => {
            const replies = document.querySelectorAll('.msg.assistant .body');
            if (replies.length) window.lengths.push(replies[replies.length - 1].textContent.length);
        }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
    }""")
    page.fill("#system", "You are a storyteller.")
    page.fill("#max-tokens", "3500")  # 17 s or more: stop comes long before the end
    page.fill("#input", "Tell me about Mia and her dog Rex.")
    page.press("#input", "Enter")
    page.wait_for_function("new Set(window.lengths.filter(n => n > 1)).size >= 8")  # arriving in pieces
    assert page.is_enabled("#stop") and not page.is_enabled("#send")
    assert metric(http("GET", served + "/metrics")[1], "llmlab_running_rows") == 1

    page.click("#stop")
    page.wait_for_function("document.querySelector('.msg.assistant .stats').textContent.includes('stopped')")
    text = page.inner_text(".msg.assistant .body")
    page.wait_for_timeout(300)
    assert page.inner_text(".msg.assistant .body") == text  # nothing more arrives
    metrics = http("GET", served + "/metrics")[1]
    assert metric(metrics, "llmlab_running_rows") == 0
    assert metric(metrics, "llmlab_request_finished_total", 'finish_reason="abort"') == 1
    assert 0 < len(text)

    # Probabilities: each token coloured, its alternatives on hover.
    page.check("#show-probs")
    spans = page.locator(".msg.assistant .tok")
    assert spans.count() > 5
    probs = [float(p) for p in spans.evaluate_all("els => els.map(e => e.dataset.p)")]
    assert all(0 < p <= 1 for p in probs)
    backgrounds = set(spans.evaluate_all("els => els.map(e => e.style.background)"))
    assert len(backgrounds) > 1  # different probabilities, different colours
    assert page.inner_text(".msg.assistant .body") == text  # same text, now in coloured tokens
    spans.filter(has_text=re.compile(r"[A-Za-z]{2}")).first.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert "sampled" in tip.inner_text() and len(re.findall(r"\d+\.\d%", tip.inner_text())) >= 5

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve_chat_page.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A reply that runs to its end reports its speed.
    page.fill("#max-tokens", "20")
    page.fill("#input", "And then?")
    page.press("#input", "Enter")
    page.wait_for_function("document.querySelectorAll('.msg.assistant .stats')[1].textContent.length > 0")
    stats = page.locator(".msg.assistant .stats").nth(1).inner_text()
    assert re.match(r"20 tokens · \d+\.\d tokens/s · first token \d+ ms · length$", stats), (stats, page.locator(".msg.error").all_inner_texts())

    page.click("#new-chat")
    assert page.locator(".msg").count() == 0
    page.close()
