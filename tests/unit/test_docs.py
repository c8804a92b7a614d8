"""README.md stays a short entry page whose links work, and every docs page is in the site's nav.
(`make docs` runs `mkdocs build --strict`, which checks the pages' own links and anchors.)"""

from __future__ import annotations

import re

from ruamel.yaml import YAML

from tests.conftest import ROOT

README = ROOT / "README.md"
MAX_README_LINES = 150
# [text](target) and ![alt](target); the target ends at whitespace or ')'
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)[^)]*\)")


def _relative_links(text: str) -> list[str]:
    targets = LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_readme_is_at_most_150_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md: {len(lines)} lines; move detail to a page under docs/"


def test_every_relative_link_in_the_readme_points_to_a_file():
    links = _relative_links(README.read_text())
    assert links, "README.md: no relative link found (the link pattern no longer matches?)"
    missing = [t for t in links if not (ROOT / t.split("#", 1)[0]).exists()]
    assert missing == [], f"README.md links to files that do not exist: {missing}"


def _nav_pages(nav: list) -> set[str]:
    pages: set[str] = set()
    for entry in nav:
        for value in entry.values() if isinstance(entry, dict) else [entry]:
            pages |= _nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    config = YAML(typ="safe", pure=True).load((ROOT / "mkdocs.yml").read_text())
    docs = ROOT / config.get("docs_dir", "docs")
    nav = _nav_pages(config["nav"])
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    assert pages - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - pages == set(), "nav entries with no page under docs/"
