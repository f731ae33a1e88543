"""The package as pip builds it: a wheel holds every module of every subpackage of deqbench/
(it runs from a checkout, which holds the schemas, configs and methods it reads)."""

import shutil
import subprocess
import sys
import zipfile

from deqbench.config import ROOT


def test_the_wheel_holds_every_subpackage(tmp_path):
    """Built offline (no build isolation) from a copy of what the wheel is made of, so that
    the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "deqbench", source / "deqbench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "dist").glob("deqbench-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    modules = [path.relative_to(ROOT).as_posix() for path in (ROOT / "deqbench").rglob("*.py")]
    assert "deqbench/blocks/__init__.py" in modules
    assert [module for module in modules if module not in packaged] == []
