"""Seq2seq benchmark: greedy decoding inside the served graph against one served call per output token.

The exported `seq2seq` model (zoo/tasks/seq2seq.py) decodes inside its SavedModel:
`serving_default` takes `text` [B] and answers `output_text` [B] in one call, a
`tf.while_loop` over the model's layers with key/value caches (zoo/tasks/decoding.py).
Most projects decode in the client instead: the server answers next-word logits and the
client calls it once per output token, growing the prefix. This measures both on a
trained `transformer_seq2seq` of each size in `--sizes` (default tiny and small, the
model's default size: what `zoo train transformer_seq2seq` trains), on test sentences of
synthetic_translation:

1. Served, gRPC, one sentence per request, one client (c=1), `zoo-model-server` in a
   process of its own (as bench_serving.py starts it) serving, for every size, two
   models of one base path (one models.config):
   - `translate_<size>`: `export.export_saved_model(run, base, "translate_<size>")`; the
     client sends the text and reads `output_text`;
   - `translate_steps_<size>`: the same trained Keras model (in float32, as the export
     computes) written with `keras.export.ExportArchive`: `source_ids` int32 [B, S] and
     `target_ids` int32 [B, T] -> `logits` [B, V], the next-word logits at the last
     non-padding position of `target_ids` (the whole model runs on the prefix, no
     cache, as a client-side loop over a plain Keras model needs). The client tokenizes
     with `zoo.data.sequences.SequenceTokenizer` over the run's vocab.txt (in a
     tf.function), calls Predict once per token, takes the argmax (padding and [START]
     excluded, as the in-graph decoder excludes them), stops at [END], and reads the
     ids back as text with `sequences.as_text` over target_vocab.txt.
   Both clients are the raw TF Serving PredictionService stub with requests built by
   `serving.tensors` (the cheapest Python client; `serving.Client` adds its own
   checks per call, which would weigh on the per-token side most). The two must answer
   the same texts on every sentence measured (checked every round).
2. In-process, batch 1 and batch 32: the exported `serving_default`
   (`tf.saved_model.load(...).signatures["serving_default"]`, text in, text out) against
   `zoo.tasks.seq2seq.python_greedy` (the Keras model's `predict_on_batch` on the whole
   prefix once per word) and against the task's `CachedDecoder` stepped from a Python
   loop with its encode and step each in a `tf.function` (and, with --eager, called
   eagerly: the slowest way by far, left out by default to keep the run short);
   tokenization and reading the ids back as text are inside every timing.
3. Served latency per sentence: greedy (`serving_default`) and `beam_search` with
   beam_size 4, p50 and p90.
4. Where a batch-1 decode's time goes (in-process): the in-graph loop's fixed cost and
   its cost per further step, against one whole-model forward pass (a per-token call's
   model work); their ratio bounds what longer outputs could gain.

Everything is measured under two TensorFlow thread settings (`THREADS`): the default
(intra-op pool over all cores) and one intra-op thread, each with its own server
(`--tensorflow_intra_op_parallelism`, serving every size) and, per size, its own
in-process child: a decode step of a small model is hundreds of tiny ops, and splitting
each over a pool can cost more than the op (on this 2-core machine it did, by about 2-4x
for tiny).

Output tokens: the decode steps a sentence takes, its words and the [END] (from the
per-token client, which sees the ids; every method answers the same texts). Tokens/s is
the sum of the sentences' tokens over the sum of their times. The machine is shared, so
every round runs every measurement (every size x every thread setting x every method)
back to back, their order alternating between rounds; the load average is recorded at
the start of each round and of each size within it, and each ratio is the median of the
per-round ratios (range in brackets).

    .venv/bin/python benchmarks/bench_seq2seq.py [--sizes tiny,small] [--run SIZE=DIR ...]
        [--rounds 5] [--sentences 50] [--eager] [--out benchmarks/RESULTS-seq2seq.md]
    .venv/bin/python benchmarks/bench_seq2seq.py --report /tmp/benchs2s/seq2seq.json  # rewrite the markdown

Without --run for a size it trains one first (`TRAIN`: tiny about 40 s, small about
100 s here). Scratch (runs, exports, JSON) goes to /tmp/benchs2s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pathlib
import platform
import shutil
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from bench_serving import Server  # noqa: E402  (zoo-model-server in its own process, as bench_serving runs it)
from child_process import ChildProcess  # noqa: E402  (the in-process children's processes)

SCRATCH = pathlib.Path("/tmp/benchs2s")
RESULTS = HERE / "RESULTS-seq2seq.md"
DATASET = "synthetic_translation"
MODEL_NAME = "translate_{size}"
STEPS_NAME = "translate_steps_{size}"
SIZES = ("tiny", "small")
# The training recipe per size (zoo.train keyword arguments). small, the model's default size, learns the
# synthetic set in 3 epochs at a lower rate (test BLEU 99.5 in a trial here, 105 s).
TRAIN = {
    "tiny": dict(epochs=6, batch_size=64, learning_rate=3e-3, lr_schedule="cosine",
                 model_kwargs=dict(size="tiny", dropout=0.0)),
    "small": dict(epochs=3, batch_size=64, learning_rate=1e-3, lr_schedule="cosine",
                  model_kwargs=dict(size="small", dropout=0.0)),
}
BEAM_SIZE = 4
BATCH = 32
WARMUP_SENTENCES = 5
TARGET_RATIO = 5.0  # served in-graph decode against the per-token client, output tokens/s
# TensorFlow thread settings (intra-op, inter-op; 0: TensorFlow's default, all cores), each measured
# on its own server and in its own in-process child: a decode step is many small ops, and splitting
# them over a pool's threads can cost more than the ops themselves.
THREADS = {"default": "0,0", "intra-op 1": "1,0"}
IN_PROCESS = ("exported", "python_greedy", "cached_eager", "cached_function")
IN_PROCESS_LABEL = {
    "exported": "exported `serving_default` (in-graph while_loop)",
    "python_greedy": "`python_greedy` (Keras model on the prefix, once per word)",
    "cached_eager": "`CachedDecoder` encode and steps, eager, Python loop",
    "cached_function": "`CachedDecoder` encode and step each a tf.function, Python loop",
}


def _call(recipe: dict) -> str:
    """A TRAIN recipe as the zoo.train call it makes."""
    def fmt(v):
        if isinstance(v, dict):
            return "dict(" + ", ".join(f"{k}={fmt(x)}" for k, x in v.items()) + ")"
        return f'"{v}"' if isinstance(v, str) else repr(v)

    return (f'zoo.train("transformer_seq2seq", "{DATASET}", '
            + ", ".join(f"{k}={fmt(v)}" for k, v in recipe.items()) + ")")


# --- the model and its two exports --------------------------------------------
def ensure_run(size: str, run: str | None) -> tuple[pathlib.Path, dict]:
    """The run to measure for `size`: `run` if given (it must hold model.keras), else one trained now."""
    import zoo

    if run:
        run_dir = pathlib.Path(run)
        if not (run_dir / "model.keras").exists():
            raise SystemExit(f"{run_dir} has no model.keras: not a finished run.")
        config = json.loads((run_dir / "config.json").read_text())
        if config.get("model") not in (None, "transformer_seq2seq") or \
                (config.get("model_kwargs") or {}).get("size", "small") != size:
            raise SystemExit(f"{run_dir} is not a transformer_seq2seq run of size {size} "
                             f"(model {config.get('model')!r}, model_kwargs {config.get('model_kwargs')!r}).")
        return run_dir, {"trained": False}
    start = time.perf_counter()
    run_dir = pathlib.Path(zoo.train("transformer_seq2seq", DATASET, out_dir=SCRATCH / f"run-{size}", overwrite=True,
                                     verbose=0, **TRAIN[size]))
    return run_dir, {"trained": True, "train_s": time.perf_counter() - start, "recipe": _call(TRAIN[size])}


def export_step_model(model, version_dir: pathlib.Path) -> None:
    """`model`'s next-word logits as a servable: source_ids [B, S], target_ids [B, T] -> logits [B, V]
    at the last non-padding position of target_ids (what a client-side decoding loop asks for)."""
    import keras
    import tensorflow as tf

    from zoo.data import sequences
    from zoo.tasks.base import model_inputs

    inputs = model_inputs(model)
    source_length, target_length = int(inputs["source_ids"].shape[1]), int(inputs["target_ids"].shape[1])

    def next_word_logits(source_ids, target_ids):
        logits = model({"source_ids": source_ids, "target_ids": target_ids}, training=False)
        # The prefix is [START] then the words so far; a generated id is never padding.
        last = tf.reduce_sum(tf.cast(tf.not_equal(target_ids, sequences.PAD), tf.int32), axis=1) - 1
        return {"logits": tf.gather(logits, last, axis=1, batch_dims=1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", next_word_logits, [
        tf.TensorSpec([None, source_length], tf.int32, name="source_ids"),
        tf.TensorSpec([None, target_length], tf.int32, name="target_ids")])
    archive.write_out(str(version_dir), verbose=False)


def export_both(run_dir: pathlib.Path, base: pathlib.Path, size: str) -> dict:
    """`translate_<size>` and `translate_steps_<size>` in `base` (models.config is written once all are)."""
    import export
    from zoo.training import load_run
    from zoo.training.precision import float32_model

    for name in (MODEL_NAME, STEPS_NAME):
        shutil.rmtree(base / name.format(size=size), ignore_errors=True)
    start = time.perf_counter()
    version = export.export_saved_model(run_dir, base, MODEL_NAME.format(size=size))
    export_s = time.perf_counter() - start
    model = float32_model(load_run(run_dir)[0])  # what the export computes in
    export_step_model(model, base / STEPS_NAME.format(size=size) / "1")
    return {"model": model, "version_dir": pathlib.Path(version), "export_s": export_s}


# --- the clients --------------------------------------------------------------
class Tokenizers:
    """The run's vocabularies, as a client would hold them: text -> source ids, ids -> text."""

    def __init__(self, run_dir: pathlib.Path, model):
        import tensorflow as tf

        from zoo.data import sequences
        from zoo.tasks.base import model_inputs
        from zoo.tasks.seq2seq import SOURCE_VOCABULARY_FILE, TARGET_VOCABULARY_FILE

        inputs = model_inputs(model)
        self.source_length = int(inputs["source_ids"].shape[1])
        self.target_length = int(inputs["target_ids"].shape[1])
        target_file = run_dir / TARGET_VOCABULARY_FILE
        self.target_vocabulary = sequences.read_vocabulary(
            target_file if target_file.exists() else run_dir / SOURCE_VOCABULARY_FILE)
        source = sequences.SequenceTokenizer(sequences.read_vocabulary(run_dir / SOURCE_VOCABULARY_FILE),
                                             self.source_length)
        self._encode = tf.function(source.encode, input_signature=[tf.TensorSpec([None], tf.string)])

    def encode(self, texts: list[str]) -> np.ndarray:
        import tensorflow as tf

        return self._encode(tf.constant(texts)).numpy()

    def text(self, ids) -> list[str]:
        from zoo.data import sequences

        return sequences.as_text(ids, self.target_vocabulary)


def _request(name: str, arrays: dict, signature: str = "serving_default"):
    from tensorflow_serving.apis import predict_pb2

    from serving import tensors

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in arrays.items():
        request.inputs[key].CopyFrom(tensors.from_ndarray(value))
    return request


def _output(response, key: str) -> np.ndarray:
    from serving import tensors

    return tensors.to_ndarray(response.outputs[key], key, max_bytes=None)


class Served:
    """gRPC clients of the server: the in-graph decode, the per-token loop and beam search, one sentence a call."""

    def __init__(self, port: int, tokenizers: Tokenizers, size: str):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(f"localhost:{port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel).Predict
        self.tok = tokenizers
        self.model_name, self.steps_name = MODEL_NAME.format(size=size), STEPS_NAME.format(size=size)

    def greedy(self, text: str) -> str:
        response = self.predict(_request(self.model_name, {"text": np.array([text], dtype=object)}), timeout=60)
        return _output(response, "output_text")[0].decode("utf-8")

    def beam(self, text: str) -> str:
        response = self.predict(_request(self.model_name, {"text": np.array([text], dtype=object),
                                                           "beam_size": np.array(BEAM_SIZE, np.int32)},
                                         signature="beam_search"), timeout=60)
        return _output(response, "output_text")[0, 0].decode("utf-8")

    def per_token(self, text: str) -> tuple[str, int]:
        """(the greedy output text, its decode steps), one Predict per output token."""
        from zoo.data import sequences
        from zoo.tasks import decoding

        source_ids = self.tok.encode([text])
        length = self.tok.target_length
        reads = np.zeros((1, length), np.int32)
        reads[0, 0] = sequences.START
        output = []
        for t in range(length):
            response = self.predict(_request(self.steps_name, {"source_ids": source_ids, "target_ids": reads}),
                                    timeout=60)
            scores = _output(response, "logits")[0].astype(np.float32)
            scores[list(decoding.NEVER)] = -np.inf
            token = int(np.argmax(scores))
            output.append(token)
            if token == sequences.END:
                break
            if t + 1 < length:
                reads[0, t + 1] = token
        return self.tok.text([output])[0], len(output)

    def close(self):
        self.channel.close()


class InProcess:
    """Greedy decoding of a batch of texts in this process, in several ways; each answers the texts."""

    def __init__(self, version_dir: pathlib.Path, model, tokenizers: Tokenizers):
        import tensorflow as tf

        from zoo.tasks import decoding

        self.serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
        self.model, self.tok = model, tokenizers
        self.decoder = decoding.CachedDecoder(model)
        self.encode_function = tf.function(self.decoder.encode, reduce_retracing=True)
        self.step_function = tf.function(self.decoder.step, reduce_retracing=True)
        self.greedy_function = tf.function(lambda ids, n: decoding.greedy(self.decoder, ids, n), input_signature=[
            tf.TensorSpec([None, tokenizers.source_length], tf.int32), tf.TensorSpec([], tf.int32)])
        self.forward = tf.function(lambda ids, reads: model({"source_ids": ids, "target_ids": reads}, training=False),
                                   input_signature=[tf.TensorSpec([None, tokenizers.source_length], tf.int32),
                                                    tf.TensorSpec([None, tokenizers.target_length], tf.int32)])

    def exported(self, texts: list[str]) -> list[str]:
        import tensorflow as tf

        return [t.decode("utf-8") for t in self.serve(text=tf.constant(texts))["output_text"].numpy()]

    def python_greedy(self, texts: list[str]) -> list[str]:
        from zoo.tasks.seq2seq import python_greedy

        return self.tok.text(python_greedy(self.model, self.tok.encode(texts)))

    def _cached(self, texts: list[str], encode, step) -> list[str]:
        import tensorflow as tf

        from zoo.data import sequences

        source_ids = tf.constant(self.tok.encode(texts))
        batch, length = len(texts), self.decoder.target_length
        encoded, mask, cross = encode(source_ids)
        weights = self.decoder.weights()  # read once per decode, as decoding.greedy does
        caches = self.decoder.empty_caches(batch)
        tokens = tf.fill([batch], sequences.START)
        output = np.zeros((batch, length), np.int32)
        done = np.zeros(batch, bool)
        for t in range(length):
            logits, caches = step(tokens, tf.constant(t), caches, encoded, mask, cross, weights)
            token = np.argmax(logits.numpy(), axis=-1).astype(np.int32)  # NEVER ids are already -1e9
            token[done] = sequences.PAD
            output[:, t] = token
            done |= token == sequences.END
            if done.all():
                break
            tokens = tf.constant(token)
        return self.tok.text(output)

    def breakdown(self, texts: list[str], tokens: list[int]) -> dict:
        """Where a batch-1 decode's time goes, median ms over the sentences: the in-graph greedy loop's
        fixed cost (encoding the source, one step), each further step, and one whole-model forward pass
        on a padded prefix (what each call of the per-token client runs)."""
        import tensorflow as tf

        from zoo.data import sequences

        fixed, step, forward = [], [], []
        for text, n in zip(texts, tokens):
            source_ids = tf.constant(self.tok.encode([text]))
            reads = np.zeros((1, self.decoder.target_length), np.int32)
            reads[0, :n] = sequences.START  # a prefix as long as the output, its last position read
            reads = tf.constant(reads)
            one = _seconds(lambda: self.greedy_function(source_ids, tf.constant(1)).numpy())
            full = _seconds(lambda: self.greedy_function(source_ids, tf.constant(self.decoder.target_length)).numpy())
            forward.append(_seconds(lambda: self.forward(source_ids, reads).numpy()))
            fixed.append(one)
            if n > 1:
                step.append((full - one) / (n - 1))
        return {"fixed_ms": statistics.median(fixed) * 1e3, "step_ms": statistics.median(step) * 1e3,
                "forward_ms": statistics.median(forward) * 1e3}

    def cached_eager(self, texts: list[str]) -> list[str]:
        return self._cached(texts, self.decoder.encode, self.decoder.step)

    def cached_function(self, texts: list[str]) -> list[str]:
        return self._cached(texts, self.encode_function, self.step_function)


def in_process_child(spec_file: str, tf_threads: str) -> None:
    """Measure in-process cells until stdin closes: one JSON line in ({"method", "size"}), one out."""
    import zoo.models  # noqa: F401  (registers the custom layers a run's model.keras names)
    from bench_serving import set_tf_threads
    from zoo.training import load_run
    from zoo.training.precision import float32_model

    set_tf_threads(tf_threads)
    spec = json.loads(pathlib.Path(spec_file).read_text())
    run_dir = pathlib.Path(spec["run_dir"])
    model = float32_model(load_run(run_dir)[0])
    local = InProcess(pathlib.Path(spec["version_dir"]), model, Tokenizers(run_dir, model))
    texts, expected, tokens = spec["texts"], spec["expected"], spec["tokens"]
    warm, size_name = spec["warm"], spec["size"]
    for method in spec["methods"]:
        for group in (warm[:1], (warm * BATCH)[:BATCH]):
            getattr(local, method)(group)
    local.breakdown(texts[:2], tokens[:2])
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        method, size = request["method"], request["size"]
        groups = batches(texts, tokens, size)
        if method == "breakdown":
            print(json.dumps(local.breakdown(texts, tokens)), flush=True)
            continue
        try:
            answers, seconds = _timed(getattr(local, method), [g for g, _ in groups])
            for got, (group, _) in zip(answers, groups):
                _check_same(f"{size_name}: in-process {method}, batch {size}, threads {tf_threads}", got,
                            [expected[texts.index(t)] for t in group], group)
            result = {"tokens_per_s": sum(n for _, n in groups) / sum(seconds), "s_per_batch": statistics.median(seconds)}
        except Exception as e:  # the parent stops the run with it
            result = {"error": f"{type(e).__name__}: {e}"[:1000]}
        print(json.dumps(result), flush=True)


# --- measuring ----------------------------------------------------------------
def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timed(fn, items) -> tuple[list, list]:
    """(answers, seconds) of `fn` on each item in turn."""
    answers, seconds = [], []
    for item in items:
        start = time.perf_counter()
        answers.append(fn(item))
        seconds.append(time.perf_counter() - start)
    return answers, seconds


def _ms(seconds: list) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)), "n": len(ms)}


def _check_same(what: str, got: list[str], expected: list[str], texts: list[str]) -> None:
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    if wrong or len(got) != len(expected):
        i = wrong[0] if wrong else 0
        raise AssertionError(f"{what}: {len(wrong)} of {len(expected)} outputs differ from the per-token client's "
                             f"(first: {texts[i]!r} -> {got[i]!r}, expected {expected[i]!r})")


def batches(texts: list[str], tokens: list[int], size: int) -> list[tuple[list[str], int]]:
    """The texts in batches of `size` (the last filled from the start), each with its output tokens."""
    n = max(1, math.ceil(len(texts) / size)) * size
    idx = [i % len(texts) for i in range(n)]
    return [([texts[i] for i in idx[b:b + size]], sum(tokens[i] for i in idx[b:b + size])) for b in range(0, n, size)]


def measure_round(r: int, sizes: list[str], served: dict, children: dict, texts: list[str], expected: dict,
                  tokens: dict, methods: list[str]) -> dict:
    """One round: every size x every thread setting x every method back to back, the order alternating with
    the round; within a size and setting the served and in-process cells run together, so each ratio's two
    sides are measured seconds apart."""

    def order(xs):
        return list(xs) if r % 2 == 0 else list(xs)[::-1]

    rnd = {"load": os.getloadavg()[0], "sizes": {}}
    for size in order(sizes):
        total = sum(tokens[size])
        cell = rnd["sizes"][size] = {"load": os.getloadavg()[0], "served": {}, "in_process": {}}
        for setting in order(THREADS):
            client, cells = served[size][setting], {}
            for mode in order(("greedy", "per_token")):
                if mode == "greedy":
                    answers, seconds = _timed(client.greedy, texts)
                else:
                    pairs, seconds = _timed(client.per_token, texts)
                    answers = [a for a, _ in pairs]
                    if [n for _, n in pairs] != tokens[size]:
                        raise AssertionError(f"{size}: the per-token client took other steps than at the start")
                _check_same(f"{size}: served {mode}, threads {setting}", answers, expected[size], texts)
                cells[mode] = {"tokens_per_s": total / sum(seconds), **_ms(seconds)}
            answers, seconds = _timed(client.beam, texts)
            cells["beam"] = _ms(seconds)
            cells["beam_same_as_greedy"] = sum(a == e for a, e in zip(answers, expected[size]))
            cell["served"][setting] = cells
            child = children[size][setting]
            cell["in_process"][setting] = {batch: {method: child.ask({"method": method, "size": batch})
                                                     for method in order(methods)}
                                           for batch in order((1, BATCH))}
            cell["in_process"][setting]["breakdown"] = child.ask({"method": "breakdown", "size": 1})
    return rnd


# --- report -------------------------------------------------------------------
def machine() -> dict:
    import keras
    import tensorflow as tf

    model = "?"
    try:
        model = next(line.split(":", 1)[1].strip() for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(), "tf": tf.__version__,
            "keras": keras.__version__}


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _ratio(values: list) -> str:
    return f"{statistics.median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def ratios(view: dict) -> dict:
    """One size's per-round ratios: {("served", setting)}, {(setting, batch, method)}: exported / method."""
    rounds, out = view["rounds"], {}
    for setting in THREADS:
        out["served", setting] = [r["served"][setting]["greedy"]["tokens_per_s"]
                                  / r["served"][setting]["per_token"]["tokens_per_s"] for r in rounds]
        for batch in (1, BATCH):
            for method in view["methods"][1:]:
                cell = [r["in_process"][setting][batch] for r in rounds]
                out[setting, batch, method] = [c["exported"]["tokens_per_s"] / c[method]["tokens_per_s"] for c in cell]
    return out


def _median(rounds, *path) -> float:
    values = []
    for r in rounds:
        for key in path:
            r = r[key]
        values.append(r)
    return statistics.median(values)


def _threads(setting: str) -> str:
    intra, _, inter = THREADS[setting].partition(",")
    return f"{setting} (intra-op {intra}, inter-op {inter}; 0 = TensorFlow's default)"


def _shape(size: str) -> str:
    from zoo.models.transformer_seq2seq import SIZES as SHAPES

    s = SHAPES[size]
    return (f"{s['num_layers']}+{s['num_layers']} layers, width {s['hidden_dim']}, {s['num_heads']} heads, "
            f"feed-forward {s['intermediate_dim']}")


def view(res: dict, size: str) -> dict:
    """One size's part of the results, shaped as the per-size tables read it."""
    return {"size": size, "rounds": [r["sizes"][size] for r in res["rounds"]], "run": res["runs"][size],
            "methods": res["methods"], "sentences": res["sentences"]}


def _breakdown(v: dict, t: str) -> dict:
    b = {k: _median(v["rounds"], "in_process", t, "breakdown", k) for k in ("fixed_ms", "step_ms", "forward_ms")}
    b["call_ms"] = 1e3 / _median(v["rounds"], "served", t, "per_token", "tokens_per_s")
    return b


def summary(res: dict) -> list[str]:
    """The ratios of every size in one table."""
    methods = res["methods"][1:]
    out = ["## Ratios, every size\n",
           f"Medians over {len(res['rounds'])} rounds of the per-round ratios (range). Served: in-graph greedy / "
           f"per-token client, output tokens/s, gRPC, c=1 (target >= {TARGET_RATIO:.0f}x). In-process: the exported "
           f"`serving_default` / each other method, output tokens/s, batch 1 and batch {BATCH}. Bound: the "
           "per-token client's ms per call / the in-graph loop's ms per further step (what the served ratio "
           "tends to as outputs grow).\n",
           "| size | TF threads | served in-graph / per-token | >= 5x | " + " | ".join(
               f"in-process / {m} b1 | b{BATCH}" for m in methods) + " | bound |",
           "|---|---|---|---|" + "---|---|" * len(methods) + "---:|"]
    for size in res["sizes"]:
        v = view(res, size)
        q = ratios(v)
        for t in THREADS:
            met = "met" if statistics.median(q["served", t]) >= TARGET_RATIO else "NOT met"
            b = _breakdown(v, t)
            out.append(f"| {size} | {t} | **{_ratio(q['served', t])}** | {met} | "
                       + " | ".join(f"{_ratio(q[t, 1, m])} | {_ratio(q[t, BATCH, m])}" for m in methods)
                       + f" | {b['call_ms'] / b['step_ms']:.1f}x |")
    return out + [""]


def size_report(v: dict) -> list[str]:
    """One size's tables: served, in-process, the breakdown and the rounds."""
    rounds, info, size, methods = v["rounds"], v["run"], v["size"], v["methods"]
    q = ratios(v)
    name, steps = MODEL_NAME.format(size=size), STEPS_NAME.format(size=size)
    per = info["tokens"] / v["sentences"]
    out = [f"## {size} ({_shape(size)})\n",
           f"{info['tokens']} output tokens in all, {per:.1f} per sentence = words + [END]; "
           f"{info['reference_match']} of {v['sentences']} outputs equal the reference translation.\n",
           "### Served, gRPC, one sentence per request, c=1\n",
           "| TF threads | client | output tokens/s | p50 ms / sentence | p90 ms / sentence | calls / sentence |",
           "|---|---|---:|---:|---:|---:|"]
    for t in THREADS:
        out += [f"| {t} | in-graph greedy (`{name}` serving_default, text in, text out) | "
                f"{_fmt(_median(rounds, 'served', t, 'greedy', 'tokens_per_s'))} | "
                f"{_median(rounds, 'served', t, 'greedy', 'p50'):.2f} | "
                f"{_median(rounds, 'served', t, 'greedy', 'p90'):.2f} | 1 |",
                f"| {t} | per-token client (`{steps}`, one Predict per token) | "
                f"{_fmt(_median(rounds, 'served', t, 'per_token', 'tokens_per_s'))} | "
                f"{_median(rounds, 'served', t, 'per_token', 'p50'):.2f} | "
                f"{_median(rounds, 'served', t, 'per_token', 'p90'):.2f} | {per:.1f} |",
                f"| {t} | in-graph beam search (`beam_search`, beam_size {BEAM_SIZE}) | - | "
                f"{_median(rounds, 'served', t, 'beam', 'p50'):.2f} | "
                f"{_median(rounds, 'served', t, 'beam', 'p90'):.2f} | 1 |"]
    out += ["", f"{size}: in-graph greedy / per-token client, output tokens/s (target >= {TARGET_RATIO:.0f}x):", ""]
    for t in THREADS:
        value = statistics.median(q["served", t])
        out.append(f"- TF threads {t}: **{_ratio(q['served', t])}**: {'met' if value >= TARGET_RATIO else 'NOT met'}")
    same = statistics.median(r["served"][t]["beam_same_as_greedy"] for r in rounds for t in THREADS)
    out += ["", f"Beam search's best hypothesis equalled the greedy output on {same:.0f} of {v['sentences']} "
                "sentences.\n",
            "### In-process, greedy decoding\n",
            "| TF threads | method | batch | output tokens/s | ms per batch | exported / this (range) |",
            "|---|---|---:|---:|---:|---|"]
    for t in THREADS:
        for batch in (1, BATCH):
            for method in methods:
                ratio = "-" if method == "exported" else _ratio(q[t, batch, method])
                out.append(f"| {t} | {IN_PROCESS_LABEL[method]} | {batch} | "
                           f"{_fmt(_median(rounds, 'in_process', t, batch, method, 'tokens_per_s'))} | "
                           f"{_median(rounds, 'in_process', t, batch, method, 's_per_batch') * 1e3:.1f} | {ratio} |")
    out += ["", "### Where the time goes, batch 1 (ms)\n",
            "| TF threads | in-graph fixed (encode + 1 step) | in-graph per further step | whole-model forward | "
            "served per-token call | per-token call / in-graph step | forward / in-graph step |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for t in THREADS:
        b = _breakdown(v, t)
        out.append(f"| {t} | {b['fixed_ms']:.2f} | {b['step_ms']:.2f} | {b['forward_ms']:.2f} | {b['call_ms']:.2f} | "
                   f"{b['call_ms'] / b['step_ms']:.1f}x | {b['forward_ms'] / b['step_ms']:.1f}x |")
    out += ["", "### Per round\n",
            "Load: the 1-minute load average when this size's part of the round began. Output tokens/s (p50 ms per "
            f"sentence in brackets for the served clients); in-process columns are batch 1 / batch {BATCH}.\n",
            "| round | load | TF threads | served in-graph | served per-token | ratio | beam p50 ms | "
            + " | ".join(methods) + " |",
            "|---:|---:|---|---:|---:|---:|---:|" + "---:|" * len(methods)]
    for i, r in enumerate(rounds):
        for t in THREADS:
            s, p = r["served"][t], r["in_process"][t]
            out.append(f"| {i + 1} | {r['load']:.2f} | {t} | {_fmt(s['greedy']['tokens_per_s'])} "
                       f"({s['greedy']['p50']:.2f}) | {_fmt(s['per_token']['tokens_per_s'])} "
                       f"({s['per_token']['p50']:.2f}) | {q['served', t][i]:.2f}x | {s['beam']['p50']:.2f} | "
                       + " | ".join(f"{_fmt(p[1][m]['tokens_per_s'])} / {_fmt(p[BATCH][m]['tokens_per_s'])}"
                                    for m in methods) + " |")
    return out + [""]


def report(res: dict) -> str:
    m, rounds = res["machine"], res["rounds"]
    loads = " / ".join(f"{r['load']:.2f}" for r in rounds)
    models = []
    for size in res["sizes"]:
        info = res["runs"][size]
        if info["trained"]:
            trained = f"trained by this run in {info['train_s']:.0f} s: `{info['recipe']}`"
        else:
            c = info["config"]
            trained = (f"the existing run `{info['dir']}` (epochs {c['epochs']}, batch {c['batch_size']}, learning "
                       f"rate {c['learning_rate']} {c['lr_schedule']}, {c['model_kwargs']}, mixed_precision "
                       f"{c['mixed_precision']})")
        metrics = info.get("metrics", {})
        models.append(f"- {size} ({_shape(size)}; {info['params']:,} parameters): {trained}; test BLEU "
                      f"{metrics.get('bleu', float('nan')):.1f}, exact match "
                      f"{metrics.get('exact_match', float('nan')):.3f}; exported in {info['export_s']:.0f} s with "
                      "its verification.")
    first = res["runs"][res["sizes"][0]]
    eager = "" if "cached_eager" in res["methods"] else (
        " The eager `CachedDecoder` variant (Python calling the Keras layers op by op, by far the slowest and "
        "least informative way) is left out of this run (`--eager` measures it).")
    out = ["# Seq2seq benchmark: greedy decoding in the served graph vs one served call per token\n",
           f"`{res['command']}`, run {res['date']}, took {res['seconds'] / 60:.1f} min.\n",
           f"Machine: {m['cpu']}, {m['cores']} CPU cores, shared with other jobs; Python {m['python']}, TensorFlow "
           f"{m['tf']}, Keras {m['keras']}. Load average (1 min) at the start of each round: {loads} "
           f"({m['cores']} cores: above {m['cores']} means other jobs were waiting for a core).\n",
           f"Models: `transformer_seq2seq` on {DATASET}, source length {first['source_length']}, target length "
           f"{first['target_length']}, vocabularies {first['source_vocabulary']} / {first['target_vocabulary']} "
           "words:\n", *models, "",
           f"Each size is exported with `export.export_saved_model(run, base, \"translate_<size>\")` and, beside it "
           "in the same base path and models.config, `translate_steps_<size>` (`keras.export.ExportArchive` over "
           f"the same trained model in float32: source_ids [B, {first['source_length']}], target_ids "
           f"[B, {first['target_length']}] -> next-word logits [B, {first['target_vocabulary']}] at the prefix's "
           "last position; the whole model runs on the padded prefix, no cache). Served by `zoo-model-server` in "
           "its own process (gRPC, no batching), one server per TensorFlow thread setting, serving every size: "
           + "; ".join(_threads(t) for t in THREADS) + ". The in-process side runs in one child process per size "
           "and setting, the same way." + eager + "\n",
           f"Sentences: the first {res['sentences']} of the {DATASET} test split after {WARMUP_SENTENCES} warm-up "
           f"ones (median {res['source_words']:.0f} source words). Every method answered the same texts as the "
           "per-token client of its size on every sentence, every round, under both settings (checked). Every "
           f"round measures every size x every thread setting x every method back to back, the order reversed "
           f"every other round; medians over {len(rounds)} rounds; ratios are medians of per-round ratios "
           "(range). In-process, tokenization and reading the ids back as text are inside every timing; batch "
           f"{BATCH}: the sentences in batches of {BATCH} (the last filled from the first ones), a batch decodes "
           "until its longest output ends, and only each sentence's own tokens are counted. Where the time goes: "
           "in-process (the child of each size and setting), median ms over the sentences, the in-graph greedy "
           "loop (`decoding.greedy` in a tf.function, on ids already tokenized) stopped after one step (the fixed "
           "cost: encoding the source, the caches, one step) and run to its end, the difference per further step; "
           f"one forward pass of the whole Keras model on a padded [1, {first['target_length']}] prefix (the model "
           "work of each per-token call); and the per-token client's mean ms per served call (1000 / its "
           "tokens/s: gRPC, request and response, argmax, the forward pass).\n"]
    out += summary(res)
    for size in res["sizes"]:
        out += size_report(view(res, size))
    out += ["## What this shows\n", what_this_shows(res), ""]
    return "\n".join(out) + "\n"


def _loop_model(v: dict, t: str) -> float:
    """The served ratio the batch-1 breakdown predicts at this set's output length: per-token calls against the
    in-graph fixed cost and further steps (the in-graph call's own tokenizing, signature call and gRPC left out)."""
    b, per = _breakdown(v, t), v["run"]["tokens"] / v["sentences"]
    return per * b["call_ms"] / (b["fixed_ms"] + (per - 1) * b["step_ms"])


def _tokens_for_target(b: dict) -> float | None:
    """The output length at which the breakdown's loop model reaches TARGET_RATIO (None: at no length)."""
    if b["call_ms"] <= TARGET_RATIO * b["step_ms"]:
        return None
    return TARGET_RATIO * (b["fixed_ms"] - b["step_ms"]) / (b["call_ms"] - TARGET_RATIO * b["step_ms"])


def what_this_shows(res: dict) -> str:
    default, single = THREADS
    sizes = res["sizes"]
    views = {size: view(res, size) for size in sizes}
    qs = {size: ratios(v) for size, v in views.items()}
    served = {size: {t: statistics.median(qs[size]["served", t]) for t in THREADS} for size in sizes}
    bd = {size: {t: _breakdown(views[size], t) for t in THREADS} for size in sizes}
    per = {size: views[size]["run"]["tokens"] / views[size]["sentences"] for size in sizes}
    longest = views[sizes[0]]["run"]["target_length"] - 1

    def each(fn, sep=", "):
        return sep.join(f"{size} {' / '.join(fn(size, t) for t in THREADS)}" for size in sizes)

    met = [f"{size} ({t})" for size in sizes for t in THREADS if served[size][t] >= TARGET_RATIO]
    not_met = [f"{size} ({t})" for size in sizes for t in THREADS if served[size][t] < TARGET_RATIO]
    ratios_text = each(lambda s, t: f"{served[s][t]:.1f}x")
    if not met:
        verdict = (f"**No size meets the >= {TARGET_RATIO:.0f}x target** (served in-graph greedy / per-token client, "
                   f"output tokens/s, median of {len(res['rounds'])} rounds; {default} / {single} threads): "
                   f"{ratios_text}.")
    else:
        verdict = (f"**The >= {TARGET_RATIO:.0f}x target is met by {', '.join(met)}**"
                   + (f" and **not met by {', '.join(not_met)}**" if not_met else "")
                   + f" ({default} / {single} threads: {ratios_text}).")
    single_rounds = [f"{s} ({t}) in {sum(x >= TARGET_RATIO for x in qs[s]['served', t])} of {len(res['rounds'])}"
                     for s in sizes for t in THREADS
                     if served[s][t] < TARGET_RATIO and max(qs[s]["served", t]) >= TARGET_RATIO]
    if single_rounds:
        verdict += (f" Single rounds reached {TARGET_RATIO:.0f}x for " + ", ".join(single_rounds)
                    + " rounds, when load slowed the per-token client's many calls more than the one in-graph call; "
                    "the medians do not.")
    reach = []
    for s in sizes:
        for t in THREADS:
            n = _tokens_for_target(bd[s][t])
            reach.append(f"{s} ({t}) " + (f"about {n:.0f} tokens" if n is not None else "no length"))
    gain = {s: _median(views[s]["rounds"], "served", single, "greedy", "tokens_per_s")
            / _median(views[s]["rounds"], "served", default, "greedy", "tokens_per_s") for s in sizes}
    client_gain = {s: _median(views[s]["rounds"], "served", single, "per_token", "tokens_per_s")
                   / _median(views[s]["rounds"], "served", default, "per_token", "tokens_per_s") for s in sizes}
    why = (
        " Why, from the batch-1 breakdown: a per-token call is mostly one whole-model forward pass on the padded "
        "prefix (" + each(lambda s, t: f"{bd[s][t]['forward_ms']:.2f} of {bd[s][t]['call_ms']:.2f} ms") + "; "
        f"{default} / {single}), and the in-graph decode replaces those N calls with a fixed cost of about one "
        "forward pass (encoding the source, the caches, the first step: "
        + each(lambda s, t: f"{bd[s][t]['fixed_ms'] / bd[s][t]['forward_ms']:.1f}") + " forward passes) plus N-1 "
        "cached steps. That predicts N x call / (fixed + (N-1) x step) = "
        + each(lambda s, t: f"{_loop_model(views[s], t):.1f}x")
        + f" at this set's {'/'.join(f'{per[s]:.1f}' for s in sizes)} output tokens"
        + (" (the served ratios are lower still: the in-graph call also pays its tokenizing, the text back, the "
           "signature call and gRPC)" if all(served[s][t] < _loop_model(views[s], t) for s in sizes for t in THREADS)
           else "") + ", and at most call / step = "
        + each(lambda s, t: f"{bd[s][t]['call_ms'] / bd[s][t]['step_ms']:.1f}x") + " however long the outputs. "
        f"At batch 1 a forward pass over all {longest + 1} prefix positions costs "
        + each(lambda s, t: f"{bd[s][t]['forward_ms'] / bd[s][t]['step_ms']:.1f}")
        + f" cached steps, not {longest + 1}: a cached step still runs every decoder layer's ops, one row through "
        f"each matrix instead of {longest + 1}, and at these widths each op's fixed cost (dispatch; with the "
        "default pool, hand-offs between threads) weighs about as much as its arithmetic. "
        + (f"The wider model moves this only a little, so {sizes[-1]}'s ratios stay close to {sizes[0]}'s: its "
           "forward pass costs "
           + " / ".join(f"{bd[sizes[-1]][t]['forward_ms'] / bd[sizes[0]][t]['forward_ms']:.1f}x" for t in THREADS)
           + f" {sizes[0]}'s but its cached step "
           + " / ".join(f"{bd[sizes[-1]][t]['step_ms'] / bd[sizes[0]][t]['step_ms']:.1f}x" for t in THREADS)
           + f" too ({default} / {single}), and its fixed cost (encoder, caches, first step) "
           + " / ".join(f"{bd[sizes[-1]][t]['fixed_ms'] / bd[sizes[0]][t]['fixed_ms']:.1f}x" for t in THREADS) + ". "
           if len(sizes) > 1 else "")
        + "By the breakdown, "
        f"{TARGET_RATIO:.0f}x would take outputs of " + ", ".join(reach) + f", where this model's target length "
        f"allows at most {longest} (and the served call's own overhead comes on top). "
        "One intra-op thread (`zoo-model-server --tensorflow_intra_op_parallelism=1`) served the in-graph decode at "
        + ", ".join(f"{s} {gain[s]:.1f}x" for s in sizes) + " and the per-token client at "
        + ", ".join(f"{s} {client_gain[s]:.1f}x" for s in sizes) + " the default pool's tokens/s on this 2-core "
        "machine"
        + (": it helps the per-token client's many small calls more than the one in-graph call, so the ratio is "
           "lower there." if all(client_gain[s] > gain[s] for s in sizes) else ".")
    )
    inproc = (
        " In-process, the exported decode against `python_greedy` (the whole prefix rerun once per word) is "
        + each(lambda s, t: f"{statistics.median(qs[s][t, 1, 'python_greedy']):.1f}x") + " at batch 1 and "
        + each(lambda s, t: f"{statistics.median(qs[s][t, BATCH, 'python_greedy']):.1f}x") + f" at batch {BATCH} "
        f"({default} / {single}): with {BATCH} sentences at once, rerunning the prefix is real arithmetic "
        f"({BATCH} x {longest + 1} rows per call)"
        + (", and there the in-graph cached decode is worth more than " f"{TARGET_RATIO:.0f}x for "
           + ", ".join(big) if (big := [s for s in sizes if all(
               statistics.median(qs[s][t, BATCH, "python_greedy"]) >= TARGET_RATIO for t in THREADS)]) else "")
        + ". Against the same cached encode and step as tf.functions driven from a Python loop "
        "it is " + each(lambda s, t: f"{statistics.median(qs[s][t, 1, 'cached_function']):.1f}x") + " at batch 1: "
        "what running the loop inside one graph call gains over a Python loop, the cache being equal; it shrinks "
        "as a step's own work grows."
    )
    return verdict + why + inproc


# --- main ----------------------------------------------------------------------
def _from_json(res: dict) -> dict:
    """Results read back from seq2seq.json: the batch sizes are int keys again."""
    for r in res["rounds"]:
        for cell in r["sizes"].values():
            for setting, p in cell["in_process"].items():
                cell["in_process"][setting] = {(int(k) if k.isdigit() else k): v for k, v in p.items()}
    return res


def _runs(values: list[str], sizes: list[str]) -> dict:
    runs = {}
    for value in values or []:
        size, sep, run = value.partition("=")
        if not sep:
            if len(sizes) != 1:
                raise SystemExit(f"--run {value}: give it as SIZE=DIR when measuring more than one size")
            size, run = sizes[0], value
        if size not in sizes:
            raise SystemExit(f"--run {value}: {size} is not one of --sizes {','.join(sizes)}")
        runs[size] = run
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default=",".join(SIZES),
                    help="transformer_seq2seq sizes to measure, comma-separated (default: %(default)s; a size "
                         "without a TRAIN recipe, such as base, needs --run)")
    ap.add_argument("--run", action="append", metavar="SIZE=DIR",
                    help="an existing transformer_seq2seq run of SIZE on synthetic_translation (repeatable; "
                         "else one is trained)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=50, help="test sentences measured per round")
    ap.add_argument("--eager", action="store_true", help="also measure the eager CachedDecoder loop (slow)")
    ap.add_argument("--out", default=str(RESULTS), help="results markdown (default: %(default)s)")
    ap.add_argument("--report", metavar="JSON", help="only rewrite --out from a run's seq2seq.json")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return in_process_child(*args.child)
    if args.report:
        res = _from_json(json.loads(pathlib.Path(args.report).read_text()))
        pathlib.Path(args.out).write_text(report(res))
        return print(f"written: {args.out}")
    from zoo.models.transformer_seq2seq import SIZES as SHAPES

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if not sizes or len(set(sizes)) != len(sizes) or any(s not in SHAPES for s in sizes):
        raise SystemExit(f"--sizes {args.sizes}: give distinct sizes of {', '.join(SHAPES)}")
    runs = _runs(args.run, sizes)
    if missing := [s for s in sizes if s not in runs and s not in TRAIN]:
        raise SystemExit(f"no training recipe for {', '.join(missing)}: give --run SIZE=DIR")
    methods = [m for m in IN_PROCESS if args.eager or m != "cached_eager"]

    import tensorflow as tf  # noqa: F401

    import zoo.models  # noqa: F401  (registers the custom layers a run's model.keras names)
    from serving import config as server_config
    from zoo.data import registry as datasets

    SCRATCH.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    command = ".venv/bin/python benchmarks/bench_seq2seq.py" + (
        "" if sizes == list(SIZES) else f" --sizes {','.join(sizes)}") + "".join(
        f" --run {s}={runs[s]}" for s in sizes if s in runs) + "".join(
        f" --{k} {getattr(args, k)}" for k, d in (("rounds", 5), ("sentences", 50)) if getattr(args, k) != d) + (
        " --eager" if args.eager else "") + (
        "" if pathlib.Path(args.out).resolve() == RESULTS else f" --out {args.out}")

    pairs = [(s.decode("utf-8"), t.decode("utf-8")) for s, t in datasets.get_dataset(DATASET).examples("test")
             .take(args.sentences + WARMUP_SENTENCES).as_numpy_iterator()]
    warm, timed = [s for s, _ in pairs[:WARMUP_SENTENCES]], pairs[WARMUP_SENTENCES:]
    texts = [s for s, _ in timed]

    base = SCRATCH / "models"
    shutil.rmtree(base, ignore_errors=True)
    infos, toks, version_dirs = {}, {}, {}
    for size in sizes:
        print(f"{size}: {'training' if size not in runs else 'run ' + runs[size]} "
              f"(load {os.getloadavg()[0]:.2f})", flush=True)
        run_dir, info = ensure_run(size, runs.get(size))
        config = json.loads((run_dir / "config.json").read_text())
        info.update(dir=str(run_dir), config={k: config.get(k) for k in ("epochs", "batch_size", "learning_rate",
                                                                         "lr_schedule", "model_kwargs",
                                                                         "mixed_precision")})
        if (run_dir / "metrics.json").exists():
            info["metrics"] = json.loads((run_dir / "metrics.json").read_text())
        print(f"{size}: run {run_dir} (test BLEU {info.get('metrics', {}).get('bleu', float('nan')):.1f}); "
              f"exporting (load {os.getloadavg()[0]:.2f})", flush=True)
        exports = export_both(run_dir, base, size)
        model = exports["model"]
        tok = toks[size] = Tokenizers(run_dir, model)
        version_dirs[size] = exports["version_dir"]
        info.update(run_dir=str(run_dir), export_s=exports["export_s"], params=model.count_params(),
                    source_length=tok.source_length, target_length=tok.target_length,
                    source_vocabulary=len((run_dir / "vocab.txt").read_text().splitlines()),
                    target_vocabulary=len(tok.target_vocabulary))
        infos[size] = info
    config_file = server_config.write_models_config(base)

    servers, served, children = {}, {s: {} for s in sizes}, {s: {} for s in sizes}
    try:
        for setting, threads in THREADS.items():
            servers[setting] = Server(config_file, rest=False, tf_threads=threads)
            for size in sizes:
                tok = toks[size]
                for name, inputs in ((MODEL_NAME, {"text": np.array([texts[0]], dtype=object)}),
                                     (STEPS_NAME, {"source_ids": tok.encode(texts[:1]),
                                                   "target_ids": np.full((1, tok.target_length), 2, np.int32)})):
                    # waits until the model is loaded
                    servers[setting].predict_once(_request(name.format(size=size), inputs))
                served[size][setting] = Served(servers[setting].port, tok, size)
        # The reference answers and token counts: each size's per-token client's, once; then every path warmed up.
        expected, tokens = {}, {}
        for size in sizes:
            first = [served[size]["default"].per_token(t) for t in texts]
            expected[size], tokens[size] = [a for a, _ in first], [n for _, n in first]
            infos[size].update(tokens=sum(tokens[size]),
                               reference_match=sum(e == ref for e, (_, ref) in zip(expected[size], timed)))
            for client in served[size].values():
                for t in warm:
                    client.greedy(t), client.beam(t), client.per_token(t)
            spec = SCRATCH / f"in_process_{size}.json"
            spec.write_text(json.dumps({"size": size, "run_dir": infos[size]["run_dir"],
                                        "version_dir": str(version_dirs[size]), "methods": methods, "texts": texts,
                                        "expected": expected[size], "tokens": tokens[size], "warm": warm}))
            for setting, threads in THREADS.items():
                children[size][setting] = ChildProcess(__file__, spec, threads,
                                                        what=f"the in-process child ({spec.stem}, threads {threads})")
        for size in sizes:
            for child in children[size].values():
                child.ready()
        res = {"date": datetime.date.today().isoformat(), "command": command, "machine": machine(), "sizes": sizes,
               "methods": methods, "runs": infos, "sentences": len(texts),
               "source_words": statistics.median(len(t.split()) for t in texts), "rounds": []}
        print(f"measuring (setup took {(time.perf_counter() - started) / 60:.1f} min)", flush=True)
        for r in range(args.rounds):
            rnd = measure_round(r, sizes, served, children, texts, expected, tokens, methods)
            res["rounds"].append(rnd)
            for size in sizes:
                cell = rnd["sizes"][size]
                for setting in THREADS:
                    s, p = cell["served"][setting], cell["in_process"][setting]
                    print(f"round {r + 1} {size} (load {cell['load']:.2f}) threads {setting}: served in-graph "
                          f"{s['greedy']['tokens_per_s']:.0f} tok/s, per-token {s['per_token']['tokens_per_s']:.0f} "
                          f"tok/s, ratio {s['greedy']['tokens_per_s'] / s['per_token']['tokens_per_s']:.2f}x; beam "
                          f"p50 {s['beam']['p50']:.2f} ms; in-process tok/s b1 / b{BATCH}: "
                          + ", ".join(f"{m} {p[1][m]['tokens_per_s']:.0f} / {p[BATCH][m]['tokens_per_s']:.0f}"
                                      for m in methods), flush=True)
    finally:
        for by_setting in children.values():
            for child in by_setting.values():
                child.stop()
        for by_setting in served.values():
            for client in by_setting.values():
                client.close()
        for server in servers.values():
            server.stop()
    res["seconds"] = time.perf_counter() - started
    (SCRATCH / "seq2seq.json").write_text(json.dumps(res, indent=2, default=str))
    text = report(res)
    print(text)
    pathlib.Path(args.out).write_text(text)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
