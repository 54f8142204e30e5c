"""The README stays a front page, and the docs site builds with no broken link or reference."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 250

FENCED = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
EXPLICIT_ID = re.compile(r"\{\s*#([\w-]+)\s*\}\s*$")


def _links(markdown: str) -> list[str]:
    """Targets of the markdown links and images outside code."""
    prose = INLINE_CODE.sub("", FENCED.sub("", markdown))
    return LINK.findall(prose)


def _anchors(markdown: str) -> set[str]:
    """Heading ids as MkDocs makes them (Python-Markdown's toc slugify), or their {#id}."""
    anchors = set()
    for heading in HEADING.findall(FENCED.sub("", markdown)):
        explicit = EXPLICIT_ID.search(heading)
        if explicit:
            anchors.add(explicit.group(1))
            continue
        text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        anchors.add(re.sub(r"[-\s]+", "-", text))
    return anchors


def test_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, more than {MAX_README_LINES}: move the detail to a "
        "page under docs/ and link it")


def test_readme_relative_links_resolve():
    broken = []
    for target in _links(README.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto: not checked offline; in-page anchors: GitHub's own
        path, _, anchor = target.partition("#")
        file = ROOT / path
        if not file.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text("utf-8")):
            broken.append(f"{target}: {path} has no heading #{anchor}")
    assert not broken, "README.md links to:\n" + "\n".join(broken)


def test_anchor_ids_match_mkdocs():
    # The README check above relies on _anchors agreeing with MkDocs on these headings.
    assert _anchors("## The pipeline's training path\n## Using a local copy of the archive\n"
                    "### Epochs at half speed, by chance {#epochs-at-half-speed}\n") == {
        "the-pipelines-training-path", "using-a-local-copy-of-the-archive",
        "epochs-at-half-speed"}


# Where the code, params and CI point readers at the README or a docs page.
REFERRING = ["pipeline", "benchmarks", "tests", ".github", ".ci", "params.yaml",
             "params.small.yaml", "dvc.yaml", ".gitignore", "pyproject.toml"]
README_SECTION_REF = re.compile(r'README "([^"]+)"')
DOCS_REF = re.compile(r"\bdocs/([\w./-]+\.md)(?:#([\w-]+))?")


def _referring_files() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "--", *REFERRING], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    files = [ROOT / name for name in tracked if (ROOT / name).is_file()]
    return [file for file in files if file.name != Path(__file__).name
            and file.suffix in {".py", ".yaml", ".yml", ".toml", ".md", ".txt", ""}]


def _references(pattern: re.Pattern) -> list[tuple[str, tuple]]:
    found = []
    for file in _referring_files():
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for match in pattern.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{file.relative_to(ROOT)}:{line}", match.groups()))
    return found


def test_references_to_docs_pages_resolve():
    broken = []
    for where, (page, anchor) in _references(DOCS_REF):
        target = ROOT / "docs" / page
        if not target.exists():
            broken.append(f"{where}: docs/{page} does not exist")
        elif anchor and anchor not in _anchors(target.read_text(encoding="utf-8")):
            broken.append(f"{where}: docs/{page} has no heading #{anchor}")
    assert not broken, "\n".join(broken)


def test_references_to_readme_sections_resolve():
    headings = {h.strip().lower() for h in HEADING.findall(
        FENCED.sub("", README.read_text(encoding="utf-8")))}
    stale = [f'{where}: README "{name}"' for where, (name,) in _references(README_SECTION_REF)
             if name.strip().lower() not in headings]
    assert not stale, ("README has no such section (it may have moved to docs/):\n"
                       + "\n".join(stale))


def test_docs_site_builds_strict(tmp_path):
    """Broken links and anchors, a missing included file or README section, and a
    cross-reference to a Python object that is gone all fail the strict build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    site = tmp_path / "site"
    assert (site / "index.html").exists()
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert 'id="pipeline.' in api, "the API page documents no module of the pipeline package"
