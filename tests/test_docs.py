"""The docs: links resolve in a clone, the CLI reference is current, README stays short, and
the tree speaks of the product, not of how the work was organised."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

README_MAX_LINES = 300
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
# How the work was organised, never the product: sittings of work, issue numbers, folders
# named by sitting, stories of earlier defaults. API names such as ONNX Runtime's
# InferenceSession or pytest's scope="session" are not sittings and do not match.
_PROCESS_WORDS = re.compile(
    r"\b(?:this|previous|next|earlier|later|last|that|each|every|one|a|the)\s+sessions?\b"
    r"|\bsessions?\s+(?:\d+|before|after|by)\b|\bsession-by-session\b"
    r"|\bin\s+later\s+sessions\b|\bissue\s+\d+'s\b|\bissues?\s+#?\d+"
    r"|(?:(?<=^)|(?<=[\s/`(]))s\d{2}(?:-[a-z0-9]+)?(?=[/`)\s.,]|$)"
    r"|\bthe\s+previous\s+default\b",
    re.IGNORECASE | re.MULTILINE)


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.splitlines()


def broken_links(markdown: str, folder: Path, known: set[str]) -> list[str]:
    """Relative links (and images) of a markdown text whose file or folder is not in
    `known` (paths relative to the repository root); anchors and web links are skipped."""
    broken = []
    for target in _LINK.findall(markdown):
        path = target.split("#", 1)[0]
        if not path or "://" in path or path.startswith("mailto:"):
            continue
        resolved = (folder / path).resolve()
        try:
            relative = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            broken.append(target)
            continue
        if relative.rstrip("/") not in known:
            broken.append(target)
    return broken


def process_words(text: str) -> list[str]:
    return [match.group(0).strip() for match in _PROCESS_WORDS.finditer(text)]


def known_paths() -> set[str]:
    files = tracked_files()
    folders = {parent.as_posix() for name in files for parent in Path(name).parents}
    return set(files) | folders


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


# -- the checks, shown to fail --------------------------------------------------------------
def test_the_link_check_finds_a_broken_link():
    known = {"docs/serving.md", "docs"}
    text = "[ok](docs/serving.md#http) [gone](docs/nothing.md) ![img](docs/missing.png) " \
           "[web](https://example.org/x.md) [anchor](#install)"
    assert broken_links(text, ROOT, known) == ["docs/nothing.md", "docs/missing.png"]


def test_the_process_word_check_is_precise():
    # built from pieces, so this file holds none of the words it looks for
    sitting, ticket, earlier = "sess" + "ion", "iss" + "ue", "prev" + "ious"
    sample = (f"Measured in {sitting} 31; this {sitting}'s default; {ticket} 12's bound; "
              f"bench/s{31}/ and `s{25}-h32`; the {earlier} default's history")
    assert process_words(sample) == [f"{sitting} 31", f"this {sitting}", f"{ticket} 12's",
                                     f"s{31}", f"s{25}-h32", f"the {earlier} default"]
    assert process_words("ort.InferenceSession(path); scope=\"session\"; session.run(); "
                         "self.session; SessionOptions; an ONNX Runtime session; s3cret") == []


# -- the tree -------------------------------------------------------------------------------
def test_every_relative_link_resolves_in_a_clone():
    known = known_paths()
    broken = {str(doc.relative_to(ROOT)): broken_links(doc.read_text(encoding="utf-8"),
                                                       doc.parent, known)
              for doc in documents()}
    assert not {doc: links for doc, links in broken.items() if links}


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES


def test_no_process_words_in_tracked_text():
    hits = {}
    for name in tracked_files():
        path = ROOT / name
        if path.suffix in (".png", ".onnx", ".keras") or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found = process_words(text)
        if found:
            hits[name] = found[:5]
    assert not hits


@pytest.mark.slow
def test_cli_reference_is_what_the_commands_print():
    result = subprocess.run([sys.executable, "-m", "pipeline.cli_reference", "--check"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_the_cli_reference_check_fails_when_stale(tmp_path, monkeypatch):
    from pipeline import cli_reference

    stale = tmp_path / "cli.md"
    stale.write_text("# Command reference\n\nan older text\n", encoding="utf-8")
    monkeypatch.setattr(cli_reference, "REFERENCE", stale)
    monkeypatch.setattr(cli_reference, "COMMANDS", ("data.check",))
    assert cli_reference.main(["--check"]) == 1
    assert cli_reference.main([]) == 0 and cli_reference.main(["--check"]) == 0
    assert "## python -m data.check" in stale.read_text(encoding="utf-8")
