"""The demo page: its work in-process (answers, clusters, K against all N, refusals that change nothing), and the
real page in a headless Chromium on the embedded checkpoint (example in, answer and cluster picture out)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import require_extra
from PIL import Image

from sec_mllm.demo import DEMO_CHECKPOINT, DEMO_EXAMPLE, DemoInputError, DemoSession, load_example, table_markdown

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"  # Debian's package: playwright drives it, nothing is downloaded
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",  # without these, Chromium's own connections stall on a closed network
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def session(make_model):
    model, processor = make_model("sec", {"num_tokens": 4})
    return DemoSession(model, processor)


@pytest.fixture
def image_file(images, tmp_path):
    path = tmp_path / "photo.png"
    images[0].save(path)
    return str(path)


def test_ask_answers_with_k_and_with_all_n_and_leaves_the_model_as_it_was(session, image_file):
    projector = session.model.projector
    result = session.ask(image_file, "What is this?", 2, max_new_tokens=4)
    assert isinstance(result["answer"], str) and isinstance(result["picture"], Image.Image)
    (with_k, all_n) = result["rows"]
    assert (with_k["tokens"], all_n["tokens"]) == (2, 16)
    assert with_k["answer"] == result["answer"] and with_k["ttft_ms"] > 0 and all_n["ttft_ms"] > 0
    assert session.model.projector is projector and session.model.num_image_tokens == 4
    assert session.processor.num_image_tokens == 4 and session.model.config.projector_config == {"num_tokens": 4}
    assert "| K = 2 (sec) | 2 |" in table_markdown(result["rows"])


@pytest.mark.parametrize(
    "k,question,image,match",
    [
        (17, "Hi?", "ok", "K=17 is outside 1..N: this model's vision tower gives N=16 tokens"),
        (0, "Hi?", "ok", "K=0 is outside 1..N"),
        (2.5, "Hi?", "ok", "K=2.5 is outside 1..N"),
        ("many", "Hi?", "ok", "K must be a whole number, got 'many'"),
        (4, "  ", "ok", "type a question"),
        (4, "Hi?", None, "upload an image first"),
        (4, "Hi?", "broken", "cannot read broken.png as an image: cannot identify image file 'broken.png'"),
        (4, "Hi?", "truncated", "cannot read truncated.png as an image"),
    ],
)
def test_bad_input_gets_a_message_and_changes_nothing(session, image_file, tmp_path, k, question, image, match):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(image_file).read_bytes()[:200])
    path = {"ok": image_file, "broken": str(broken), "truncated": str(truncated), None: None}[image]
    projector = session.model.projector
    with pytest.raises(DemoInputError, match=match):
        session.ask(path, question, k)
    assert session.model.projector is projector and session.processor.num_image_tokens == 4


def test_a_projector_without_k_pins_it_at_n(make_model, image_file):
    model, processor = make_model("identity", {})
    session = DemoSession(model, processor)
    assert session.fixed_k and session.default_k == 16
    with pytest.raises(DemoInputError, match="keeps all N=16 tokens; K must be 16"):
        session.ask(image_file, "Hi?", 4)
    assert [r["tokens"] for r in session.ask(image_file, "Hi?", 16, max_new_tokens=2)["rows"]] == [16, 16]


def test_the_embedded_checkpoint_and_example_are_there():
    assert (DEMO_CHECKPOINT / "model.safetensors").is_file() and DEMO_EXAMPLE.is_file()
    size = sum(p.stat().st_size for p in DEMO_CHECKPOINT.parent.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"demo assets take {size / 2**20:.1f} MiB"
    example = load_example()
    assert Path(example["image"]).is_file() and example["question"].endswith("?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`python -m sec_mllm.demo` (the embedded checkpoint) on a free port; its log on failure."""
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "sec_mllm.demo", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 240
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"the demo did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


@pytest.fixture(scope="module")
def browser():
    sync_api = require_extra("playwright.sync_api")
    if not Path(CHROMIUM).is_file():
        if os.environ.get("SEC_MLLM_REQUIRE_EXTRAS") == "1":
            raise AssertionError(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.mark.slow
def test_the_page_answers_the_bundled_example_in_a_browser(demo_server, browser, tmp_path):
    require_extra("gradio")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo_server, wait_until="domcontentloaded")
    page.wait_for_selector("#ask", timeout=60_000)
    page.locator("#example").get_by_text(load_example()["question"]).first.click()  # the bundled example
    page.wait_for_selector("#preview img", timeout=60_000)
    assert page.locator("#question textarea").input_value() == load_example()["question"]
    page.locator("#ask").click()
    page.wait_for_function(
        "document.querySelector('#answer textarea').value.length > 0 && document.querySelector('#clusters img')",
        timeout=180_000,
    )
    page.wait_for_function("!document.querySelector('.pending, .generating')", timeout=60_000)  # done, not fading
    table = page.locator("#table").inner_text()
    assert "visual tokens" in table and "time to first token" in table and "all N" in table
    shot = tmp_path / "demo.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("SEC_MLLM_DEMO_SCREENSHOT"):  # refresh the README's picture: docs/demo.png
        shutil.copy2(shot, os.environ["SEC_MLLM_DEMO_SCREENSHOT"])


@pytest.mark.slow
def test_an_unreadable_upload_shows_a_message_not_a_traceback(demo_server, browser, tmp_path):
    require_extra("gradio")
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"not an image at all")
    page = browser.new_page()
    page.goto(demo_server, wait_until="domcontentloaded")
    page.wait_for_selector("#ask", timeout=60_000)
    page.locator("#image input[type=file]").set_input_files(str(broken))
    page.wait_for_selector(".toast-body", timeout=60_000)
    assert "cannot read holiday.jpg as an image" in page.locator(".toast-body").first.inner_text()
    page.locator("#question textarea").fill("What is it?")
    page.locator("#ask").click()
    page.wait_for_function(
        "document.querySelectorAll('.toast-body').length > 1 || "
        "(document.querySelector('.toast-body') && "
        "document.querySelector('.toast-body').innerText.includes('(2)'))",
        timeout=60_000,
    )
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and page.locator("#answer textarea").input_value() == ""


@pytest.mark.parametrize("what", ["not a llava", "k above n"])
def test_the_command_refuses_a_bad_checkpoint_or_k_with_one_line(what, tmp_path, tokenizer):
    from transformers import AutoModelForCausalLM

    from sec_mllm.tiny import tiny_llama_config

    args = ["--num-tokens", "65"]  # the embedded checkpoint has N = 64
    if what == "not a llava":
        AutoModelForCausalLM.from_config(tiny_llama_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "lm")
        args = ["--model-path", str(tmp_path / "lm")]
    result = subprocess.run(
        [sys.executable, "-m", "sec_mllm.demo", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    expected = "model_type 'llama'" if what == "not a llava" else "num_tokens=65 is larger than the number of input"
    assert result.stderr.strip().splitlines()[-1].startswith("sec_mllm.demo: ") and expected in result.stderr
