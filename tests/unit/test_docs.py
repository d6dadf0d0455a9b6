"""The docs stay navigable: a short README, and no relative link to a missing file or heading."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import APP_DIR

README_MAX_LINES = 250
PAGES = sorted([APP_DIR / "README.md", APP_DIR / "deploy" / "README.md", *(APP_DIR / "docs").rglob("*.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


def _prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (links and headings there are not markdown)."""
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of `page`, with GitHub's -1, -2 suffixes for repeated headings."""
    found: set[str] = set()
    for line in _prose_lines(page):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug = _slug(match.group(1))
        count = 0
        while slug in found:
            count += 1
            slug = f"{base}-{count}"
        found.add(slug)
    return found


def broken_links(page: Path) -> list[str]:
    """Relative links of `page` whose file, or heading within it, does not exist."""
    broken = []
    for line in _prose_lines(page):
        for target in LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto:, file: ... are not ours to check
            path_part, _, anchor = target.partition("#")
            linked = (page.parent / path_part).resolve() if path_part else page
            if not linked.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    return broken


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = (APP_DIR / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; at most {README_MAX_LINES}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(APP_DIR)))
def test_every_relative_link_points_to_an_existing_file_and_heading(page: Path) -> None:
    assert broken_links(page) == []


def test_a_broken_link_and_a_missing_heading_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Resume, and more\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n"
        "[ok](other.md#resume-and-more) [ok](#page) [web](https://flower.ai)\n"
        "```\n[in code](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#nothing) ![img](pic.png)\n"
    )
    assert broken_links(page) == [
        "missing.md (no such file)",
        "other.md#nothing (no heading #nothing in other.md)",
        "pic.png (no such file)",
    ]
