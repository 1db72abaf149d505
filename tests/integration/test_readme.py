"""What the README and the docs point to exists: file links, the service's pages, and every
``faceledger`` command of the README's code blocks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from faceledger.api import create_app
from faceledger.cli.app import app
from faceledger.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks/README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SERVICE_PATH = re.compile(r"`(/(?:docs|ui/|openapi\.json|api/v1/openapi\.json))`")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_file_links_resolve(doc: Path) -> None:
    missing = []
    for target in LINK.findall(doc.read_text()):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert missing == [], f"{doc.name} links to missing files: {missing}"


def test_service_pages_named_in_the_docs_answer(tmp_path: Path) -> None:
    named = set()
    for doc in (REPO / "README.md", REPO / "docs/api.md"):
        named |= set(SERVICE_PATH.findall(doc.read_text()))
    assert {"/docs", "/ui/", "/api/v1/openapi.json"} <= named, named
    with TestClient(create_app(Settings(data_dir=tmp_path))) as client:
        for path in sorted(named):
            r = client.get(path, follow_redirects=True)
            assert r.status_code == 200, (path, r.status_code)


def _readme_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in re.split(r"&&|\|(?!\s*(?:show|delete|export|head|report|decide))", line):
                words = part.split()
                if words and words[0].endswith("faceledger"):
                    commands.append(words[1:])
    return commands


def test_every_readme_command_exists() -> None:
    root = get_command(app)
    runner = CliRunner()
    checked = set()
    for words in _readme_commands():
        path: list[str] = []
        group = root
        for w in words:
            sub = getattr(group, "commands", {}).get(w)
            if sub is None:
                break
            path.append(w)
            group = sub
        if words and not words[0].startswith("-"):
            assert path, f"README names an unknown command: faceledger {' '.join(words)}"
        if tuple(path) in checked or not path:
            continue
        checked.add(tuple(path))
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
    assert len(checked) >= 15, sorted(checked)
