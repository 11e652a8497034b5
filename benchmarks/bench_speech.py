"""Speech benchmark: served latency of the audio models, the recogniser's real-time factor, and what decoding
the WAV and computing the log-mel features cost inside a served call.

The audio models take raw audio and compute their features in the graph: `audio_bytes` decodes WAV files
(`zoo.tasks.audio_codec.decode_batch`, TensorFlow's `tf.audio.decode_wav`) and every model starts with a
`LogMelSpectrogram` layer (zoo/models/preprocessing.py). This measures, in one run, on trained models:

1. Served latency, gRPC, one clip per request, one client (c=1), `zoo-model-server` in a process of its own
   (as bench_serving.py starts it) serving every model of one base path: the spoken-command classifiers
   `speech_cnn` and `ds_cnn` per 1 s clip (spoken_commands test clips) and the recogniser `ctc_recognizer`
   per 5 s clip, each through `audio_bytes` (the WAV file's bytes) and `serving_default` (the samples,
   float32 [1, N]); p50 and p90 ms. The client is the raw TF Serving PredictionService stub; each request is
   built (`serving.tensors`) before the timing starts, so a time is Predict's round trip and reading the
   answer. Both signatures must give the same answer on every clip (checked every round).
2. The recogniser's real-time factor on this CPU: processing seconds / audio seconds, per 5 s clip (p50
   over the clips), served and in-process. Its 5 s clips are spoken_sentences test clips concatenated back
   to back, no silence added (each test clip is one whole sentence, 0.6-4 s, with its own 0.05-0.3 s of room
   noise before and after it, which make the pauses): a test clip and the next one or two unused ones (in the
   split's order) that bring it to 4.95-5 s, then zero-padded at the end to exactly 5 s (the last <= 50 ms
   are padding, which the recogniser skips: a clip ends at its last nonzero sample). Its reference text is its
   sentences' texts joined; the WER and CER of the served transcripts of these clips are reported beside the
   run's own test WER and the WER of the same sentences sent one by one (the recogniser trained on single
   sentences of at most 4 s).
3. Where a served call's time goes, in-process, in a child process under the server's thread setting that
   loads the exported SavedModels twice: as the server runs them (a Session over the `serve` MetaGraph,
   one callable per signature, as TF Serving's Session::Run: serving/servables.py) and as
   `tf.saved_model.load(...).signatures[...]` (TensorFlow 2's way). In each: the whole `audio_bytes` and
   `serving_default` signatures on the same clips, against the exported decode (`audio_codec.decode_batch`
   and the signature's cut or padding, on the WAV bytes), the decode followed by the model's own
   `LogMelSpectrogram` (its config from the run's model.keras), the log-mel alone on the samples, and an
   empty call (the bytes in and out: a call's own cost), each a tf.function (in the Session, called from
   placeholders of its graph). Reported: decode + features ms / whole `audio_bytes` call ms, the in-process
   whole call / the served p50, and the rest (served p50 - in-process call: gRPC, the request and the
   server).

The machine is shared, so every round runs every model x every signature x every in-process piece back to
back, the order reversed every other round; the load average is recorded at the start of each round and of
each model within it; medians are over the rounds' per-clip p50s, ratios are medians of per-round ratios
(range in brackets).

    .venv/bin/python benchmarks/bench_speech.py [--models speech_cnn,ds_cnn,ctc_recognizer] [--run NAME=DIR ...]
        [--rounds 5] [--clips 40] [--long-clips 12] [--tf-threads 0,0] [--out benchmarks/RESULTS-speech.md]
    .venv/bin/python benchmarks/bench_speech.py --report /tmp/benchspeech/speech.json  # rewrite the markdown

Without --run for a model it trains one first (`TRAIN`: about 1, 1 and 2 minutes here). Scratch (runs, exports,
clips, JSON) goes to /tmp/benchspeech.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import pathlib
import shutil
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from bench_seq2seq import _ms, _timed, machine  # noqa: E402  (the same timing helpers and machine line)
from bench_serving import Server, set_tf_threads  # noqa: E402  (zoo-model-server in its own process)
from child_process import ChildProcess  # noqa: E402  (the in-process child's process)

SCRATCH = pathlib.Path("/tmp/benchspeech")
RESULTS = HERE / "RESULTS-speech.md"
CLASSIFIERS = ("speech_cnn", "ds_cnn")
RECOGNIZER = "ctc_recognizer"
MODELS = CLASSIFIERS + (RECOGNIZER,)
DATASET = {"speech_cnn": "spoken_commands", "ds_cnn": "spoken_commands", RECOGNIZER: "spoken_sentences"}
# What each signature answers, compared across signatures and with the in-process calls.
ANSWER = {"speech_cnn": "label", "ds_cnn": "label", RECOGNIZER: "text"}
# The training recipes (zoo.train keyword arguments): short, but real trained models, as the learning tests
# train them (tests/test_audio_classification.py, tests/test_speech_to_text.py).
TRAIN = {
    "speech_cnn": dict(epochs=12, batch_size=32, learning_rate=3e-3, lr_schedule="cosine"),
    "ds_cnn": dict(epochs=8, batch_size=32, learning_rate=3e-3, lr_schedule="cosine"),
    RECOGNIZER: dict(epochs=12, batch_size=32, learning_rate=2e-3, mixed_precision="off"),
}
SIGNATURES = ("audio_bytes", "serving_default")
# In-process: the whole signatures, the exported preprocessing as tf.functions, and a tf.function that does
# nothing (identity on the WAV bytes): what calling a function and fetching its output costs by itself.
PIECES = ("audio_bytes", "serving_default", "decode", "decode_features", "features", "empty")
RUNTIMES = ("session", "function")  # in-process: as the server runs a SavedModel, and tf.saved_model.load's way
LONG_SECONDS = 5.0  # the recogniser's clips
PAD_SECONDS = 0.05  # at most this much of a 5 s clip is padding (zeros at the end)
WARMUP_CLIPS = 3


def _call(name: str, recipe: dict) -> str:
    """A TRAIN recipe as the zoo.train call it makes."""
    def fmt(v):
        if isinstance(v, dict):
            return "dict(" + ", ".join(f"{k}={fmt(x)}" for k, x in v.items()) + ")"
        return f'"{v}"' if isinstance(v, str) else repr(v)

    return f'zoo.train("{name}", "{DATASET[name]}", ' + ", ".join(f"{k}={fmt(v)}" for k, v in recipe.items()) + ")"


# --- models ----------------------------------------------------------------------
def ensure_run(name: str, run: str | None) -> tuple[pathlib.Path, dict]:
    """The run to measure for `name`: `run` if given (it must hold model.keras), else one trained now."""
    import zoo

    if run:
        run_dir = pathlib.Path(run)
        if not (run_dir / "model.keras").exists():
            raise SystemExit(f"{run_dir} has no model.keras: not a finished run.")
        model = json.loads((run_dir / "config.json").read_text()).get("model")
        if model != name:
            raise SystemExit(f"{run_dir} is a run of {model!r}, not {name}.")
        return run_dir, {"trained": False}
    start = time.perf_counter()
    run_dir = pathlib.Path(zoo.train(name, DATASET[name], out_dir=SCRATCH / f"run-{name}", overwrite=True, verbose=0,
                                     **TRAIN[name]))
    return run_dir, {"trained": True, "train_s": time.perf_counter() - start, "recipe": _call(name, TRAIN[name])}


# --- clips -----------------------------------------------------------------------
def command_clips(count: int) -> tuple[np.ndarray, list[str]]:
    """`count` spoken_commands test clips [count, 16000] (as 16-bit PCM holds them) and their words."""
    from zoo.data import registry as datasets
    from zoo.tasks import audio_codec

    ds = datasets.get_dataset("spoken_commands")
    names = ds.info().label_names
    pairs = list(ds.examples("test").take(count).as_numpy_iterator())
    return audio_codec.as_pcm16(np.stack([x for x, _ in pairs])), [names[int(y)] for _, y in pairs]


def long_clips(count: int, seconds: float = LONG_SECONDS) -> tuple[np.ndarray, list[str], list[list[int]]]:
    """`count` clips of exactly `seconds`: spoken_sentences test clips back to back (module docstring), their
    reference texts, and the test clips each is made of (indices)."""
    from zoo.data import registry as datasets
    from zoo.tasks import audio_codec

    length = int(seconds * audio_codec.SAMPLE_RATE)
    shortest = length - int(PAD_SECONDS * audio_codec.SAMPLE_RATE)
    split = [(x.astype(np.float32), t.decode("utf-8"))
             for x, t in datasets.get_dataset("spoken_sentences").examples("test").as_numpy_iterator()]
    used, made = set(), []
    for i in range(len(split)):
        if len(made) == count:
            break
        if i in used:
            continue
        # The first unused clip after it (in the split's order), else the first pair, that fills the 5 s with it.
        rest = [j for j in range(i + 1, len(split)) if j not in used]
        for group in itertools.chain(((j,) for j in rest), itertools.combinations(rest, 2)):
            if shortest <= len(split[i][0]) + sum(len(split[j][0]) for j in group) <= length:
                made.append([i, *group])
                used.update(made[-1])
                break
    if len(made) < count:
        raise RuntimeError(f"spoken_sentences' test split makes only {len(made)} clips of {seconds:g} s")
    clips = [np.concatenate([split[j][0] for j in parts]) for parts in made]
    clips = [np.pad(c, (0, length - len(c))) for c in clips]  # the last <= PAD_SECONDS: padding
    return (audio_codec.as_pcm16(np.stack(clips)), [" ".join(split[j][1] for j in parts) for parts in made],
            made)


def sentence_clips(indices: list[int]) -> tuple[list[np.ndarray], list[str]]:
    """spoken_sentences test clips by index, each as 16-bit PCM holds it, and their texts."""
    from zoo.data import registry as datasets
    from zoo.tasks import audio_codec

    wanted = set(indices)
    split = {i: (audio_codec.as_pcm16(x), t.decode("utf-8")) for i, (x, t) in enumerate(
        datasets.get_dataset("spoken_sentences").examples("test").as_numpy_iterator()) if i in wanted}
    return [split[i][0] for i in indices], [split[i][1] for i in indices]


def save_clips(path: pathlib.Path, waveform: np.ndarray, answers: list[str]) -> None:
    np.savez(path, waveform=waveform, answers=np.array(answers))


def load_clips(path) -> tuple[np.ndarray, list[bytes]]:
    """(samples [N, S], WAV bytes [N]) of a clips file; the WAVs decode to exactly the samples."""
    from zoo.tasks import audio_codec

    with np.load(path) as npz:
        waveform = npz["waveform"]
    return waveform, [audio_codec.encode_wav(x) for x in waveform]


# --- the served client ----------------------------------------------------------------
def _request(name: str, signature: str, waveform: np.ndarray, wav: bytes):
    from tensorflow_serving.apis import predict_pb2

    from serving import tensors

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if signature == "audio_bytes":
        request.inputs["audio_bytes"].CopyFrom(tensors.from_ndarray(np.array([wav], dtype=object)))
    else:
        request.inputs["waveform"].CopyFrom(tensors.from_ndarray(waveform[None]))
    return request


class Served:
    """One gRPC channel; answers a prepared request with its model's answer (label or text)."""

    def __init__(self, port: int):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(f"localhost:{port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel).Predict

    def answer(self, request) -> str:
        from serving import tensors

        response = self.predict(request, timeout=60)
        key = ANSWER[request.model_spec.name]
        return tensors.to_ndarray(response.outputs[key], key, max_bytes=None)[0].decode("utf-8")

    def close(self):
        self.channel.close()


# --- in-process --------------------------------------------------------------------
def _fetched(value) -> None:
    """A piece's output, fetched (the caller has it as numpy) and dropped: only whole signatures answer."""
    del value
class Pieces:
    """One exported model's signatures and the exported preprocessing, each a call on one clip, in two runtimes.

    "function": the SavedModel loaded with `tf.saved_model.load` and its signatures called (TensorFlow 2's way),
    the preprocessing as tf.functions. "session": as zoo-model-server (and TF Serving) runs a model: a
    Session over the `serve` MetaGraph, one callable per signature fed by tensor name; the preprocessing's
    tf.functions called from placeholders in the same graph, also through callables.
    """

    def __init__(self, name: str, version_dir: str, run_dir: str, session_config):
        import tensorflow as tf

        from zoo.models.preprocessing import LogMelSpectrogram
        from zoo.tasks import audio_classification, audio_codec, speech_to_text
        from zoo.training import load_run

        key = ANSWER[name]
        log_mel = LogMelSpectrogram.from_config(load_run(run_dir)[0].get_layer("log_mel").get_config())
        if name == RECOGNIZER:
            # As speech_to_text's audio_bytes: the batch padded to its longest clip (default max_seconds).
            max_samples = speech_to_text.MAX_SECONDS * audio_codec.SAMPLE_RATE

            def decode(data):
                return audio_codec.decode_batch(data, max_samples).to_tensor(0.0)
        else:
            # As audio_classification's audio_bytes: the first second, zero-padded.
            max_samples = audio_classification.MAX_SECONDS * audio_codec.SAMPLE_RATE

            def decode(data):
                clips = audio_codec.decode_batch(data, max_samples)
                return clips[:, :audio_codec.CLIP_SAMPLES].to_tensor(0.0, shape=[None, audio_codec.CLIP_SAMPLES])

        wav_spec, samples_spec = tf.TensorSpec([None], tf.string), tf.TensorSpec([None, None], tf.float32)
        functions = {
            "decode": (tf.function(decode, input_signature=[wav_spec]), "wav"),
            "decode_features": (tf.function(lambda data: log_mel(decode(data)), input_signature=[wav_spec]), "wav"),
            "features": (tf.function(log_mel.call, input_signature=[samples_spec]), "samples"),
            "empty": (tf.function(tf.identity, input_signature=[wav_spec]), "wav"),
        }

        def feed(kind, waveform, wav):
            return np.array([wav], dtype=object) if kind == "wav" else waveform[None]

        # TensorFlow 2: the loaded signatures and the tf.functions, called eagerly.
        self._loaded = loaded = tf.saved_model.load(version_dir)  # its signatures need it alive
        function = {
            "audio_bytes": lambda x, w: loaded.signatures["audio_bytes"](audio_bytes=tf.constant([w]))[key]
            .numpy()[0].decode("utf-8"),
            "serving_default": lambda x, w: loaded.signatures["serving_default"](waveform=tf.constant(x[None]))[key]
            .numpy()[0].decode("utf-8"),
        }
        for piece, (fn, kind) in functions.items():
            function[piece] = lambda x, w, fn=fn, kind=kind: _fetched(fn(tf.constant(feed(kind, x, w))).numpy())
        # The server's way: a Session, callables fed by tensor name.
        graph = tf.Graph()
        self._session = session = tf.compat.v1.Session(graph=graph, config=session_config)
        session_calls = {}
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], version_dir)
            for signature, alias in (("audio_bytes", "audio_bytes"), ("serving_default", "waveform")):
                sig = meta.signature_def[signature]
                run = session.make_callable(graph.get_tensor_by_name(sig.outputs[key].name),
                                            [graph.get_tensor_by_name(sig.inputs[alias].name)])
                kind = "wav" if alias == "audio_bytes" else "samples"
                session_calls[signature] = lambda x, w, run=run, kind=kind: run(feed(kind, x, w))[0].decode("utf-8")
            for piece, (fn, kind) in functions.items():
                placeholder = tf.compat.v1.placeholder(tf.string if kind == "wav" else tf.float32,
                                                       [None] if kind == "wav" else [None, None])
                run = session.make_callable(fn(placeholder), [placeholder])
                session_calls[piece] = lambda x, w, run=run, kind=kind: _fetched(run(feed(kind, x, w)))
        self.calls = {"function": function, "session": session_calls}

    def run(self, runtime: str, piece: str, waveform: np.ndarray, wav: bytes):
        """`piece` on one clip: the answer of a whole signature, else None (the piece's output fetched)."""
        return self.calls[runtime][piece](waveform, wav)


def in_process_child(spec_file: str) -> None:
    """Measure in-process cells until stdin closes: one JSON line in ({"model", "reverse"}), one out."""
    import tensorflow as tf

    import zoo.models  # noqa: F401  (registers the custom layers a run's model.keras names)

    spec = json.loads(pathlib.Path(spec_file).read_text())
    set_tf_threads(spec["tf_threads"])
    # As the server configures its Sessions (serving.servables): the eager context's thread counts.
    session_config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_parallelism_threads=tf.config.threading.get_inter_op_parallelism_threads(),
        allow_soft_placement=True)
    models, clips = {}, {}
    for name, m in spec["models"].items():
        models[name] = Pieces(name, m["version_dir"], m["run_dir"], session_config)
        clips[name] = load_clips(m["clips"])
        warm_x, warm_wav = load_clips(m["warm"])
        for runtime in RUNTIMES:
            for piece in PIECES:
                for x, w in zip(warm_x, warm_wav):
                    models[name].run(runtime, piece, x, w)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        name = request["model"]
        waveform, wavs = clips[name]
        result = {}
        try:
            flip = request["reverse"]
            for runtime in RUNTIMES[::-1] if flip else RUNTIMES:
                cells = result[runtime] = {}
                for piece in PIECES[::-1] if flip else PIECES:
                    answers, seconds = _timed(lambda i: models[name].run(runtime, piece, waveform[i], wavs[i]),
                                              range(len(wavs)))
                    cells[piece] = _ms(seconds)
                    if piece in SIGNATURES:
                        cells[piece]["answers"] = answers
        except Exception as e:  # the parent stops the run with it
            result = {"error": f"{type(e).__name__}: {e}"[:1000]}
        print(json.dumps(result), flush=True)


# --- measuring ---------------------------------------------------------------------
def _check_same(what: str, got: list[str], expected: list[str]) -> None:
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    if wrong or len(got) != len(expected):
        i = wrong[0] if wrong else 0
        raise AssertionError(f"{what}: {len(wrong)} of {len(expected)} answers differ from the served "
                             f"serving_default's (first, clip {i}: {got[i]!r} vs {expected[i]!r})")


def measure_round(r: int, models: list[str], client: Served, requests: dict, child: ChildProcess,
                  expected: dict) -> dict:
    """One round: every model x every signature served, then its in-process pieces, the order alternating
    with the round, so a model's served and in-process cells are measured seconds apart."""

    def order(xs):
        return list(xs) if r % 2 == 0 else list(xs)[::-1]

    rnd = {"load": os.getloadavg()[0], "models": {}}
    for name in order(models):
        cell = rnd["models"][name] = {"load": os.getloadavg()[0], "served": {}}
        for signature in order(SIGNATURES):
            answers, seconds = _timed(client.answer, requests[name][signature])
            _check_same(f"{name}: served {signature}", answers, expected[name])
            cell["served"][signature] = _ms(seconds)
        cell["in_process"] = child.ask({"model": name, "reverse": r % 2 == 1})
        for runtime in RUNTIMES:
            for signature in SIGNATURES:
                _check_same(f"{name}: in-process ({runtime}) {signature}",
                            cell["in_process"][runtime][signature].pop("answers"), expected[name])
    return rnd


# --- report ------------------------------------------------------------------------
def _median(rounds: list, *path) -> float:
    values = []
    for r in rounds:
        v = r
        for key in path:
            v = v[key]
        values.append(v)
    return statistics.median(values)


def _per_round(rounds: list, fn) -> list[float]:
    return [fn(r) for r in rounds]


def _ratio(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _p50(cell: dict, runtime: str, piece: str) -> float:
    return cell["in_process"][runtime][piece]["p50"]


def _share(cell: dict, runtime: str = "session") -> float:
    """decode + log-mel / the whole audio_bytes call, in-process."""
    return _p50(cell, runtime, "decode_features") / _p50(cell, runtime, "audio_bytes")


def _net_share(cell: dict, runtime: str = "session") -> float:
    """The share with one call's own cost (the empty call's) taken off both sides."""
    empty = _p50(cell, runtime, "empty")
    return (_p50(cell, runtime, "decode_features") - empty) / (_p50(cell, runtime, "audio_bytes") - empty)


def _in_vs_served(cell: dict, runtime: str = "session", signature: str = "audio_bytes") -> float:
    return _p50(cell, runtime, signature) / cell["served"][signature]["p50"]


def views(res: dict) -> dict:
    """Per model: its cells of every round."""
    return {name: [r["models"][name] for r in res["rounds"]] for name in res["models"]}


def _model_line(name: str, info: dict) -> str:
    m = info.get("metrics", {})
    if name == RECOGNIZER:
        quality = (f"test WER {m['wer']:.3f}, CER {m['cer']:.3f}, sentence accuracy {m['sentence_accuracy']:.3f}"
                   if "wer" in m else "no test metrics")
    else:
        quality = f"test accuracy {m['accuracy']:.3f}" if "accuracy" in m else "no test metrics"
    how = (f"trained by this run in {info['train_s']:.0f} s: `{info['recipe']}`" if info.get("trained")
           else f"the given run {info['dir']} ({', '.join(f'{k} {v}' for k, v in info['config'].items() if v)})")
    return (f"- `{name}` ({info['params']:,} parameters; {DATASET[name]}): {how}; {quality} (metrics.json, the "
            f"test split's voices unheard in training); exported in {info['export_s']:.0f} s with its verification.")


def report(res: dict) -> str:
    from zoo.data.speech import MAX_SENTENCE_SECONDS

    models, v = res["models"], views(res)
    rounds = len(res["rounds"])
    mc = res["machine"]
    loads = " / ".join(f"{r['load']:.2f}" for r in res["rounds"])
    lines = [
        "# Speech benchmark: served latency of the audio models, the recogniser's real-time factor, and the "
        "share of a call spent on WAV decoding and log-mel features",
        "",
        f"`{res['command']}`, run {res['date']}, took {res['seconds'] / 60:.1f} min.",
        "",
        f"Machine: {mc['cpu']}, {mc['cores']} CPU cores, shared with other jobs; Python {mc['python']}, "
        f"TensorFlow {mc['tf']}, Keras {mc['keras']}. Load average (1 min) at the start of each round: {loads} "
        f"({mc['cores']} cores: above {mc['cores']} means other jobs were waiting for a core).",
        "",
        "Models (each exported with `export.export_saved_model(run, base, name)` into one base path and served "
        f"by one `zoo-model-server`, gRPC, no batching, TensorFlow threads {res['tf_threads']} "
        "(intra-op, inter-op; 0 = TensorFlow's default); the in-process child runs with the same setting):",
        "",
        *[_model_line(name, res["runs"][name]) for name in models],
        "",
    ]
    if any(n in CLASSIFIERS for n in models):
        c = res["clips"]["commands"]
        lines += [f"Classifier clips: {c['n']} spoken_commands test clips (1 s each; the split's first "
                  f"{WARMUP_CLIPS} only warm up), as 16-bit PCM holds them (served, the classifiers named the word of "
                  + ", ".join(f"{k} {n} of {c['n']}" for k, n in c["correct"].items())
                  + f"); `audio_bytes` gets each as a 16 kHz 16-bit mono WAV file ({c['wav_bytes']:,} bytes, a "
                  f"request of {c['request_bytes']['audio_bytes']:,} bytes), `serving_default` as float32 [1, 16000] "
                  f"({c['request_bytes']['serving_default']:,} bytes).", ""]
    if RECOGNIZER in models:
        c = res["clips"]["sentences"]
        lines += [f"Recogniser clips: {c['n']} clips of exactly {LONG_SECONDS:g} s (after {WARMUP_CLIPS} more, made "
                  f"first, that only warm up), each {c['sentences_per_clip']} spoken_sentences test clips (whole "
                  f"sentences, each with its own room noise before and after it) concatenated back to back, no "
                  f"silence added, "
                  f"{c['sound_s'][0]:.2f}-{c['sound_s'][1]:.2f} s in all, then zero-padded at the end to "
                  f"{LONG_SECONDS:g} s (median {c['sentences']:g} sentences, {c['words']:g} words a clip). Requests: "
                  f"WAV {c['request_bytes']['audio_bytes']:,} bytes, float32 samples "
                  f"{c['request_bytes']['serving_default']:,} bytes. The served greedy transcripts of these clips: "
                  f"WER {c['wer']:.3f}, CER {c['cer']:.3f} against their sentences' texts joined; the same "
                  f"{c['sentences_total']} sentences sent one by one: WER {c['wer_alone']:.3f}, CER "
                  f"{c['cer_alone']:.3f} (the recogniser trained on single sentences of at most "
                  f"{MAX_SENTENCE_SECONDS:g} s; latency does not depend on what it hears).", ""]
    lines += [f"Every round runs every model x both signatures (served) x every in-process piece back to back, the "
              f"order reversed every other round; `audio_bytes` and `serving_default` answered the same on every "
              f"clip, served and in-process, every round (checked). Medians over {rounds} rounds of each round's "
              f"p50 (p90) over the clips; ratios: medians of per-round ratios (range).", ""]

    # The figures.
    lines += ["## Served latency, gRPC, one clip per request, c=1", "",
              "| model | clip | signature | p50 ms | p90 ms | real-time factor (p50 / clip length) |",
              "|---|---|---|---:|---:|---:|"]
    for name in models:
        seconds = LONG_SECONDS if name == RECOGNIZER else 1.0
        for s in SIGNATURES:
            p50, p90 = _median(v[name], "served", s, "p50"), _median(v[name], "served", s, "p90")
            lines.append(f"| {name} | {seconds:g} s | `{s}` | {p50:.2f} | {p90:.2f} | {p50 / 1e3 / seconds:.4f} |")
    lines += ["", "## Where a call's time goes (in-process, the exported pieces, p50 ms per clip)", "",
              "Session: as the server runs a SavedModel (a Session over the `serve` MetaGraph, one callable per "
              "signature, the pieces from placeholders in the same graph); function: `tf.saved_model.load(...)"
              ".signatures[...]` and the pieces as tf.functions, called eagerly.", "",
              "| model | in-process | empty call | WAV decode | decode + log-mel | log-mel alone | whole "
              "`audio_bytes` | whole `serving_default` | **decode + log-mel / whole `audio_bytes`** | the same, net "
              "of the empty call | in-process / served `audio_bytes` p50 | served - in-process (gRPC, server) ms |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---:|"]
    for name in models:
        for runtime in RUNTIMES:
            med = {p: _median(v[name], "in_process", runtime, p, "p50") for p in PIECES}
            rest = _median(v[name], "served", "audio_bytes", "p50") - med["audio_bytes"]
            lines.append(
                f"| {name} | {runtime} | {med['empty']:.2f} | {med['decode']:.2f} | {med['decode_features']:.2f} | "
                f"{med['features']:.2f} | {med['audio_bytes']:.2f} | {med['serving_default']:.2f} | "
                f"**{_ratio(_per_round(v[name], lambda c: _share(c, runtime)), '{:.0%}')}** | "
                f"{_ratio(_per_round(v[name], lambda c: _net_share(c, runtime)), '{:.0%}')} | "
                f"{_ratio(_per_round(v[name], lambda c: _in_vs_served(c, runtime)), '{:.0%}')} | {rest:.2f} |")
    lines += ["", "Each piece is called on one clip, its input fed and its output fetched, as the whole signatures "
              "are. WAV decode: `audio_codec.decode_batch` and the signature's cut to 1 s (classifiers) or "
              "padding (recogniser) on the WAV bytes; decode + log-mel: the same followed by the model's "
              "`LogMelSpectrogram` (its config from model.keras); log-mel alone: on the samples; the empty call: "
              "the WAV bytes in and out (a call's own cost, which each piece pays once, and the whole call once for "
              "all of it: the net share takes it off both sides). served - in-process: what gRPC, the request's "
              "bytes and the server add to the same signature call.", ""]
    if RECOGNIZER in models:
        lines += ["## The recogniser's real-time factor", "",
                  f"Processing seconds / audio seconds, per {LONG_SECONDS:g} s clip (p50 and p90 over the clips, "
                  "median over rounds); below 1 is faster than real time.", "",
                  "| where | signature | p50 ms / clip | p90 ms | RTF p50 | RTF p90 | audio seconds per second |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for where, path in (("served (gRPC)", ("served",)),
                            *((f"in-process, {rt}", ("in_process", rt)) for rt in RUNTIMES)):
            for sig in SIGNATURES:
                p50 = _median(v[RECOGNIZER], *path, sig, "p50")
                p90 = _median(v[RECOGNIZER], *path, sig, "p90")
                lines.append(f"| {where} | `{sig}` | {p50:.1f} | {p90:.1f} | {p50 / 1e3 / LONG_SECONDS:.4f} | "
                             f"{p90 / 1e3 / LONG_SECONDS:.4f} | {LONG_SECONDS * 1e3 / p50:.0f} |")
        lines.append("")

    # Per round.
    lines += ["## Per round", "",
              "Load: the 1-minute load average when the model's part of the round began. Served: p50 ms over the "
              "clips (p90). In-process, per runtime: p50 ms of whole `audio_bytes` / whole `serving_default` / "
              "decode / decode + log-mel / log-mel / empty call; share: decode + log-mel / whole `audio_bytes`.",
              "", "| round | model | load | served `audio_bytes` | served `serving_default` | "
              + " | ".join(f"{rt} | {rt} share" for rt in RUNTIMES) + " |",
              "|---:|---|---:|---:|---:|" + "---|---:|" * len(RUNTIMES)]
    for i, r in enumerate(res["rounds"]):
        for name in models:
            c = r["models"][name]
            sv = c["served"]
            lines.append(
                f"| {i + 1} | {name} | {c['load']:.2f} | {sv['audio_bytes']['p50']:.2f} "
                f"({sv['audio_bytes']['p90']:.2f}) | {sv['serving_default']['p50']:.2f} "
                f"({sv['serving_default']['p90']:.2f}) | "
                + " | ".join(" / ".join(f"{_p50(c, rt, piece):.2f}" for piece in PIECES) + f" | {_share(c, rt):.0%}"
                             for rt in RUNTIMES) + " |")
    lines += ["", "## What this shows", "", what_this_shows(res), ""]
    return "\n".join(lines)


def what_this_shows(res: dict) -> str:
    models, v = res["models"], views(res)

    def served(name, sig="audio_bytes"):
        return _median(v[name], "served", sig, "p50")

    def inproc(name, piece, runtime="session"):
        return _median(v[name], "in_process", runtime, piece, "p50")

    def per_round(name, fn):
        return statistics.median(_per_round(v[name], fn))

    parts = []
    classifiers = [n for n in models if n in CLASSIFIERS]
    if classifiers:
        parts.append(
            "A served 1 s command costs " + ", ".join(
                f"{n} {served(n):.1f} ms as WAV bytes and {served(n, 'serving_default'):.1f} ms as samples"
                for n in classifiers) + " (p50, gRPC, c=1).")
    parts.append(
        "Decoding the WAV and computing the log-mel in the graph is " + ", ".join(
            f"{per_round(n, _share):.0%} of {n}'s `audio_bytes` call as the server runs it "
            f"({inproc(n, 'decode_features'):.2f} of {inproc(n, 'audio_bytes'):.2f} ms in-process; "
            f"{per_round(n, _net_share):.0%} net of a call's own {inproc(n, 'empty'):.2f} ms)" for n in models)
        + ", and of the served p50 " + ", ".join(
            f"{n} {inproc(n, 'decode_features') / served(n):.0%}" for n in models) + ".")
    parts.append(
        "Sending the WAV file rather than float32 samples halves the request but costs more: served " + ", ".join(
            f"{n} {served(n) - served(n, 'serving_default'):+.2f} ms" for n in models)
        + ", in-process " + ", ".join(
            f"{inproc(n, 'audio_bytes') - inproc(n, 'serving_default'):+.2f} ms" for n in models)
        + ": the in-graph decode (`decode_batch`: a tf.map_fn over the files, each `tf.audio.decode_wav` with its "
          "rate and length checks, then the ragged batch cut or padded) takes " + ", ".join(
            f"{inproc(n, 'decode'):.2f} ms" for n in models)
        + " a clip, more than the halved request saves.")
    parts.append(
        "Run as the server runs it, the whole call in-process is " + ", ".join(
            f"{per_round(n, _in_vs_served):.0%} of {n}'s served p50" for n in models)
        + "; the rest (" + ", ".join(f"{served(n) - inproc(n, 'audio_bytes'):.2f} ms" for n in models)
        + ") is gRPC, the request's bytes and the server's own Python. Through `tf.saved_model.load`'s "
          "signatures instead, the same call costs " + ", ".join(
            f"{inproc(n, 'audio_bytes', 'function') / inproc(n, 'audio_bytes'):.2f}x" for n in models)
        + " the Session's.")
    if RECOGNIZER in models:
        rtf = served(RECOGNIZER) / 1e3 / LONG_SECONDS
        rtf_in = inproc(RECOGNIZER, "audio_bytes") / 1e3 / LONG_SECONDS
        rtf_fn = inproc(RECOGNIZER, "audio_bytes", "function") / 1e3 / LONG_SECONDS
        parts.append(
            f"The recogniser transcribes a {LONG_SECONDS:g} s clip in {served(RECOGNIZER):.0f} ms served (real-time "
            f"factor {rtf:.4f}: {1 / rtf:.0f} s of audio per second on this loaded CPU, one clip at a time), "
            f"{inproc(RECOGNIZER, 'audio_bytes'):.0f} ms in-process in a Session (RTF {rtf_in:.4f}) and "
            f"{inproc(RECOGNIZER, 'audio_bytes', 'function'):.0f} ms through `tf.saved_model.load` (RTF {rtf_fn:.4f}); "
            f"its decode and log-mel are {per_round(RECOGNIZER, _share):.0%} of that: the convolutions and the "
            "bidirectional GRU over the clip's frames are the rest.")
        from zoo.data.speech import MAX_SENTENCE_SECONDS

        c, test = res["clips"]["sentences"], res["runs"][RECOGNIZER].get("metrics", {})
        parts.append(
            f"What it hears on these clips is another matter: WER {c['wer']:.3f} on the joined sentences against "
            f"{c['wer_alone']:.3f} on the same sentences one by one (its test WER "
            f"{test.get('wer', float('nan')):.3f}): it trained on single sentences of at most "
            f"{MAX_SENTENCE_SECONDS:g} s, and a longer clip of several rooms and voices is outside what it learned; "
            "the latency does not depend on it.")
    return " ".join(parts)


# --- main --------------------------------------------------------------------------
def _runs(values: list[str], models: list[str]) -> dict:
    runs = {}
    for value in values or []:
        name, sep, run = value.partition("=")
        if not sep or name not in models:
            raise SystemExit(f"--run {value}: give it as NAME=DIR, NAME one of --models {','.join(models)}")
        runs[name] = run
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help="models to measure, comma-separated (default: "
                                                               "%(default)s)")
    ap.add_argument("--run", action="append", metavar="NAME=DIR", help="an existing run of model NAME "
                                                                      "(repeatable; else one is trained)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--clips", type=int, default=40, help="1 s command clips measured per round")
    ap.add_argument("--long-clips", type=int, default=12, help=f"{LONG_SECONDS:g} s recogniser clips per round")
    ap.add_argument("--tf-threads", default="0,0", help="the server's and the in-process child's TensorFlow "
                                                        "threads, intra-op,inter-op (0: default; %(default)s)")
    ap.add_argument("--out", default=str(RESULTS), help="results markdown (default: %(default)s)")
    ap.add_argument("--report", metavar="JSON", help="only rewrite --out from a run's speech.json")
    ap.add_argument("--child", nargs=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return in_process_child(*args.child)
    if args.report:
        pathlib.Path(args.out).write_text(report(json.loads(pathlib.Path(args.report).read_text())))
        return print(f"written: {args.out}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or len(set(models)) != len(models) or any(m not in MODELS for m in models):
        raise SystemExit(f"--models {args.models}: give distinct models of {', '.join(MODELS)}")
    runs = _runs(args.run, models)

    import jiwer

    import export
    import zoo.models  # noqa: F401  (registers the custom layers a run's model.keras names)
    from zoo.tasks import audio_codec
    from zoo.training import load_run

    started = time.perf_counter()
    command = ".venv/bin/python benchmarks/bench_speech.py" + (
        "" if models == list(MODELS) else f" --models {','.join(models)}") + "".join(
        f" --run {n}={runs[n]}" for n in models if n in runs) + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}" for k, d in (
            ("rounds", 5), ("clips", 40), ("long_clips", 12), ("tf_threads", "0,0")) if getattr(args, k) != d) + (
        "" if pathlib.Path(args.out).resolve() == RESULTS else f" --out {args.out}")
    SCRATCH.mkdir(parents=True, exist_ok=True)

    # The clips, saved for the child; the first WARMUP_CLIPS of each set only warm up.
    clips, made = {}, []
    if any(n in CLASSIFIERS for n in models):
        clips["commands"] = command_clips(args.clips + WARMUP_CLIPS)
    if RECOGNIZER in models:
        x, texts, made = long_clips(args.long_clips + WARMUP_CLIPS)
        clips["sentences"], made = (x, texts), made[WARMUP_CLIPS:]
    files = {}
    for kind, (x, answers) in clips.items():
        files[kind] = {"clips": str(SCRATCH / f"{kind}.npz"), "warm": str(SCRATCH / f"{kind}-warm.npz")}
        save_clips(pathlib.Path(files[kind]["warm"]), x[:WARMUP_CLIPS], answers[:WARMUP_CLIPS])
        save_clips(pathlib.Path(files[kind]["clips"]), x[WARMUP_CLIPS:], answers[WARMUP_CLIPS:])

    base = SCRATCH / "models"
    shutil.rmtree(base, ignore_errors=True)
    infos, version_dirs = {}, {}
    for name in models:
        print(f"{name}: {'training' if name not in runs else 'run ' + runs[name]} (load {os.getloadavg()[0]:.2f})",
              flush=True)
        run_dir, info = ensure_run(name, runs.get(name))
        config = json.loads((run_dir / "config.json").read_text())
        info.update(dir=str(run_dir), config={k: config.get(k) for k in ("epochs", "batch_size", "learning_rate",
                                                                         "lr_schedule", "model_kwargs")})
        if (run_dir / "metrics.json").exists():
            info["metrics"] = json.loads((run_dir / "metrics.json").read_text())
        print(f"{name}: run {run_dir} ({info.get('metrics')}); exporting (load {os.getloadavg()[0]:.2f})", flush=True)
        start = time.perf_counter()
        version_dirs[name] = pathlib.Path(export.export_saved_model(run_dir, base, name))
        info.update(export_s=time.perf_counter() - start, params=load_run(run_dir)[0].count_params())
        infos[name] = info
    config_file = base / "models.config"

    kind_of = {n: "sentences" if n == RECOGNIZER else "commands" for n in models}
    loaded = {kind: load_clips(files[kind]["clips"]) for kind in files}
    clip_info = {}
    requests = {n: {s: [_request(n, s, x, w) for x, w in zip(*loaded[kind_of[n]])] for s in SIGNATURES}
                for n in models}
    for kind, (x, wavs) in loaded.items():
        clip_info[kind] = {"n": len(wavs), "wav_bytes": len(wavs[0]), "request_bytes": {
            s: requests[next(n for n in models if kind_of[n] == kind)][s][0].ByteSize() for s in SIGNATURES}}

    server = client = child = None
    try:
        server = Server(config_file, rest=False, tf_threads=args.tf_threads)
        for name in models:
            for s in SIGNATURES:
                server.predict_once(requests[name][s][0])  # waits until the model is loaded
        client = Served(server.port)
        # The reference answers: the served serving_default's, once; then every path warmed up.
        expected = {n: [client.answer(q) for q in requests[n]["serving_default"]] for n in models}
        warm = {kind: load_clips(files[kind]["warm"]) for kind in files}
        for name in models:
            for s in SIGNATURES:
                for x, w in zip(*warm[kind_of[name]]):
                    client.answer(_request(name, s, x, w))
        if "commands" in clips:
            words = clips["commands"][1][WARMUP_CLIPS:]
            clip_info["commands"]["correct"] = {n: sum(a == w for a, w in zip(expected[n], words))
                                                for n in models if n in CLASSIFIERS}
        if "sentences" in clips:
            texts = clips["sentences"][1][WARMUP_CLIPS:]
            alone_x, alone_texts = sentence_clips([i for parts in made for i in parts])
            alone = [client.answer(_request(RECOGNIZER, "serving_default", x, b"")) for x in alone_x]
            sizes = sorted({len(parts) for parts in made})
            sound = [int(np.flatnonzero(x)[-1]) + 1 for x in loaded["sentences"][0]]
            clip_info["sentences"].update(
                wer=float(jiwer.wer(texts, expected[RECOGNIZER])), cer=float(jiwer.cer(texts, expected[RECOGNIZER])),
                wer_alone=float(jiwer.wer(alone_texts, alone)), cer_alone=float(jiwer.cer(alone_texts, alone)),
                sentences_total=len(alone_texts), words=float(statistics.median(len(t.split()) for t in texts)),
                sentences=float(statistics.median(len(parts) for parts in made)),
                sentences_per_clip=" or ".join(map(str, sizes)),
                sound_s=[min(sound) / audio_codec.SAMPLE_RATE, max(sound) / audio_codec.SAMPLE_RATE],
                references=texts, transcripts=expected[RECOGNIZER])
        spec = SCRATCH / "in_process.json"
        spec.write_text(json.dumps({"tf_threads": args.tf_threads, "models": {
            n: {"version_dir": str(version_dirs[n]), "run_dir": infos[n]["dir"], **files[kind_of[n]]}
            for n in models}}))
        child = ChildProcess(__file__, spec)
        child.ready()
        res = {"date": datetime.date.today().isoformat(), "command": command, "machine": machine(),
               "models": models, "runs": infos, "clips": clip_info, "tf_threads": args.tf_threads, "rounds": []}
        print(f"measuring (setup took {(time.perf_counter() - started) / 60:.1f} min)", flush=True)
        for r in range(args.rounds):
            rnd = measure_round(r, models, client, requests, child, expected)
            res["rounds"].append(rnd)
            for name in models:
                c = rnd["models"][name]
                print(f"round {r + 1} {name} (load {c['load']:.2f}): served p50 audio_bytes "
                      f"{c['served']['audio_bytes']['p50']:.2f} ms, serving_default "
                      f"{c['served']['serving_default']['p50']:.2f} ms; in-process " + "; ".join(
                          f"{rt}: " + ", ".join(f"{p} {_p50(c, rt, p):.2f}" for p in PIECES)
                          + f" ms, share {_share(c, rt):.0%}" for rt in RUNTIMES), flush=True)
    finally:
        if child is not None:
            child.stop()
        if client is not None:
            client.close()
        if server is not None:
            server.stop()
    res["seconds"] = time.perf_counter() - started
    (SCRATCH / "speech.json").write_text(json.dumps(res, indent=2, default=str))
    text = report(res)
    print(text)
    pathlib.Path(args.out).write_text(text)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
