"""Runs every benchmark in this folder, one process each; results land in benchmarks/out/."""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent

if __name__ == "__main__":
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode:
            failed.append(script.name)
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
