"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no websocket library,
only the standard library): open a page, wait, evaluate, take a screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

#: How long one DevTools command may take before Chromium counts as hung.
READ_TIMEOUT_S = 60.0

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--no-first-run",
    "--remote-debugging-pipe",
    "--window-size=1600,900",
]


class BrowserGoneError(RuntimeError):
    """Chromium exited (crashed or was killed) while being driven."""


class Browser:
    """One Chromium process; commands go to its fd 3, answers come from its fd 4 (NUL-separated JSON)."""

    def __init__(self, executable: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="rdstd-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire() -> None:
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self._log_file = Path(self._profile.name) / "chromium.log"
        self._log = self._log_file.open("wb")  # closed in close()
        self.process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            preexec_fn=wire,  # noqa: PLW1509 - only dup2 of two fds, before exec
            pass_fds=(3, 4),
            start_new_session=True,  # its renderer and GPU processes share its process group
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.session = ""

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        """Send one command and return its result (events in between are skipped)."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + READ_TIMEOUT_S  # events alone (console logs, frames) never extend it
        while True:
            if time.monotonic() > deadline:
                raise BrowserGoneError(f"{method}: no answer within {READ_TIMEOUT_S:.0f} s: {self.log_tail()}")
            answer = self._read()
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_child], [], [], READ_TIMEOUT_S)
            if not ready:
                raise BrowserGoneError(f"chromium did not answer within {READ_TIMEOUT_S:.0f} s: {self.log_tail()}")
            data = os.read(self._from_child, 1 << 20)
            if not data:
                raise BrowserGoneError(
                    f"chromium closed the DevTools pipe (exit {self.process.poll()}): {self.log_tail()}"
                )
            self._buffer += data
        raw, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    def log_tail(self, lines: int = 5) -> str:
        """The last lines Chromium wrote to stderr."""
        self._log.flush()
        text = self._log_file.read_bytes().decode(errors="replace").strip()
        return " | ".join(text.splitlines()[-lines:])

    def open(self, url: str) -> None:
        """Open ``url`` in a new page and attach to it."""
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)
        self.session = attached["sessionId"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the page."""
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def wait_for(self, expression: str, timeout_s: float) -> bool:
        """Poll ``expression`` until it is true or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.5)
        return False

    def close(self) -> None:
        """Stop this Chromium and its helper processes (its own process group, nothing else) and remove its
        profile."""
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        from rdstd.view.session import stop

        stop(self.process)
        self._log.close()
        self._profile.cleanup()
