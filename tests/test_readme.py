"""Every `sh` and `python` example of the README runs as written: in order, in a fresh
folder, offline, with the project's `.venv` on the PATH.

A block is left out only when the comment right above it says
`<!-- readme-examples: skip (why) -->` (the set-up and test commands themselves).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # minutes: learning or the README's commands (-m "not slow" leaves it out)

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- readme-examples: skip[^>]*-->\n)?```(sh|python)\n(.*?)```", re.S)


def readme_examples():
    text = (ROOT / "README.md").read_text()
    return [(kind, code) for skip, kind, code in BLOCK.findall(text) if not skip]


def test_the_readme_has_examples_of_both_kinds():
    kinds = [kind for kind, _ in readme_examples()]
    assert kinds.count("sh") >= 4 and kinds.count("python") >= 4


def test_every_readme_example_runs_as_written(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]), ZOO_OFFLINE="1",
               VIRTUAL_ENV=os.path.dirname(bin_dir))
    for number, (kind, code) in enumerate(readme_examples(), 1):
        command = ["bash", "-euo", "pipefail", "-c", code] if kind == "sh" else [sys.executable, "-c", code]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f"README example {number} ({kind}) failed with {done.returncode}:\n{code}\n"
                                      f"--- stdout:\n{done.stdout[-2000:]}\n--- stderr:\n{done.stderr[-4000:]}")
