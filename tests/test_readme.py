"""The README's set-up commands stay true: CI runs the test command verbatim."""

import re

from conftest import REPO


def _setup_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.+?)\n```", text)[:2]


def test_readme_starts_with_the_two_setup_commands():
    run_demo, run_tests = _setup_commands()
    assert "pip install ." in run_demo and "emo-live annotate" in run_demo
    assert "pytest" in run_tests


def test_ci_runs_the_readme_test_command():
    _, run_tests = _setup_commands()
    assert run_tests in (REPO / ".ci" / "run").read_text(encoding="utf-8")
