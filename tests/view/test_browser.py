"""The web viewer renders an episode rdstd wrote: serve the .rrd on 127.0.0.1, open it in headless Chromium (Debian's
``chromium``; ``.ci/run`` installs it), screenshot, and check the page is the viewer, not blank.

Outside CI a missing Chromium skips with the reason; under CI (``CI`` set) it fails: CI must run this test. It is
marked ``browser``: ``make test`` runs it alone after the rest of the suite, because Rerun's web server and Chromium's
software renderer each take a full core, and beside the parallel suite on a 2-core machine the page took minutes to
draw (alone it takes about 25 s)."""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import in_ci

pytest.importorskip("rerun")

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    """The Chromium executable; skip (fail under CI) when there is none."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found is None:
        why = "headless Chromium is not installed (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"{why}; CI must run the browser test (.ci/run installs it)")
        pytest.skip(why)
    return found


def test_a_missing_chromium_skips_outside_ci_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.view.test_browser.CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        chromium()


CANVAS = "(() => { const c = document.querySelector('canvas'); return !!c && c.width > 100 && c.height > 100 })()"


def drawn(png: bytes) -> tuple[bool, str]:
    """Whether a screenshot shows the viewer rather than a blank page (many colours, some contrast; the viewer's UI is
    dark, so its contrast is low until the plots have drawn), and what it measured."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    colors = len(np.unique(pixels.reshape(-1, 3), axis=0))
    return colors > 50 and float(pixels.std()) > 3, f"{colors} colors, std {pixels.std():.1f}"


def shoot(executable: str, url: str, attempts: int = 2, draw_s: float = 120.0) -> bytes:
    """A screenshot of ``url`` once the viewer's canvas is up and has drawn the recording: screenshots are taken every
    few seconds until one is drawn or ``draw_s`` passes (a loaded machine draws slowly), and the last is returned. A
    Chromium that dies (it can crash on a heavily loaded machine) gets one more try with a fresh process; a page that
    never renders does not."""
    from tests.view.browser import Browser, BrowserGoneError

    for attempt in range(attempts):
        browser = Browser(executable)
        try:
            browser.open(url)
            assert browser.wait_for(CANVAS, 90), "the viewer's canvas never appeared"
            deadline = time.monotonic() + draw_s
            while True:
                browser.wait_for("false", 3)  # let the wasm viewer load the recording and draw
                png = browser.screenshot()
                if drawn(png)[0] or time.monotonic() > deadline:
                    return png
        except BrowserGoneError:
            if attempt == attempts - 1:
                raise
        finally:
            browser.close()
    raise AssertionError("unreachable")


@pytest.mark.slow
@pytest.mark.browser
def test_the_web_viewer_renders_a_served_episode(tmp_path: Path) -> None:
    from PIL import Image

    from rdstd.view.episodes import open_view
    from rdstd.view.session import save, serve
    from tests.view.helpers import write

    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("the browser test runs alone, not beside the parallel suite: make test runs it after (-m browser)")
    executable = chromium()
    ds = write(tmp_path / "ds", [60])
    with open_view(ds) as view:
        files = save(view, [0], tmp_path / "rrd").files
    served = serve(files, memory_limit="256MiB")
    try:
        assert served.url.startswith("http://127.0.0.1:") and "127.0.0.1" in served.grpc_url
        png = shoot(executable, served.url)
    finally:
        served.stop()
    (Path(os.environ.get("RDSTD_VIEW_SCREENSHOT", tmp_path / "viewer.png"))).write_bytes(png)
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert pixels.shape[1] == 1600 and pixels.shape[0] > 600
    ok, measured = drawn(png)
    assert ok, f"blank page: {measured}"


def test_serve_binds_127_0_0_1_on_free_ports_and_stop_leaves_no_process(tmp_path: Path) -> None:
    import socket
    import urllib.request

    from rdstd.view.episodes import open_view
    from rdstd.view.session import _group_alive, save, serve
    from tests.view.helpers import write

    ds = write(tmp_path / "ds", [5])
    with open_view(ds) as view:
        files = save(view, [0], tmp_path / "rrd").files
    served = serve(files, memory_limit="128MiB")
    try:
        assert "--bind" in served.process.args and "127.0.0.1" in served.process.args  # type: ignore[operator]
        assert "--server-memory-limit" in served.process.args  # type: ignore[operator]
        web_port = int(served.url.split(":")[2].split("/")[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as page:
            assert page.status == 200
        address = socket.gethostbyname(socket.gethostname())
        if address != "127.0.0.1":  # not reachable on the machine's other addresses
            with pytest.raises(OSError), socket.create_connection((address, web_port), timeout=2):
                pass
    finally:
        served.stop()
    assert not _group_alive(served.process.pid), "the rerun binary behind the launcher was stopped too"
