"""The built site in headless Chromium: headings render, no console output, no failed
requests, and screenshots under site-screenshots/ for a human to look at."""

import functools
import re
import subprocess
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ._helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "site-screenshots"
BROWSER_TIMEOUT_S = 60

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (.ci/run installs it: apt-get install chromium)",
)

# (path, expected <h1>, expected <h2> texts)
PAGES = {
    "home": ("", "diffbio-soft-ops", ["What soft operations are, and why", "Install",
                                      "A ten-line example"]),
    "tables": ("reference/", "Operation tables", ["Elementwise", "Sorting and ordering",
                                                  "Support matrix"]),
    "api-sort": ("reference/api/sorting/", "Sorting and ordering", ["sort", "argsort",
                                                                    "top_k"]),
    "guide-modes": ("guide/modes/", "Modes and their continuity classes",
                    ["The sigmoidal foundation", "Which mode to use"]),
    "examples": ("examples/", "Examples", ["Learned read filtering",
                                           "Causal variant selection with a soft top-k",
                                           "Soft Smith–Waterman local alignment"]),
}
# Pages whose formulas must reach the browser as MathML, and how many at least.
MATH_PAGES = {"api-sort": 8, "guide-modes": 5, "examples": 4}
# Pages whose generated images must all load (their requests are checked below).
IMAGE_PAGES = {"guide-modes": 1, "examples": 6}
# Console lines: every console message a page logs (log, warning, error, uncaught error).
CONSOLE = re.compile(r"^\[[^\]]*:(?:INFO|WARNING|ERROR):CONSOLE[^\]]*\].*$", re.MULTILINE)


class Server:
    """http.server on 127.0.0.1, on a free port, in a thread; records every response."""

    def __init__(self, directory: Path):
        self.responses: list[tuple[str, int]] = []
        responses = self.responses

        class Handler(SimpleHTTPRequestHandler):
            def log_request(self, code="-", size="-"):
                responses.append((self.path, int(code)))

            def log_message(self, format, *args):
                pass

        handler = functools.partial(Handler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with the flags that work on this machine's closed network."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000", *args,
            ],
            capture_output=True,
            text=True,
            timeout=BROWSER_TIMEOUT_S,
        )


def headings(dom: str, level: int) -> list[str]:
    found = re.findall(rf"<h{level}\b[^>]*>(.*?)</h{level}>", dom, re.DOTALL)
    return [re.sub(r"<[^>]+>|¶|&para;", "", h).strip() for h in found]


@pytest.fixture(scope="module")
def server(site_build):
    assert site_build.returncode == 0, site_build.output
    with Server(site_build.site) as running:
        yield running


def test_the_console_scan_catches_a_broken_page(tmp_path):
    """The detector itself: an uncaught error and a console.error are both reported."""
    (tmp_path / "index.html").write_text(
        "<html><body><h1>broken</h1><script>console.error('boom-console');"
        "throw new Error('boom-uncaught');</script></body></html>"
    )
    with Server(tmp_path) as running:
        result = chromium("--dump-dom", running.url)
    lines = CONSOLE.findall(result.stderr)
    assert any("boom-console" in line for line in lines), result.stderr[-2000:]
    assert any("Uncaught Error: boom-uncaught" in line for line in lines), lines


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_without_errors(server, name):
    path, h1, h2s = PAGES[name]
    url = server.url + path
    start = len(server.responses)
    result = chromium("--dump-dom", url)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert headings(dom, 1) == [h1], headings(dom, 1)
    for heading in h2s:
        assert heading in headings(dom, 2), (heading, headings(dom, 2))
    assert CONSOLE.findall(result.stderr) == [], "console output on " + url
    failed = [(p, code) for p, code in server.responses[start:] if code >= 400]
    assert failed == [], failed
    # Material's JavaScript ran: it adds the `js` class to <html> (absent from the HTML file).
    assert re.search(r'<html[^>]*class="[^"]*\bjs\b', dom), dom[:300]
    # Formulas arrive as MathML, which Chromium renders itself: no TeX, no math script.
    assert dom.count("<math") >= MATH_PAGES.get(name, 0)
    assert "\\frac" not in dom and "\\mathrm" not in dom
    images = [p for p, code in server.responses[start:] if p.endswith(".png") and code == 200]
    assert len(images) >= IMAGE_PAGES.get(name, 0), images

    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    result = chromium(f"--screenshot={shot}", "--window-size=1280,900", url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.exists() and shot.stat().st_size > 10_000
