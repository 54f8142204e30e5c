"""MkDocs hook: the API page lists every module of the `pipeline` package, found on disk.

docs/api.md holds the marker below; each build replaces it with one mkdocstrings block per
module, so a module that is added, moved or removed changes the page without an edit here.
"""

from __future__ import annotations

from pathlib import Path

MARKER = "<!-- api-modules -->"
PACKAGE = "pipeline"


def api_modules(root: Path) -> list[str]:
    """Dotted names of the package and its modules, public ones only, in path order."""
    names = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return names


def on_page_markdown(markdown, page, config, files, **kwargs):
    if MARKER not in markdown:
        return markdown
    root = Path(config.config_file_path).parent
    blocks = "\n\n".join(f"::: {name}" for name in api_modules(root))
    return markdown.replace(MARKER, blocks)
