"""BERT benchmark: bert_tiny fine-tuning tokens/s, zoo against Hugging Face on PyTorch, and served latency.

1. Fine-tuning throughput of `bert_tiny` text classification (2 layers, width 128, 2
   heads, feed-forward 512, 30,522 token ids, batch 32, 128 tokens per example) on
   synthetic_sentiment, in tokens/s (samples/s x 128):

   - zoo: `zoo.load_dataset(..., tokenizer="wordpiece", sequence_length=128,
     vocabulary=V)` and `zoo.build_model("bert_classifier", compiled=False, ...)`
     compiled as `zoo.train` compiles it (Adam 1e-3 constant, the task's loss and
     metrics, steps_per_execution 8), in the dtype policy `zoo.train` picks
     (`zoo.training.precision.dtype_policy`), jit_compile off and on; timed as
     `zoo.benchmark.training_throughput` times (one warm-up pass, then the best of
     REPEATS passes, each a `fit` of `--steps` steps measured from epoch begin to end).
     V is BERT's size: the 5 reserved tokens, the pieces learned from the set, then
     "[unused{i}]" filler up to 30,522, so the embedding (and its Adam update) is
     BERT's. `training_throughput` itself cannot take V yet (see RESULTS-bert.md).
   - PyTorch: transformers' `BertForSequenceClassification` of the same configuration
     (128 positions, 2 labels, dropout 0.1, exact GELU, its default attention),
     `torch.optim.AdamW`, on the same token ids (tokenized once by the zoo pipeline),
     the attention mask computed from them each step as a tutorial loop does, timed the
     same way (warm-up pass, best of REPEATS passes of `--steps` steps).

   Equal precision: float32 (zoo `mixed_precision="off"`) against float32, and
   bfloat16 (zoo `mixed_bfloat16`) against `torch.autocast("cpu", torch.bfloat16)`.
   Every measurement is its own process, as in bench_training.py, so each side starts
   with only its own framework's thread pools (checked here: merely importing
   TensorFlow beside PyTorch did not slow a PyTorch step, 0.11-0.13 s either way; the
   isolation is for runs that execute TF ops). The PyTorch child runs with USE_TF=0:
   transformers otherwise imports TensorFlow whenever it is installed. Zoo's jit
   off/on variants share one process per precision (their order alternates by round). Within a round each precision's zoo and PyTorch runs are back to back
   (their order alternating), so the per-round ratio zoo / PyTorch cancels most of a
   shared machine's load; the figure is the median of those ratios, beside the load
   average at the start of each round.

2. Served latency of an exported bert_classifier with in-graph WordPiece tokenization:
   `zoo.train` 1 epoch (sequence_length 128), `export.export_saved_model`, served
   in-process by `serving.ModelServer` (gRPC, port 0) and queried with
   `serving.Client` one sentence per request; p50/p90 over `--requests` requests after
   warm-up. And the tokenizer's share: `zoo.data.wordpiece.WordPieceEncoder` (the
   run's vocabulary, 128) in a tf.function against the whole in-process call of the
   export's `serving_default` (`tf.saved_model.load`), interleaved per sentence, p50
   each and their ratio.

    .venv/bin/python benchmarks/bench_bert.py [--rounds 3] [--steps 16] [--requests 200]
    .venv/bin/python benchmarks/bench_bert.py --quick   # smoke run; writes only under /tmp/benchbert

The default mode writes benchmarks/RESULTS-bert.md; scratch (vocabulary, token ids,
run, export, JSON) goes to /tmp/benchbert.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_training import CHILD_TIMEOUT_S, REPEATS, ZOO_PRECISION, _fmt, torch_timed_steps  # noqa: E402

SCRATCH = pathlib.Path("/tmp/benchbert")
RESULTS = HERE / "RESULTS-bert.md"
DATASET = "synthetic_sentiment"
BATCH = 32
LENGTH = 128
VOCABULARY_SIZE = 30_522
PRECISIONS = ("float32", "bfloat16")
JIT = ("off", "on")
STEPS = 16  # timed steps per pass: a multiple of zoo's steps_per_execution (8)
REQUESTS = 200
WARMUP_REQUESTS = 20
CPU_FLAGS = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
TORCH_ENV = {"USE_TF": "0", "USE_TORCH": "1", "TRANSFORMERS_NO_TF": "1"}


# --- children ------------------------------------------------------------------
def prepare() -> dict:
    """The 30,522-entry vocabulary (vocab.txt) and the token ids of the train split (tokens.npz)."""
    import numpy as np

    import zoo
    from zoo.data import wordpiece
    from zoo.data import registry as datasets
    from zoo.training.precision import dtype_policy

    texts = datasets.get_dataset(DATASET).examples("train").map(lambda x, y: x)
    learned = wordpiece.compute_vocabulary(texts)
    assert tuple(learned[:len(wordpiece.RESERVED_TOKENS)]) == wordpiece.RESERVED_TOKENS
    filler = [f"[unused{i}]" for i in range(VOCABULARY_SIZE - len(learned))]
    vocabulary = learned + filler
    (SCRATCH / "vocab.txt").write_text("".join(f"{p}\n" for p in vocabulary), encoding="utf-8")
    ds = zoo.load_dataset(DATASET, "train", batch_size=BATCH, shuffle=False, tokenizer="wordpiece",
                          sequence_length=LENGTH, vocabulary=vocabulary)
    ids, labels = zip(*((x["token_ids"].numpy(), y.numpy()) for x, y in ds))
    ids, labels = np.concatenate(ids), np.concatenate(labels)
    np.savez(SCRATCH / "tokens.npz", token_ids=ids, labels=labels)
    return {"learned_pieces": len(learned), "vocabulary": len(vocabulary), "examples": len(labels),
            "mean_pieces": float((ids != 0).sum(1).mean()), "truncated": int((ids[:, -1] != 0).sum()),
            "auto_policy": dtype_policy("auto")}


def zoo_throughput(precision: str, jits: list[str], steps: int, repeats: int) -> dict:
    """Samples/s of bert_tiny's `fit` per jit setting (zoo.benchmark.training_throughput,
    compiled as zoo.train compiles it), with a BERT-sized (30,522) WordPiece vocabulary."""
    import keras
    import keras_hub
    import tensorflow as tf

    import zoo
    from zoo.benchmark import training_throughput
    from zoo.training.precision import dtype_policy

    vocabulary = (SCRATCH / "vocab.txt").read_text(encoding="utf-8").splitlines()
    result = {"policy": dtype_policy(ZOO_PRECISION[precision]), "tf": tf.__version__, "keras": keras.__version__,
              "keras_hub": keras_hub.__version__,
              "params": zoo.build_model("bert_classifier", compiled=False, num_classes=2, vocabulary_size=len(vocabulary),
                                        sequence_length=LENGTH).count_params()}
    for jit in jits:
        try:
            result[jit] = training_throughput(
                "bert_classifier", DATASET, BATCH, steps, optimizer="adam", learning_rate=1e-3, repeats=repeats,
                model_kwargs={"sequence_length": LENGTH}, data_options={"vocabulary": vocabulary},
                mixed_precision=ZOO_PRECISION[precision], jit_compile=jit)
        except Exception as e:  # a variant that fails is recorded, not fatal
            result[f"error_{jit}"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return result


def torch_bert(num_labels: int = 2):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=VOCABULARY_SIZE, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=512, max_position_embeddings=LENGTH, type_vocab_size=2,
                        hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                        num_labels=num_labels)
    return BertForSequenceClassification(config)


def torch_throughput(precision: str, steps: int, repeats: int) -> dict:
    import numpy as np
    import torch
    import transformers

    if "tensorflow" in sys.modules:
        raise RuntimeError("TensorFlow was imported into the PyTorch child; run it with USE_TF=0")
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    data = np.load(SCRATCH / "tokens.npz")
    x = torch.from_numpy(data["token_ids"].astype(np.int64))
    y = torch.from_numpy(data["labels"].astype(np.int64))
    net = torch_bert(int(y.max()) + 1)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def loss_of(idx):
        ids = x[idx]
        return net(input_ids=ids, attention_mask=(ids != 0).long(), labels=y[idx]).loss

    best, warmup_s = torch_timed_steps(loss_of, opt, len(y), precision, steps, repeats, BATCH)
    return {"train": best, "warmup_s": warmup_s, "params": sum(p.numel() for p in net.parameters()),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "attention": net.config._attn_implementation}


def _percentiles(seconds: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)), "n": len(ms)}


def served_latency(requests: int) -> dict:
    """Train 1 epoch, export, serve in-process; gRPC latency, then the tokenizer's share of a direct call."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the WordPiece ops the export's graph uses)

    import export
    import serving
    import zoo
    from zoo.data import registry as datasets
    from zoo.data.wordpiece import WordPieceEncoder

    result = {}
    run_dir, base = SCRATCH / "run", SCRATCH / "models"
    start = time.perf_counter()
    run = zoo.train("bert_classifier", DATASET, epochs=1, out_dir=run_dir, overwrite=True, verbose=0,
                    model_kwargs={"sequence_length": LENGTH})
    result["train_s"] = time.perf_counter() - start
    result["device"] = json.loads((pathlib.Path(run) / "device.json").read_text())
    metrics = pathlib.Path(run) / "metrics.json"
    if metrics.exists():
        result["metrics"] = json.loads(metrics.read_text())
    start = time.perf_counter()
    version = export.export_saved_model(run, base, overwrite=True)
    result["export_s"] = time.perf_counter() - start
    result["version"] = str(version)

    texts = [t.decode("utf-8") for t, _ in datasets.get_dataset(DATASET).examples("test")
             .take(requests + WARMUP_REQUESTS).as_numpy_iterator()]
    result["sentence_words"] = statistics.median(len(t.split()) for t in texts)
    warm, timed = texts[:WARMUP_REQUESTS], texts[WARMUP_REQUESTS:]

    result["load_before_grpc"] = os.getloadavg()[0]
    with serving.ModelServer(str(base / "bert_classifier"), "bert_classifier", port=0, host="127.0.0.1") as server:
        client = serving.Client(f"127.0.0.1:{server.grpc_port}", "bert_classifier")
        try:
            for t in warm:
                client.predict({"text": np.array([t], dtype=object)})
            seconds = []
            for t in timed:
                start = time.perf_counter()
                client.predict({"text": np.array([t], dtype=object)})
                seconds.append(time.perf_counter() - start)
        finally:
            client.close()
    result["grpc"] = _percentiles(seconds)

    vocabulary = (pathlib.Path(run) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    encoder = WordPieceEncoder(vocabulary, LENGTH)
    tokenize = tf.function(lambda text: encoder(text), input_signature=[tf.TensorSpec([None], tf.string)])
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    result["vocabulary"] = len(vocabulary)

    def call_tokenizer(t):
        return tokenize(tf.constant([t])).numpy()

    def call_serving(t):
        return {k: v.numpy() for k, v in serve(text=tf.constant([t])).items()}

    for t in warm:
        call_tokenizer(t)
        call_serving(t)
    result["load_before_direct"] = os.getloadavg()[0]
    tok_s, serve_s = [], []
    for i, t in enumerate(timed):  # interleaved, alternating which goes first
        for fn, sink in ((call_tokenizer, tok_s), (call_serving, serve_s))[::1 if i % 2 == 0 else -1]:
            start = time.perf_counter()
            fn(t)
            sink.append(time.perf_counter() - start)
    result["tokenizer"] = _percentiles(tok_s)
    result["serving_fn"] = _percentiles(serve_s)
    result["share_p50"] = result["tokenizer"]["p50"] / result["serving_fn"]["p50"]
    result["share_per_request_median"] = statistics.median(a / b for a, b in zip(tok_s, serve_s))
    return result


# --- parent --------------------------------------------------------------------
def _child(which: str, *args: str, timeout: int = CHILD_TIMEOUT_S) -> dict:
    cmd = [sys.executable, str(pathlib.Path(__file__).resolve()), "--child", which, *args]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(TORCH_ENV if which == "torch" else {}))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if out.returncode:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        return {"error": (lines[-1] if lines else f"exit {out.returncode}")[:300]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> dict:
    model, flags = "?", set()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS},
            "python": platform.python_version()}


def load() -> dict:
    """The 1-minute load average and the runnable tasks at this instant, this process excluded
    (taken between children, so none of this benchmark's work is running)."""
    fields = pathlib.Path("/proc/loadavg").read_text().split()
    return {"load": float(fields[0]), "runnable": max(0, int(fields[3].split("/")[0]) - 1)}


def _load(d: dict) -> str:
    return f"{d['load']:.2f} ({d['runnable']} runnable)"


def _tok(samples) -> str:
    return _fmt(samples * LENGTH) if isinstance(samples, (int, float)) else "failed"


def _ratio(values: list) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})" if values else "n/a"


def report(res: dict, command: str) -> str:
    m, prep, serve = res["machine"], res["prepare"], res["serve"]
    serve_load = _load(res["serve_load"])
    rounds = res["rounds"]
    versions = next((r for rnd in rounds for r in rnd["zoo"].values() if "tf" in r), {})
    tv = next((r for rnd in rounds for r in rnd["torch"].values() if "torch" in r), {})
    flags = ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in m["flags"].items())
    loads = " / ".join(_load(r) for r in rounds)
    out = [f"# bert_tiny benchmark: fine-tuning tokens/s (zoo vs Hugging Face on PyTorch) and served latency\n",
           f"`{command}` ({'quick smoke run, ' if res['quick'] else ''}{len(rounds)} rounds, {res['steps']} timed "
           f"steps per pass, best of {res['repeats']} passes after a warm-up pass), run {res['date']}, took "
           f"{res['seconds'] / 60:.1f} min.\n",
           f"Machine: {m['cpu']}, {m['cores']} CPU cores, shared with other jobs. Load per round (1-minute load "
           f"average at its start, which still counts this benchmark's previous child; in brackets the tasks of "
           f"other processes runnable at that instant): {loads}; {serve_load} before the serving part. "
           f"CPU flags: {flags}. zoo's `mixed_precision=\"auto\"` picks `{prep.get('auto_policy', '?')}` here.\n",
           f"Versions: TensorFlow {versions.get('tf', '?')}, Keras {versions.get('keras', '?')}, keras-hub "
           f"{versions.get('keras_hub', '?')}; PyTorch {tv.get('torch', '?')}, transformers "
           f"{tv.get('transformers', '?')} (attention: `{tv.get('attention', '?')}`).\n",
           "## Fine-tuning throughput, bert_tiny, batch 32 x 128 tokens\n",
           f"synthetic_sentiment train ({prep.get('examples', '?')} examples; vocabulary {prep.get('vocabulary', '?')}"
           f" = {prep.get('learned_pieces', '?')} learned WordPiece entries incl. the 5 reserved + "
           f"`[unused{{i}}]` filler; {prep.get('mean_pieces', 0):.1f} non-pad pieces per example on average, "
           f"padded to 128). Tokens/s = samples/s x 128 (padding included, as both sides compute it). "
           f"Medians over rounds; the ratio is the median of the per-round ratios zoo / PyTorch (range).\n",
           "| precision | zoo jit_compile | zoo tokens/s | PyTorch tokens/s | zoo / PyTorch (range) |",
           "|---|---|---:|---:|---|"]
    for p in PRECISIONS:
        torch_runs = [rnd["torch"][p].get("train") for rnd in rounds]
        torch_ok = [v for v in torch_runs if v]
        for jit in JIT:
            zoo_runs = [rnd["zoo"][p].get(jit) for rnd in rounds]
            zoo_ok = [v for v in zoo_runs if v]
            ratios = [z / t for z, t in zip(zoo_runs, torch_runs) if z and t]
            out.append(f"| {p} | {jit} | {_tok(statistics.median(zoo_ok)) if zoo_ok else 'failed'} | "
                       f"{_tok(statistics.median(torch_ok)) if torch_ok else 'failed'} | {_ratio(ratios)} |")
    out += ["", "Per round (tokens/s; load at the start of the round as above):", "",
            "| round | load | " + " | ".join(f"zoo {p} jit {j}" for p in PRECISIONS for j in JIT)
            + " | " + " | ".join(f"torch {p}" for p in PRECISIONS) + " |",
            "|---:|---:|" + "---:|" * (len(PRECISIONS) * (len(JIT) + 1))]
    for i, rnd in enumerate(rounds):
        out.append(f"| {i + 1} | {_load(rnd)} | "
                   + " | ".join(_tok(rnd["zoo"][p].get(j)) for p in PRECISIONS for j in JIT) + " | "
                   + " | ".join(_tok(rnd["torch"][p].get("train")) for p in PRECISIONS) + " |")
    notes = []
    zp = next((r["params"] for rnd in rounds for r in rnd["zoo"].values() if "params" in r), None)
    tp = tv.get("params")
    if zp and tp:
        notes.append(f"- Parameters: zoo {zp:,}, transformers {tp:,} ({100 * (tp - zp) / zp:+.2f}%).")
    for rnd_i, rnd in enumerate(rounds):
        for p in PRECISIONS:
            for key, value in rnd["zoo"][p].items():
                if key.startswith("error"):
                    notes.append(f"- round {rnd_i + 1}, zoo {p} {key}: `{value}`")
            if "error" in rnd["torch"][p]:
                notes.append(f"- round {rnd_i + 1}, torch {p}: `{rnd['torch'][p]['error']}`")
    notes.append("- Warm-up pass (trace + first steps, excluded), median s: "
                 + ", ".join(f"torch {p} {statistics.median([rnd['torch'][p].get('warmup_s', 0) for rnd in rounds]):.1f}"
                            for p in PRECISIONS) + "; zoo's is excluded inside training_throughput.")
    out += [""] + notes + [""]

    out.append("## Served latency, exported bert_classifier with in-graph WordPiece tokenization\n")
    if "error" in serve:
        out.append(f"failed: `{serve['error']}`\n")
        return "\n".join(out) + "\n"
    dev = serve.get("device", {})
    acc = serve.get("metrics", {})
    acc_s = f", {acc.get('split', 'test')} accuracy {acc['accuracy']:.3f}" if "accuracy" in acc else ""
    out += [f"`zoo.train(\"bert_classifier\", \"{DATASET}\", epochs=1, model_kwargs={{\"sequence_length\": 128}})` "
            f"(dtype policy {dev.get('dtype_policy', '?')}, jit {dev.get('jit_compile', '?')}; "
            f"{serve['train_s']:.0f} s{acc_s}; vocabulary {serve['vocabulary']} learned entries), "
            f"`export.export_saved_model(run, base)` ({serve['export_s']:.0f} s incl. verification; the export "
            f"computes in float32), served in-process by `serving.ModelServer(..., port=0, host=\"127.0.0.1\")` "
            f"and queried by `serving.Client(...).predict({{\"text\": np.array([sentence], dtype=object)}})`, one "
            f"test sentence per request (median {serve['sentence_words']:.0f} words), "
            f"{serve['grpc']['n']} timed requests after {WARMUP_REQUESTS} warm-up ones, closed loop, one client.\n",
            "| path | p50 ms | p90 ms | requests | load at start |", "|---|---:|---:|---:|---:|",
            f"| gRPC, in-process ModelServer + Client | {serve['grpc']['p50']:.2f} | {serve['grpc']['p90']:.2f} | "
            f"{serve['grpc']['n']} | {serve['load_before_grpc']:.2f} |", "",
            "Tokenizer's share: `WordPieceEncoder(vocabulary, 128)` in a `tf.function` (strings [1] -> int32 "
            "[1, 128]) against the whole in-process call of the export's `serving_default` (`tf.saved_model.load`, "
            "after `import tensorflow_text`; text [1] -> probabilities, class_id, label, as numpy), on the same "
            "sentences, the two calls interleaved per sentence (order alternating).\n",
            "| call | p50 ms | p90 ms | calls | load at start |", "|---|---:|---:|---:|---:|",
            f"| WordPiece tokenization alone | {serve['tokenizer']['p50']:.3f} | {serve['tokenizer']['p90']:.3f} | "
            f"{serve['tokenizer']['n']} | {serve['load_before_direct']:.2f} |",
            f"| whole serving_default call | {serve['serving_fn']['p50']:.3f} | {serve['serving_fn']['p90']:.3f} | "
            f"{serve['serving_fn']['n']} | {serve['load_before_direct']:.2f} |",
            f"| tokenizer / whole (p50 ratio) | {100 * serve['share_p50']:.0f}% | | | |",
            f"| tokenizer / whole (median per-call ratio) | {100 * serve['share_per_request_median']:.0f}% | | | |",
            f"| tokenizer p50 / gRPC p50 | {100 * serve['tokenizer']['p50'] / serve['grpc']['p50']:.0f}% | | | |",
            "",
            "The server runs a SavedModel's signature as TF Serving does, as a TF1 Session callable by tensor "
            "names (serving/servables.py), while `signatures[\"serving_default\"]` is a TF2 concrete function "
            "with Python-side argument handling, so the direct call can take longer than a gRPC round trip.",
            ""]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=STEPS, help="timed steps per pass (a multiple of 8)")
    ap.add_argument("--repeats", type=int, default=REPEATS, help="timed passes per measurement (best is kept)")
    ap.add_argument("--requests", type=int, default=REQUESTS)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 round, 8 steps, 1 timed pass, 20 requests; results under /tmp/benchbert only")
    ap.add_argument("--child", choices=("prepare", "zoo", "torch", "serve"), help=argparse.SUPPRESS)
    ap.add_argument("--precision", choices=PRECISIONS, help=argparse.SUPPRESS)
    ap.add_argument("--jit", nargs="+", choices=JIT, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.steps, args.repeats, args.requests = 1, 8, 1, 20
    if args.child:
        result = {"prepare": lambda: prepare(),
                  "zoo": lambda: zoo_throughput(args.precision, args.jit, args.steps, args.repeats),
                  "torch": lambda: torch_throughput(args.precision, args.steps, args.repeats),
                  "serve": lambda: served_latency(args.requests)}[args.child]()
        print(json.dumps(result))
        return

    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = ".venv/bin/python benchmarks/bench_bert.py" + (" --quick" if args.quick else "") + "".join(
        f" --{k} {getattr(args, k)}" for k, d in (("rounds", 3), ("steps", STEPS), ("repeats", REPEATS),
                                                   ("requests", REQUESTS))
        if not args.quick and getattr(args, k) != d)
    res = {"date": datetime.date.today().isoformat(), "quick": args.quick, "steps": args.steps,
           "repeats": args.repeats, "machine": machine(), "rounds": []}
    print(f"prepare (load {os.getloadavg()[0]:.2f})", flush=True)
    res["prepare"] = _child("prepare")
    if "error" in res["prepare"]:
        sys.exit(f"prepare failed: {res['prepare']['error']}")
    print(f"  {res['prepare']}", flush=True)
    step_args = ["--steps", str(args.steps), "--repeats", str(args.repeats)]
    for r in range(args.rounds):
        rnd = {**load(), "zoo": {}, "torch": {}}
        print(f"round {r + 1} (load {_load(rnd)})", flush=True)
        jits = list(JIT) if r % 2 == 0 else list(JIT)[::-1]
        # Each precision's pair back to back; which side goes first alternates.
        for i, p in enumerate(PRECISIONS):
            for side in (("zoo", "torch") if (r + i) % 2 == 0 else ("torch", "zoo")):
                extra = ["--jit", *jits] if side == "zoo" else []
                rnd[side][p] = _child(side, "--precision", p, *step_args, *extra)
            z, t = rnd["zoo"][p], rnd["torch"][p]
            print(f"  {p}: " + "  ".join(f"zoo jit {j} {_tok(z.get(j))} tok/s" for j in JIT)
                  + f"  torch {_tok(t.get('train'))} tok/s"
                  + "".join(f"  ratio(jit {j}) {z[j] / t['train']:.2f}" for j in JIT if z.get(j) and t.get("train"))
                  + "".join(f"  [{k}: {v}]" for d in (z, t) for k, v in d.items() if k.startswith("error")),
                  flush=True)
        res["rounds"].append(rnd)
    res["serve_load"] = load()
    print(f"serve (load {_load(res['serve_load'])})", flush=True)
    res["serve"] = _child("serve", "--requests", str(args.requests), timeout=900)
    print(f"  {json.dumps(res['serve'])[:600]}", flush=True)
    res["seconds"] = time.perf_counter() - started
    text = report(res, command)
    print(text)
    (SCRATCH / ("bert-quick.json" if args.quick else "bert.json")).write_text(json.dumps(res, indent=2))
    target = SCRATCH / "RESULTS-bert-quick.md" if args.quick else RESULTS
    target.write_text(text)
    print(f"written: {target}")


if __name__ == "__main__":
    main()
