"""demo/web_demo.py in a real headless browser: Debian's chromium driven by
playwright, on the app served by the script on a free localhost port.

Marked ``browser``; skipped (with the command that fixes it) without
``/usr/bin/chromium`` (``make install-browser``) or without playwright /
gradio (``pip install -r requirements/demo.txt``)::

    HF_HUB_OFFLINE=1 .venv/bin/python -m pytest tests/test_demo -m browser
"""
from __future__ import annotations

import io
import os.path as osp
import socket

import numpy as np
import pytest
from PIL import Image

from ..test_apis import CPU_CONFIG
from .conftest import EXPRESSIONS

pytestmark = pytest.mark.browser

CHROMIUM = '/usr/bin/chromium'
#: headless, and nothing but the page: without the background-networking
#: flags chromium waits on the (closed) network; /dev/shm of a container
#: is small
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--disable-dev-shm-usage']
INSTALL_DEMO = 'pip install -r requirements/demo.txt'
#: milliseconds the page may take for a step (the model runs on CPU)
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module')
def browser():
    if not osp.isfile(CHROMIUM):
        pytest.skip(f'{CHROMIUM} not found: run `make install-browser` '
                    '(apt-get install chromium)')
    sync_api = pytest.importorskip('playwright.sync_api',
                                   reason=INSTALL_DEMO)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope='module')
def served(browser, web_demo, cpu_checkpoint, threshold, tmp_path_factory):
    """The URL of the demo, started as its command line would (CPU config,
    the test's checkpoint, the test's threshold)."""
    pytest.importorskip('gradio', reason=INSTALL_DEMO)
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('GRADIO_TEMP_DIR', str(tmp_path_factory.mktemp('gradio')))
        args = web_demo.parse_args([
            '--config', CPU_CONFIG, '--checkpoint', cpu_checkpoint,
            '--device', 'cpu', '--threshold', repr(threshold),
            '--host', '127.0.0.1', '--port', str(port)])
        app = web_demo.run(args, block=False)
        try:
            yield f'http://127.0.0.1:{port}/'
        finally:
            app.close()


@pytest.fixture
def page(browser, served):
    """A fresh page on the demo; ``page.requests`` lists every URL it
    asked for."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    requests = []
    page.on('request', lambda request: requests.append(request.url))
    page.goto(served, wait_until='networkidle')
    page.requests = requests
    yield page
    page.close()


@pytest.fixture(scope='module')
def scene_file(scene, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp('upload') / 'scene.png')
    Image.fromarray(scene).save(path)
    return path


def submit(page, image_file: str, text: str) -> None:
    """Upload the image, type the text, press Segment."""
    page.set_input_files('#image input[type=file]', image_file)
    page.locator('#image img').wait_for()  # the upload is shown
    page.fill('#expressions textarea', text)
    page.click('#segment')


def read_image(page, img) -> np.ndarray:
    """The picture an ``<img>`` of the page shows, fetched from its src."""
    response = page.request.get(img.get_attribute('src'))
    assert response.ok, response.status
    return np.asarray(Image.open(io.BytesIO(response.body())))


def test_page_segments_two_expressions(page, served, web_demo,
                                       cpu_inferencer, scene, scene_file,
                                       threshold):
    from playwright.sync_api import expect
    submit(page, scene_file, '\n'.join(EXPRESSIONS))
    thumbnails = page.locator('#masks img')
    expect(thumbnails).to_have_count(2, timeout=TIMEOUT_MS)
    page.locator('#overlay img').wait_for()

    # what the inferencer and image_demo's drawing make of the same inputs
    ref = cpu_inferencer(scene, list(EXPRESSIONS), threshold=threshold,
                         channel_order='rgb')
    assert 0.3 < ref.masks[0].mean() < 0.7  # a mask, not all or nothing
    expected = web_demo.draw(cpu_inferencer, ref, 0.5)
    overlay = read_image(page, page.locator('#overlay img'))
    # the image (80x96) on top, the legend strip below, 360 px wide
    assert overlay.shape == expected.shape
    assert overlay.shape[0] > 80 and overlay.shape[1] == 360
    np.testing.assert_array_equal(overlay, expected)  # PNG: lossless
    assert not np.array_equal(overlay[:80, :96], scene)  # masks painted

    for i, expression in enumerate(EXPRESSIONS):
        img = thumbnails.nth(i)
        mask = read_image(page, img)
        np.testing.assert_array_equal(mask, ref.masks[i] * np.uint8(255))
        caption = img.get_attribute('alt')
        assert caption.startswith(f'{i + 1}. {expression}: ')
        expect(page.locator('#masks')).to_contain_text(caption)

    # offline: the page asked this app for everything
    foreign = [url for url in page.requests
               if not url.startswith((served, 'data:', 'blob:'))]
    assert foreign == []


def test_page_shows_bad_inputs_as_errors(page, scene_file):
    from playwright.sync_api import expect
    submit(page, scene_file, '')
    expect(page.get_by_text('no expression: type one or more')).to_be_visible()
    page.fill('#expressions textarea', 'the red square\n[CLS] [SEP]')
    page.click('#segment')
    expect(page.get_by_text('line 2: ')).to_be_visible()
    # no result, no traceback
    assert page.locator('#overlay img').count() == 0
    assert page.locator('#masks img').count() == 0
    assert 'Traceback' not in page.inner_text('body')
