"""The docs are checked: docs/cli.md is today's --help, every command has its page, every relative link
resolves, and (slow) every transcript in README.md and docs/ is what its command prints today.

What a transcript is, the environment it runs in and what a comparison ignores (timings, nothing else)
are in llmscope/_docs.py, which also regenerates both: `python -m llmscope._docs` writes docs/cli.md,
`python -m llmscope._docs --transcripts` writes the outputs that changed back into the pages.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmscope import _docs

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate with: python -m llmscope._docs --transcripts"


def test_cli_reference_is_up_to_date():
    done = subprocess.run([sys.executable, "-m", "llmscope._docs", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr or done.stdout


def test_cli_reference_has_every_command():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in _docs.command_names():
        assert f"## llmscope {name}\n" in text
        assert f"Usage: llmscope {name} [OPTIONS]" in text


def test_every_command_has_a_page_and_the_readme_links_them():
    names = _docs.command_names()
    pages = ROOT / "docs" / "commands"
    assert sorted(p.stem for p in pages.glob("*.md")) == sorted(names), "one page per command, no other"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for name in names:
        page = (pages / f"{name}.md").read_text(encoding="utf-8")
        assert page.startswith(f"# llmscope {name}\n")
        assert "\n## `--json` keys\n" in page, f"docs/commands/{name}.md has no --json keys table"
        assert f"(docs/commands/{name}.md)" in readme, f"README does not link docs/commands/{name}.md"
        assert f"(commands/{name}.md)" in index, f"docs/README.md does not link commands/{name}.md"
    for page in ("docs/README.md", "docs/cli.md", "docs/python-api.md", "docs/json.md", "docs/models.md",
                 "docs/limits-and-errors.md", "docs/benchmarks.md", "docs/interactive-pages.md",
                 "docs/compatibility.md", "docs/internals.md"):
        assert f"({page}" in readme, f"README does not link {page}"


# --------------------------------------------------------------------------------------------
# Links

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def _prose(text: str) -> str:
    """The markdown without its fenced blocks and inline code (links there are not links)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors for a page: lower case, punctuation dropped, spaces as hyphens."""
    found: set[str] = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            n, unique = 0, slug
            while unique in found:
                n += 1
                unique = f"{slug}-{n}"
            found.add(unique)
    return found


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in _docs.doc_files()
            for target in LINK.findall(_prose(page.read_text(encoding="utf-8")))]


def test_there_are_links_to_check():
    assert len(_links()) > 50


@pytest.mark.parametrize("page", _docs.doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_a_file(page):
    broken = []
    for source, target in _links():
        if source != page or re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


# --------------------------------------------------------------------------------------------
# Transcripts


def test_transcripts_are_found_and_well_formed():
    found = _docs.transcripts()
    assert len(found) >= 15
    for transcript in found:
        for step in transcript.steps:
            assert step.command.strip(), transcript.where
            if step.command.startswith("llmscope "):
                assert step.output.strip(), f"{transcript.where}: $ {step.command} shows no output ({REGENERATE})"


def test_normalise_ignores_timings_and_nothing_else():
    fast = " speed        10.4 tokens/s; first token after 203 ms; total 2.86 s\n KV cache  1.3x faster"
    slow = " speed  2.2 tokens/s; first token after 1.87 s;\n total 10.82 s\n KV cache  0.7x faster"
    assert _docs.normalise(fast) == _docs.normalise(slow)
    assert _docs.normalise(fast) != _docs.normalise(fast.replace("first", "last"))
    cached = "KV cache time  with: 3.1 tokens/s (2.0 s); 1.7x faster with the cache, same tokens"
    busy = "KV cache time  with: 0.4 tokens/s (9.1 s); 1.2x slower with the cache (timing\n noise: the machine is busy), same tokens"
    assert _docs.normalise(cached) == _docs.normalise(busy)
    assert _docs.normalise(cached) != _docs.normalise(cached.replace("same tokens", "tokens differ"))
    table = "  16 sequences   5\n  padding tokens   31  \n"
    assert _docs.normalise(table) == "  16 sequences   5\n  padding tokens   31"  # no timing: exact
    assert _docs.normalise(table) != _docs.normalise(table.replace("   5", "  5"))


def _steps() -> dict[str, list[tuple[str, str]]]:
    """Each distinct command of every transcript -> where it is shown, and what it shows there."""
    steps: dict[str, list[tuple[str, str]]] = {}
    for transcript in _docs.transcripts():
        for i, step in enumerate(transcript.steps):
            steps.setdefault(step.command, []).append((f"{transcript.where}#{i + 1}", step.output))
    return steps


STEPS = _steps()
RUN = _docs.Runner(list(STEPS))


COURSE_MODELS = "python docs/examples/course_models.py /tmp/llmscope-course"


@pytest.fixture(scope="module")
def course_models():
    """The models docs/course.md makes first, made once before any transcript that reads them."""
    assert COURSE_MODELS in STEPS, "docs/course.md makes its models with this command"
    RUN(COURSE_MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("command", list(STEPS), ids=[shown[0][0] for shown in STEPS.values()])
def test_transcript_is_what_the_command_prints(command, demo_model, course_models):
    """demo_model converts the embedded model into this session's cache once, for every run here."""
    output = _docs.normalise(RUN(command))
    for where, shown in STEPS[command]:
        assert _docs.normalise(shown) == output, f"{where}: $ {command} prints something else now ({REGENERATE})"
