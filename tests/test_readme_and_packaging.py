"""The README is a short guide whose links work; the package metadata, `--help` and completion."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgernn.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def relative_links(markdown: str) -> list[str]:
    targets = [m.group(1) for m in LINK.finditer(markdown)]
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_readme_is_a_short_guide():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 180, f"README.md has {len(lines)} lines; keep it a guide and move detail to docs/"


def test_every_relative_link_in_the_readme_resolves():
    links = relative_links(README.read_text(encoding="utf-8"))
    assert links, "the README links its guides"
    missing = [link for link in links if not (ROOT / link.split("#")[0]).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_the_link_check_sees_every_kind_of_link():
    text = "[a](docs/a.md) ![img](docs/p.png) [b](docs/b.md#part) [web](https://x.org) [top](#x) [m](mailto:a@b)"
    assert relative_links(text) == ["docs/a.md", "docs/p.png", "docs/b.md#part"]


def test_help_lists_commands_in_workflow_order():
    out = CliRunner().invoke(cli, ["--help"]).stdout
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed[:9] == ["train", "export", "validate", "evaluate", "compare", "run", "bench", "verify", "info"]


def test_shell_completion_script():
    result = CliRunner().invoke(cli, [], prog_name="edgernn", env={"_EDGERNN_COMPLETE": "bash_source"})
    assert "_edgernn_completion" in result.stdout and "complete " in result.stdout


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_package_metadata():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "setuptools>=77" in project["build-system"]["requires"]  # PEP 639 license fields
    extras = meta["optional-dependencies"]
    assert [r.split(">")[0].split("=")[0].split("<")[0] for r in extras["litert"]] == ["ai-edge-litert"]
    assert not [r for extra in ("tflite", "litert") for r in extras[extra] if "==" in r]  # ranges, not pins
    assert (ROOT / "edgernn" / "py.typed").exists()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["edgernn"]
