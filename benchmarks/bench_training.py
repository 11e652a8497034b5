"""Training throughput: zoo (Keras fit on tf.data) against the best plain-PyTorch loop, at equal precision.

Two models, each with a hand-written PyTorch twin trained on the very same
synthetic_shapes images (32x32x3, batch 64, SGD momentum 0.9):

- simple_cnn, the classic CIFAR-10 tutorial network:
  Conv2d(3,32)/Conv2d(32,64)/pool/Linear(64*8*8,128)/Linear(128,K);
- resnet20, the CIFAR ResNet of zoo/models/resnet.py: 3x3 stem, three stages of three
  basic blocks at 16/32/64 filters, BatchNorm, 1x1 projection shortcuts where the
  shape changes, global average pooling (parameter counts are checked against zoo's).

Two precisions, compared like with like: float32 (zoo `mixed_precision="off"`) and
bfloat16 (zoo `mixed_precision="mixed_bfloat16"` against `torch.autocast("cpu",
dtype=torch.bfloat16)`). PyTorch runs in three variants a user would write: eager
NCHW, eager channels_last, and `torch.compile(model)`; the reference is whichever was
fastest in the same round (a variant that fails is recorded, not fatal).

Every measurement runs in its own process (so neither framework's thread pools
disturb the other), zoo and PyTorch alternating, for several rounds. Runs in one round
are back to back, so the ratio zoo / best PyTorch of that round cancels most of a
shared machine's load; the figure is the median of those per-round ratios, printed
beside the load average at the start of each round. Also measured: the input
pipeline's samples/s against simple_cnn's training consumption, and one optimizer
update of each model's variables in Keras' own ops against zoo's fused kernels.

    .venv/bin/python benchmarks/bench_training.py [--models simple_cnn resnet20]
        [--precisions float32 bfloat16] [--rounds 3] [--steps N]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).parent
OUT = HERE / "out"
BATCH = 64
MODELS = ("simple_cnn", "resnet20")
PRECISIONS = ("float32", "bfloat16")
VARIANTS = ("eager", "channels_last", "compile")
# zoo's `mixed_precision` setting for each precision compared.
ZOO_PRECISION = {"float32": "off", "bfloat16": "mixed_bfloat16"}
# Timed steps per pass (each side: one warm-up pass, then the best of REPEATS passes).
# resnet20 costs about 7x simple_cnn's multiply-adds per sample, so it gets fewer
# steps; both are multiples of zoo's steps_per_execution (8).
DEFAULT_STEPS = {"simple_cnn": 96, "resnet20": 24}
REPEATS = 3
CHILD_TIMEOUT_S = 600


def torch_net(model: str, num_classes: int):
    """The PyTorch twin of zoo's `model`, taking raw 0-255 NCHW pixels like zoo's models do."""
    import torch
    from torch import nn

    def scale(t):
        return t / 127.5 - 1.0  # the in-model scaling of zoo's image_input

    if model == "simple_cnn":
        class SimpleCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 32, 3, padding=1)
                self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
                self.pool = nn.MaxPool2d(2)
                self.fc1 = nn.Linear(64 * 8 * 8, 128)
                self.fc2 = nn.Linear(128, num_classes)

            def forward(self, t):
                t = self.pool(torch.relu(self.conv1(scale(t))))
                t = self.pool(torch.relu(self.conv2(t)))
                return self.fc2(torch.relu(self.fc1(torch.flatten(t, 1))))

        return SimpleCNN()

    def conv_bn(cin, cout, kernel, stride):
        # Keras BatchNormalization(momentum=0.9) is PyTorch's momentum=0.1.
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
                             nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = conv_bn(cin, cout, 3, stride)
            self.conv2 = conv_bn(cout, cout, 3, 1)
            # Projection shortcut (option B) where the shape changes, as zoo's _shortcut.
            self.shortcut = nn.Identity() if stride == 1 and cin == cout else conv_bn(cin, cout, 1, stride)

        def forward(self, t):
            return torch.relu(self.shortcut(t) + self.conv2(torch.relu(self.conv1(t))))

    class ResNet20(nn.Module):
        def __init__(self, width=16, blocks=3):
            super().__init__()
            self.stem = conv_bn(3, width, 3, 1)
            layers, cin = [], width
            for s in range(3):
                for b in range(blocks):
                    layers.append(BasicBlock(cin, width * 2 ** s, 2 if (b == 0 and s > 0) else 1))
                    cin = width * 2 ** s
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, t):
            t = self.blocks(torch.relu(self.stem(scale(t))))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(t, 1), 1))

    if model != "resnet20":
        raise ValueError(f"no PyTorch twin for {model!r}; known: {', '.join(MODELS)}")
    return ResNet20()


def torch_param_count(net) -> int:
    """Parameters plus BatchNorm running statistics: what Keras' count_params() counts."""
    stats = sum(b.numel() for name, b in net.named_buffers() if name.endswith(("running_mean", "running_var")))
    return sum(p.numel() for p in net.parameters()) + stats


def torch_timed_steps(loss_of, opt, n: int, precision: str, steps: int, repeats: int, batch: int = BATCH):
    """(best samples/s over `repeats` passes of `steps` steps, warm-up seconds) of the plain
    PyTorch loop: random batches of indices, `loss_of(idx)` under bf16 autocast or not,
    backward, step. The warm-up pass (torch.compile compiles there) is not counted."""
    import contextlib

    import torch

    autocast = ((lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bfloat16"
                else contextlib.nullcontext)

    def run(num):
        perm = torch.randperm(n)
        for i in range(num):
            idx = perm[(i * batch) % (n - batch):][:batch]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = loss_of(idx)
            loss.backward()
            opt.step()

    start = time.perf_counter()
    run(steps)
    warmup_s = time.perf_counter() - start
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        best = max(best, steps * batch / (time.perf_counter() - start))
    return best, warmup_s


def torch_throughput(model: str, precision: str, variant: str, steps: int) -> dict:
    import numpy as np
    import torch
    from torch import nn

    from zoo.data import synthetic_shapes

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    images, labels = synthetic_shapes.synthetic_shapes("train")
    # NHWC uint8 -> float32 NCHW (contiguous), as a tutorial loop holds its tensors.
    x = torch.from_numpy(images.astype(np.float32)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels)
    k = int(labels.max()) + 1

    net = torch_net(model, k)
    params = torch_param_count(net)
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    net = net.to(memory_format=fmt)
    if variant == "compile":
        net = torch.compile(net)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    best, warmup_s = torch_timed_steps(lambda idx: loss_fn(net(x[idx].contiguous(memory_format=fmt)), y[idx]),
                                       opt, len(y), precision, steps, REPEATS)
    return {"train": best, "params": params, "warmup_s": warmup_s, "torch": torch.__version__}


def zoo_throughput(model: str, precision: str, steps: int, tf_threads: str = "0,0") -> dict:
    import tensorflow as tf

    import zoo

    # Before TensorFlow runs its first op: 0 is TensorFlow's own choice (inter-op = cores).
    intra, inter = (int(n) for n in tf_threads.split(","))
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    from zoo.benchmark import pipeline_throughput, training_throughput

    train = training_throughput(model, "synthetic_shapes", BATCH, steps, optimizer="sgd", learning_rate=0.01,
                                repeats=REPEATS, mixed_precision=ZOO_PRECISION[precision])
    num_classes = 6  # synthetic_shapes' classes, as the PyTorch side reads them from the labels
    result = {"train": train,
              "params": zoo.build_model(model, num_classes=num_classes, input_shape=(32, 32, 3)).count_params()}
    if model == "simple_cnn":
        result["pipeline"] = pipeline_throughput("synthetic_shapes", BATCH)
    if precision == "float32":  # the variables are float32 in both precisions
        result["update_ms"] = optimizer_update_ms(model)
    return result


def optimizer_update_ms(model: str, rounds: int = 7, calls: int = 50) -> dict:
    """Milliseconds of one SGD-momentum update of all of `model`'s variables, Keras' own ops
    against zoo's fused kernel (zoo.training.optimizers), interleaved, median of `rounds`."""
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo
    from zoo.training.optimizers import fuse_updates

    variables = zoo.build_model(model, num_classes=6, input_shape=(32, 32, 3)).trainable_variables
    gradients = [tf.random.normal(v.shape) for v in variables]
    updates = {}
    for name, wrap in (("keras", lambda o: o), ("fused", fuse_updates)):
        optimizer = wrap(keras.optimizers.SGD(0.01, momentum=0.9))
        optimizer.build(variables)
        updates[name] = tf.function(lambda optimizer=optimizer: optimizer.apply(gradients, variables))
        updates[name]()  # traces
    times = {name: [] for name in updates}
    for _ in range(rounds):
        for name, update in updates.items():
            start = time.perf_counter()
            for _ in range(calls):
                update()
            times[name].append((time.perf_counter() - start) / calls * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


def _child(which: str, model: str, precision: str, steps: int, variant: str = "", tf_threads: str = "0,0") -> dict:
    cmd = [sys.executable, __file__, "--child", which, "--models", model, "--precisions", precision,
           "--steps", str(steps), "--zoo-tf-threads", tf_threads] + (["--variant", variant] if variant else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S}s"}
    if out.returncode:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        return {"error": (lines[-1] if lines else f"exit {out.returncode}")[:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _fmt(v) -> str:
    return f"{v:,.0f}" if isinstance(v, (int, float)) else "failed"


def report(results: dict, loads: list, args, seconds: float) -> str:
    torch_v = next((r["torch"] for res in results.values() for runs in res["torch"].values()
                    for r in runs if "torch" in r), "?")
    head = (f"zoo / best PyTorch {torch_v} loop, batch {BATCH}, synthetic_shapes 32x32x3, SGD momentum 0.9, "
            f"{os.cpu_count()} CPU cores, zoo's TF threads (intra,inter) {args.zoo_tf_threads} (0: TF's choice), "
            f"{args.rounds} alternating rounds, "
            f"{datetime.date.today().isoformat()}, {seconds / 60:.1f} min.\n\n")
    rows = ["| model | precision | steps | zoo samples/s | " + " | ".join(f"torch {v}" for v in VARIANTS)
            + " | best torch | zoo / best torch (range) | load per round |",
            "|---|---|---:|---:|" + "---:|" * len(VARIANTS) + "---|---|---|"]
    for (model, precision), res in results.items():
        zoo_med = statistics.median(r["train"] for r in res["zoo"]) if all("train" in r for r in res["zoo"]) else None
        medians = {}
        for v in VARIANTS:
            ok = [r["train"] for r in res["torch"][v] if "train" in r]
            medians[v] = statistics.median(ok) if len(ok) == len(res["torch"][v]) else None
        ratios = res["ratios"]
        ratio = (f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
                 if ratios else "n/a")
        best = ", ".join(f"{v} {res['best'].count(v)}/{len(res['best'])}" for v in VARIANTS if v in res["best"])
        rows.append(f"| {model} | {precision} | {res['steps']} | {_fmt(zoo_med)} | "
                    + " | ".join(_fmt(medians[v]) for v in VARIANTS)
                    + f" | {best or 'n/a'} | {ratio} | {' / '.join(f'{x:.2f}' for x in loads)} |")
    notes = []
    for (model, precision), res in results.items():
        for v in VARIANTS:
            for r in res["torch"][v]:
                if "error" in r:
                    notes.append(f"- torch {v} ({model}, {precision}) failed: `{r['error']}`")
                    break
    params = {}
    for (model, _), res in results.items():
        zp = next((r["params"] for r in res["zoo"] if "params" in r), None)
        tp = next((r["params"] for runs in res["torch"].values() for r in runs if "params" in r), None)
        params[model] = (zp, tp)
    for model, (zp, tp) in params.items():
        if zp and tp:
            notes.append(f"- {model} parameters: zoo {zp:,}, PyTorch twin {tp:,} "
                         f"(incl. BatchNorm running statistics; {100 * (tp - zp) / zp:+.2f}%)")
    for (model, precision), res in results.items():
        updates = [r["update_ms"] for r in res["zoo"] if "update_ms" in r]
        trains = [r["train"] for r in res["zoo"] if "train" in r]
        if updates and trains:
            keras_ms = statistics.median(u["keras"] for u in updates)
            fused_ms = statistics.median(u["fused"] for u in updates)
            step_ms = BATCH / statistics.median(trains) * 1e3
            notes.append(f"- {model}: one SGD-momentum update of all variables takes {fused_ms:.2f} ms in zoo's "
                         f"fused kernels against {keras_ms:.2f} ms in Keras' own ops ({keras_ms / fused_ms:.2f}x), "
                         f"{(keras_ms - fused_ms) / step_ms:.0%} of zoo's float32 step ({step_ms:.1f} ms)")
    pipe = [r["pipeline"] for (m, _), res in results.items() if m == "simple_cnn" for r in res["zoo"]
            if "pipeline" in r]
    consumption = [statistics.median(r["train"] for r in res["zoo"] if "train" in r)
                   for (m, _), res in results.items() if m == "simple_cnn" and any("train" in r for r in res["zoo"])]
    if pipe and consumption:
        p, c = statistics.median(pipe), max(consumption)
        notes.append(f"- zoo input pipeline alone (simple_cnn's): {p:,.0f} samples/s, "
                     f"{p / c:.1f}x the fastest simple_cnn training consumption ({c:,.0f} samples/s)")
    return head + "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None,
                    help=f"steps per timed pass for every model (default per model: {DEFAULT_STEPS})")
    ap.add_argument("--zoo-tf-threads", default="0,0", metavar="INTRA,INTER",
                    help="zoo's TensorFlow intra- and inter-op threads (default: 0,0, TensorFlow's choice)")
    ap.add_argument("--child", choices=("torch", "zoo"), help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not re.fullmatch(r"-?\d+,-?\d+", args.zoo_tf_threads):
        ap.error(f"--zoo-tf-threads takes INTRA,INTER (two integers, e.g. 2,1), not {args.zoo_tf_threads!r}")
    if args.child:
        model, precision = args.models[0], args.precisions[0]
        result = (torch_throughput(model, precision, args.variant, args.steps) if args.child == "torch"
                  else zoo_throughput(model, precision, args.steps, args.zoo_tf_threads))
        print(json.dumps(result))
        return

    started = time.perf_counter()
    cases = [(m, p) for m in args.models for p in args.precisions]
    results = {c: {"steps": args.steps or DEFAULT_STEPS[c[0]], "zoo": [],
                   "torch": {v: [] for v in VARIANTS}, "ratios": [], "best": []} for c in cases}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1} (load {loads[-1]:.2f})", flush=True)
        for model, precision in cases:
            res = results[(model, precision)]
            steps = res["steps"]
            # zoo between the torch variants, so no side always runs first in a round.
            order = ["eager", "zoo", "channels_last", "compile"] if r % 2 == 0 else \
                    ["compile", "channels_last", "zoo", "eager"]
            this_round = {}
            for which in order:
                run = (_child("zoo", model, precision, steps, tf_threads=args.zoo_tf_threads) if which == "zoo"
                       else _child("torch", model, precision, steps, which))
                (res["zoo"] if which == "zoo" else res["torch"][which]).append(run)
                this_round[which] = run.get("train")
            torch_ok = {v: this_round[v] for v in VARIANTS if this_round[v]}
            if torch_ok and this_round["zoo"]:
                best = max(torch_ok, key=torch_ok.get)
                res["best"].append(best)
                res["ratios"].append(this_round["zoo"] / torch_ok[best])
            print(f"  {model} {precision}: zoo {_fmt(this_round['zoo'])}/s  "
                  + "  ".join(f"{v} {_fmt(this_round[v])}/s" for v in VARIANTS)
                  + (f"  ratio {res['ratios'][-1]:.2f}" if res["ratios"] else ""), flush=True)
    seconds = time.perf_counter() - started
    table = report(results, loads, args, seconds)
    print(table)
    OUT.mkdir(exist_ok=True)
    (OUT / "training.md").write_text(table)
    (OUT / "training.json").write_text(json.dumps(
        {"date": datetime.date.today().isoformat(), "seconds": round(seconds, 1), "rounds": args.rounds,
         "load_per_round": loads,
         "results": [{"model": m, "precision": p, **res,
                      "ratio": statistics.median(res["ratios"]) if res["ratios"] else None}
                     for (m, p), res in results.items()]}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
