"""How long `zoo --help` (and every `zoo COMMAND --help`) takes, this tree against another.

Both trees run with the same Python and packages, interleaved, so the machine's load
falls on both alike; the table gives medians and their ratio.

    .venv/bin/python benchmarks/bench_cli.py [--base 629bcfa] [--rounds 7] [--list]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = [["--help"], ["train", "--help"], ["export", "--help"], ["predict", "--help"]]


def run_once(tree: pathlib.Path, argv) -> float:
    env = dict(os.environ, PYTHONPATH=str(tree), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main())", *argv],
                          cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{tree}: zoo {' '.join(argv)} failed: {proc.stderr[-500:]}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # Default: the tree before tasks became plugins (issue 8), whose CLI imported TensorFlow.
    parser.add_argument("--base", default="629bcfa", help="the git revision to compare with (default 629bcfa)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--list", action="store_true", help="also time `zoo list` (it builds every model)")
    args = parser.parse_args(argv)
    commands = COMMANDS + ([["list"]] if args.list else [])
    with tempfile.TemporaryDirectory(prefix="zoo-bench-cli-") as tmp:
        base = pathlib.Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            times = {(tree, tuple(a)): [] for tree in ("base", "this") for a in commands}
            for _ in range(args.rounds):
                for a in commands:
                    times[("base", tuple(a))].append(run_once(base, a))
                    times[("this", tuple(a))].append(run_once(ROOT, a))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    print(f"| command | {args.base} (s) | this tree (s) | this / base |")
    print("|---|---:|---:|---:|")
    for a in commands:
        before = statistics.median(times[("base", tuple(a))])
        after = statistics.median(times[("this", tuple(a))])
        print(f"| `zoo {' '.join(a)}` | {before:.3f} | {after:.3f} | {after / before:.3f} |")
    print(f"\nmedians of {args.rounds} interleaved rounds; wall time of a fresh process each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
