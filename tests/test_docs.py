"""The documentation site (mkdocs.yml, docs/) works offline: nothing it loads comes from another host, and
code blocks are highlighted when the site is built (Pygments), not by a script from a CDN."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# Uses no test database (a subprocess, a stand-in or pure functions): the SQLite pass runs it once.
pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
# What a page loads by itself (scripts, stylesheets, images, fonts); links a reader clicks are fine.
LOADED = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=\"([^\"]+)\"|<link\b[^>]*\bhref=\"([^\"]+)\"", re.I
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs-site")
    subprocess.run(  # noqa: S603  (our interpreter, the mkdocs it has installed)
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def test_no_page_loads_anything_from_another_host(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 10
    external = {
        f"{page.relative_to(site)}: {url}"
        for page in pages
        for match in LOADED.finditer(page.read_text(encoding="utf-8"))
        for url in match.groups()
        if url and re.match(r"(https?:)?//", url)
    }
    assert not external, sorted(external)[:10]


def test_code_blocks_are_highlighted_in_the_built_pages(site: Path) -> None:
    page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    block = re.search(r'<div class="codehilite"[^>]*>.*?CACHES.*?</pre>', page, re.S)
    assert block, "no highlighted Python block with CACHES"
    assert "<span style=" in block.group(0)  # colours inline: no stylesheet to fetch either


def test_the_layout_table_names_every_module_of_the_package() -> None:
    """docs/development.md's layout table matches the tree: every module is named, none that is gone."""
    package = ROOT / "django_rt_sessions"
    section = (ROOT / "docs" / "development.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    table = "\n".join(line for line in section.splitlines() if line.startswith("| `"))
    named = set(re.findall(r"`([a-z_/]+(?:\.py|/))`", table))
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "__init__.py"
        and path.parts[len(package.parts)] not in ("migrations", "management", "testing")
    }
    folders = {"management/commands/", "testing/"}
    assert modules - named == set(), "modules missing from docs/development.md's layout table"
    assert named - modules - folders == set(), "the layout table names modules that do not exist"
