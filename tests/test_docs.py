"""The documentation site: its examples run, it builds strictly, it renders.

- Every ``python`` block of every page runs (the blocks of a page share one
  namespace, in order, as a reader would run them), and a ``text`` block right
  after one is exactly what it prints.
- ``mkdocs build --strict`` succeeds: no warning, no broken link or anchor.
- Headless Chromium (Debian's ``chromium``) opens the index and API pages
  from a server on 127.0.0.1; they render their headings, and every internal
  link of every page resolves. Without Chromium the check is skipped, unless
  ``REQUIRE_BROWSER`` is set (CI sets it, after installing Chromium).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Generator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(path.name for path in DOCS.glob("*.md"))
EXCERPTS = {"redis.md": "examples/redis_jobs.py"}
"""Pages whose python blocks are excerpts of the example program given."""
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples(page: str) -> list[tuple[str, str | None]]:
    """The page's python blocks, each with the text block that follows it, if any."""
    text = (DOCS / page).read_text()
    found: list[tuple[str, str | None]] = []
    fences = list(FENCE.finditer(text))
    for i, fence in enumerate(fences):
        if fence.group(1) != "python":
            continue
        expected = None
        if i + 1 < len(fences) and fences[i + 1].group(1) == "text":
            between = text[fence.end() : fences[i + 1].start()]
            if not between.strip():
                expected = fences[i + 1].group(2)
        found.append((fence.group(2), expected))
    return found


class TestExamples:
    """Every code example in the documentation runs and prints what it shows."""

    @pytest.mark.parametrize("page", PAGES)
    def test_page_examples(self, page: str) -> None:
        """The page's python blocks run in order; shown outputs match.

        The blocks of a page about a server (``EXCERPTS``) are excerpts of an
        example program the suite runs against one: each must still be its
        code, word for word.
        """
        blocks = examples(page)
        if page in EXCERPTS:
            program = (ROOT / EXCERPTS[page]).read_text()
            assert blocks, page
            for number, (code, _) in enumerate(blocks, 1):
                assert code in program, f"{page} block {number}"
            return
        namespace: dict[str, object] = {"__name__": f"docs_{page[:-3]}"}
        for number, (code, expected) in enumerate(blocks, 1):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{page} block {number}", "exec"), namespace)  # noqa: S102
            if expected is not None:
                assert out.getvalue() == expected, f"{page} block {number}"

    def test_every_page_with_code_has_checked_output(self) -> None:
        """The pages that teach by example show outputs, and those are checked."""
        for page in ("index.md", "tutorial.md", "concepts.md", "migrating.md"):
            assert any(expected for _, expected in examples(page)), page


def build_site(destination: Path) -> subprocess.CompletedProcess[str]:
    """Run ``mkdocs build --strict`` into ``destination``."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(destination)],
        cwd=ROOT,
        # Material prints a notice about its successor on every build.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built strictly once for this module."""
    destination = tmp_path_factory.mktemp("site")
    result = build_site(destination)
    assert result.returncode == 0, result.stdout + result.stderr
    return destination


@pytest.mark.slow
class TestBuild:
    """``mkdocs build --strict``."""

    def test_builds_strictly_with_every_page(self, site: Path) -> None:
        """No warning; every page of the nav and the plot are in the site."""
        for page in PAGES:
            name = "" if page == "index.md" else page[:-3] + "/"
            assert (site / name / "index.html").is_file(), page
        assert (site / "performance.png").is_file()
        reference = (site / "reference" / "index.html").read_text()
        for name in ("OrderedStateMachine", "wait_for_at_least", "OrderedEnum"):
            assert name in reference


class _Links(HTMLParser):
    """Collect the links and headings of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.headings: list[str] = []
        self._in_heading = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        elif tag in {"h1", "h2"}:
            self._in_heading = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"h1", "h2"}:
            self._in_heading = False

    def handle_data(self, data: str) -> None:
        if self._in_heading:
            self.headings[-1] += data


@contextlib.contextmanager
def serving(directory: Path) -> Generator[str, None, None]:
    """Serve ``directory`` on 127.0.0.1 (an ephemeral port); yield its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium() -> str | None:
    """The path of a Chromium binary, if one is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def rendered(browser: str, url: str, profile: Path) -> str:
    """The DOM of ``url`` after Chromium has rendered it (scripts included)."""
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
class TestBrowser:
    """The built site in headless Chromium, from a local HTTP server."""

    @pytest.fixture
    def browser(self) -> str:
        """Chromium's path, or a skip (a failure where it is required)."""
        found = chromium()
        if found is None:
            if os.environ.get("REQUIRE_BROWSER"):
                pytest.fail("REQUIRE_BROWSER is set but Chromium is not installed")
            pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
        return found

    @pytest.mark.parametrize(
        ("path", "headings"),
        [
            ("", ["ordered-statemachine", "Install", "Where to go next"]),
            (
                "reference/",
                ["API reference", "OrderedStateMachine", "OrderedStateSkipped"],
            ),
        ],
        ids=["index", "reference"],
    )
    def test_page_renders_its_headings(
        self,
        browser: str,
        site: Path,
        tmp_path: Path,
        path: str,
        headings: list[str],
    ) -> None:
        """Chromium renders the page with its headings and the theme's chrome."""
        with serving(site) as base:
            dom = rendered(browser, base + path, tmp_path / "profile")
        parsed = _Links()
        parsed.feed(dom)
        for heading in headings:
            assert any(heading in found for found in parsed.headings), (
                heading,
                parsed.headings,
            )
        assert 'class="md-header' in dom  # Material's header, drawn by the theme

    def test_no_broken_internal_links(self, browser: str, site: Path) -> None:
        """Every internal link of every page, anchors included, resolves."""
        del browser  # the links are those of the rendered site
        with serving(site) as base:
            pages = [base] + [
                base + page[:-3] + "/" for page in PAGES if page != "index.md"
            ]
            for page in pages:
                html = urllib.request.urlopen(page).read().decode()  # noqa: S310 (http)
                parsed = _Links()
                parsed.feed(html)
                for link in parsed.links:
                    target = urllib.parse.urljoin(page, link)
                    if not target.startswith(base):
                        continue
                    address, _, anchor = target.partition("#")
                    try:
                        response = urllib.request.urlopen(address)  # noqa: S310 (http)
                        body = response.read().decode(errors="replace")
                    except urllib.error.HTTPError as exc:
                        pytest.fail(f"{page}: {link} -> {exc.code}")
                    if anchor:
                        assert f'id="{anchor}"' in body, f"{page}: {link}"
