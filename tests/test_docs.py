"""The documentation builds with no warning, and quotes the README's commands exactly."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_getting_started_quotes_the_readme_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL)
    page = (ROOT / "docs" / "getting_started.rst").read_text()
    assert commands
    for command in commands:
        assert f"\n   {command.strip()}\n" in page, f"docs/getting_started.rst lacks {command!r}"


def test_docs_build_without_warnings(tmp_path):
    """``sphinx-build -W`` without running the gallery, on a copy of docs/ and examples/.

    The copy keeps the build's generated sources (gen_modules/, auto_examples/) out of the
    working tree.
    """
    for module in ["sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"]:
        pytest.importorskip(module)
    generated = shutil.ignore_patterns("_build", "auto_examples", "gen_modules", "sg_*.rst")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=generated)
    outputs = shutil.ignore_patterns("*.png")
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=outputs)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-D", "plot_gallery=0", str(tmp_path / "docs"), str(tmp_path / "html")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert (tmp_path / "html" / "api.html").is_file()
