"""Training throughput: zoo's simple_cnn (Keras fit on tf.data) vs the same CNN in plain PyTorch.

The PyTorch side is the classic CIFAR-10 tutorial network the issue names:
Conv2d(3,32)/Conv2d(32,64)/pool/Linear(64*8*8,128)/Linear(128,K), SGD momentum 0.9,
batch 64, on the very same synthetic_shapes images. Each side runs in its own process
(so neither framework's thread pools disturb the other), alternating, several rounds;
the table reports the median of each and their ratio. Also measured: the input
pipeline's samples/s against the model's training consumption.

    .venv/bin/python benchmarks/bench_training.py [--rounds 3] [--steps 150]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).parent
OUT = HERE / "out"


def torch_throughput(steps: int, batch: int = 64) -> float:
    import numpy as np
    import torch
    from torch import nn

    from zoo.data import synthetic_shapes

    torch.set_num_threads(os.cpu_count() or 1)
    images, labels = synthetic_shapes.synthetic_shapes("train")
    x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels)
    k = int(labels.max()) + 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
            self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc1 = nn.Linear(64 * 8 * 8, 128)
            self.fc2 = nn.Linear(128, k)

        def forward(self, t):
            t = t / 127.5 - 1.0  # the same in-model scaling the Keras model does
            t = self.pool(torch.relu(self.conv1(t)))
            t = self.pool(torch.relu(self.conv2(t)))
            return self.fc2(torch.relu(self.fc1(torch.flatten(t, 1))))

    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    n = len(y)

    def run(num):
        perm = torch.randperm(n)
        for i in range(num):
            idx = perm[(i * batch) % (n - batch):][:batch]
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()

    run(20)
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        run(steps)
        best = max(best, steps * batch / (time.perf_counter() - start))
    return best


def keras_throughput(steps: int) -> dict:
    from zoo.benchmark import pipeline_throughput, training_throughput

    train = training_throughput("simple_cnn", "synthetic_shapes", 64, steps, optimizer="sgd", learning_rate=0.01)
    return {"train": train, "pipeline": pipeline_throughput("synthetic_shapes", 64)}


def torch_version() -> str:
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                         capture_output=True, text=True)
    return out.stdout.strip()


def _child(which: str, steps: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", which, "--steps", str(steps)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--child", choices=("torch", "keras"))
    args = ap.parse_args()
    if args.child == "torch":
        print(json.dumps({"train": torch_throughput(args.steps)}))
        return
    if args.child == "keras":
        print(json.dumps(keras_throughput(args.steps)))
        return

    torch_runs, keras_runs, pipe_runs = [], [], []
    for r in range(args.rounds):
        torch_runs.append(_child("torch", args.steps)["train"])
        k = _child("keras", args.steps)
        keras_runs.append(k["train"])
        pipe_runs.append(k["pipeline"])
        print(f"round {r + 1}: torch {torch_runs[-1]:.0f}/s  zoo {keras_runs[-1]:.0f}/s  "
              f"pipeline {pipe_runs[-1]:.0f}/s", flush=True)
    t, k, p = (statistics.median(v) for v in (torch_runs, keras_runs, pipe_runs))
    # Each round's two runs are back to back, so their ratio cancels most of the
    # machine's load; the median of those ratios is the figure.
    ratios = [kr / tr for kr, tr in zip(keras_runs, torch_runs)]
    table = (
        f"| measurement (simple_cnn, 32x32x3, batch 64, CPU, {args.rounds} alternating rounds) "
        "| median samples/s | ratio |\n"
        "|---|---:|---:|\n"
        f"| PyTorch {torch_version()}, plain loop, SGD momentum 0.9 | {t:,.0f} | 1.00 |\n"
        f"| zoo (Keras fit on cached, prefetched tf.data) | {k:,.0f} | "
        f"{statistics.median(ratios):.2f}x PyTorch (median of per-round ratios; "
        f"range {min(ratios):.2f}-{max(ratios):.2f}) |\n"
        f"| zoo input pipeline alone | {p:,.0f} | {p / k:.1f}x training consumption |\n"
    )
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "training.md").write_text(table)
    (OUT / "training.json").write_text(json.dumps(
        {"torch": torch_runs, "zoo": keras_runs, "pipeline": pipe_runs, "ratios": ratios,
         "ratio": statistics.median(ratios), "pipeline_ratio": p / k}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
