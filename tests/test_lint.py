"""The workflow passes Snakemake's linter."""

from conftest import snakemake


def test_snakemake_lint_finds_nothing(workspace):
    result = snakemake(workspace, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
