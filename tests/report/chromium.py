"""Open an HTML file in headless Chromium and report what a person would see.

Drives Chromium over the DevTools protocol (``--remote-debugging-port``, one websocket, through
the small ``websocket-client`` package): loads the page from disk, collects console errors
and uncaught exceptions, lists the ``section[data-panel]`` panels, decodes every image and
measures its pixel spread on a canvas, and saves a screenshot of the page.

    python tests/report/chromium.py report.html shot.png   # prints the findings as JSON
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-allow-origins=*",
    "--remote-debugging-port=0",
    "--hide-scrollbars",
    "--window-size=1280,1000",
]

INSPECT = """
(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const images = imgs.map(img => {
    let std = -1;
    if (img.naturalWidth > 0) {
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      let s = 0, s2 = 0, n = 0;
      for (let k = 0; k < d.length; k += 4) {
        const v = (d[k] + d[k + 1] + d[k + 2]) / 3; s += v; s2 += v * v; n++;
      }
      const m = s / n; std = Math.sqrt(Math.max(0, s2 / n - m * m));
    }
    const r = img.getBoundingClientRect();
    return {panel: img.dataset.panelImage || null, width: img.naturalWidth,
            height: img.naturalHeight, std: std,
            box: [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]};
  });
  return {
    title: document.title,
    panels: [...document.querySelectorAll('section[data-panel]')].map(s => s.dataset.panel),
    images: images,
    resources: performance.getEntriesByType('resource').map(r => r.name),
    height: document.documentElement.scrollHeight,
  };
})()
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


class DevTools:
    """Just enough of the DevTools protocol: numbered calls, events kept in order."""

    def __init__(self, ws_url: str, timeout: float = 60.0) -> None:
        import websocket  # websocket-client

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id, self.events = 0, []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.events.append(json.loads(self.ws.recv()))

    def close(self) -> None:
        self.ws.close()


def errors_in(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions and error log entries (e.g. failed loads)."""
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value")) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + p["exceptionDetails"].get("text", ""))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def inspect_page(
    html: Path, screenshot: Path | None = None, chromium: str | None = None
) -> dict[str, Any]:
    """Load ``html`` in a fresh headless Chromium; findings as a dict (``errors``, ``panels``,
    ``images`` with width, height, pixel std and ``box``: left, top, width, height on the
    page; ``resources``), screenshot saved if asked."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium")
    profile = tempfile.mkdtemp(prefix="learnscope-chromium-")
    proc = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the helpers it starts end with it
    )
    try:
        port_file, end = Path(profile) / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        try:
            for domain in ("Page", "Runtime", "Log"):
                tools.call(f"{domain}.enable")
            tools.call("Page.navigate", url=Path(html).resolve().as_uri())
            tools.wait_for("Page.loadEventFired")
            found = tools.call(
                "Runtime.evaluate", expression=INSPECT, awaitPromise=True, returnByValue=True
            )
            if "exceptionDetails" in found:
                raise RuntimeError(f"inspection script failed: {found['exceptionDetails']}")
            result = found["result"]["value"]
            if screenshot is not None:
                height = min(int(result["height"]), 6000)
                tools.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=1280,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                shot = tools.call("Page.captureScreenshot", format="png")
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            tools.call("Runtime.evaluate", expression="1")  # drain late console messages
            result["errors"] = errors_in(tools.events)
            return result
        finally:
            try:  # a clean exit lets chromium reap its own helper processes
                tools.ws.send(json.dumps({"id": 0, "method": "Browser.close"}))
            except Exception:
                pass
            tools.close()
    finally:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group started above, only
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    out = inspect_page(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps(out, indent=1))
