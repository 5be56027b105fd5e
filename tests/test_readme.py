"""The README's commands and code stay true."""

import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command():
    test_command = next(b.strip() for b in _blocks("bash") if "pytest" in b)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_readme_demo_command_names_an_existing_example():
    demo_command = next(b.strip() for b in _blocks("bash") if "examples/" in b)
    script = re.search(r"python (examples/\S+\.py)", demo_command).group(1)
    assert (ROOT / script).is_file()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_readme_example_runs(capsys):
    (code,) = _blocks("python")
    with warnings.catch_warnings():
        exec(compile(code, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "test ELBO (nats):" in out and "accuracy:" in out
