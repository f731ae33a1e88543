"""The documentation says what the repository has: every path it names exists, every profile
and `make` target it names is defined, the job counts in README.md are a dry run's, README.md
fits on a few screens, every configuration key is explained, and the worked example of a
method passes `deqbench-check`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake
from deqbench.check import check

README = ROOT / "README.md"
README_MAX_LINES = 150
# pages whose paths, profiles and make targets are checked
DOCS = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "config" / "README.md",
        ROOT / "benchmarks" / "README.md", ROOT / "benchmarks" / "results" / "README.md",
        ROOT / "profiles" / "slurm" / "README.md"]
GENERATED = ("results", ".venv")  # paths a run or the install creates, absent from a fresh clone
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"^[\w.-]+(/[\w.-]+)*/?$")


def prose(text: str) -> str:
    """``text`` without its fenced code blocks."""
    return FENCE.sub("", text)


def code(text: str) -> str:
    """The fenced code blocks and inline code spans of ``text``, joined."""
    return "\n".join([*FENCE.findall(text), *CODE_SPAN.findall(prose(text))])


def named_paths(text: str) -> list[str]:
    """Relative paths named in inline code spans: no spaces or placeholders, at least one slash."""
    return [span for span in CODE_SPAN.findall(prose(text))
            if "/" in span and PATH.match(span) and not span.startswith(("/", "http"))]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page.read_text()).splitlines() if line.startswith("#")}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page):
    text = page.read_text()
    missing = []
    for path in named_paths(text):
        if path.split("/")[0] in GENERATED and path != "results/README.md":
            continue
        if not ((page.parent / path).exists() or (ROOT / path).exists()):
            missing.append(path)
    for target in LINK.findall(prose(text)):
        if target.startswith(("http://", "https://", "mailto:", "#")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            missing.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            missing.append(f"{target} (no such heading)")
    assert not missing, f"{page.relative_to(ROOT)} names what the repository does not have: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_profiles_exist(page):
    names = set(re.findall(r"profiles/([\w-]+)", page.read_text()))
    missing = sorted(name for name in names if not (ROOT / "profiles" / name / "config.yaml").is_file())
    assert not missing, f"{page.relative_to(ROOT)} names profiles that do not exist: {missing}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_make_targets_exist(page):
    targets = set(re.findall(r"^([\w-]+)\s*:", (ROOT / "Makefile").read_text(), re.M))
    named = set(re.findall(r"\bmake\s+([A-Za-z][\w-]*)", code(page.read_text())))
    assert named <= targets, f"{page.relative_to(ROOT)} names make targets the Makefile lacks: {sorted(named - targets)}"


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def readme_jobs(profile: str) -> int:
    """The `jobs` cell of the README's profile table for ``profiles/<profile>``."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in README.read_text().splitlines() if line.startswith("|")]
    header = next(row for row in rows if row[:1] == ["profile"] and "jobs" in row)
    row = next(row for row in rows if row[0] == f"`profiles/{profile}`")
    return int(row[header.index("jobs")])


def dry_run_jobs(workdir: Path, *args: str) -> int:
    """The `total` of the job-stats table of a dry run."""
    out = snakemake(workdir, "-n", *args)
    totals = re.findall(r"^total\s+(\d+)\s*$", out.stdout + out.stderr, re.M)
    assert totals, f"no job-stats table in the dry run:\n{out.stdout[-2000:]}"
    return int(totals[-1])


@pytest.mark.parametrize("profile, args", [("default", ()), ("smoke", ("--profile", "profiles/smoke"))])
def test_readme_job_counts_are_a_dry_runs(workspace, profile, args):
    assert readme_jobs(profile) == dry_run_jobs(workspace, *args)


def schema_keys(node: dict, path: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths of every key of a JSON schema; ``<...>`` where the name is the user's."""
    placeholder = {"datasets": "<dataset>", "tasks": "<task>", "studies": "<study>", "methods": "<method>",
                   "per_loss": "<loss>"}
    keys = []
    for name, sub in node.get("properties", {}).items():
        keys.append(".".join((*path, name)))
        keys.extend(schema_keys(sub, (*path, name)))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "properties" in extra and path:
        keys.extend(schema_keys(extra, (*path, placeholder.get(path[-1], "<name>"))))
    return keys


def test_config_readme_explains_every_schema_key():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    explained = set(CODE_SPAN.findall((ROOT / "config" / "README.md").read_text()))
    missing = [key for key in schema_keys(schema) if key not in explained]
    assert not missing, f"config/README.md does not explain these config keys: {missing}"


@pytest.mark.slow  # trains the example for two steps on tiny CT and MRI problems: one to two minutes
def test_the_extending_example_passes_the_check(tmp_path):
    """The worked example of docs/extending.md, copied as it stands, passes `deqbench-check`."""
    page = (ROOT / "docs" / "extending.md").read_text()
    example = page[page.index("### Iterative methods from building blocks"):]
    folder = tmp_path / "km-prox"
    folder.mkdir()
    for language, name in (("yaml", "method.yaml"), ("python", "model.py")):
        start = example.index(f"```{language}\n") + len(f"```{language}\n")
        (folder / name).write_text(example[start:example.index("```", start)])
    assert check(folder) == []
