"""Greedy and beam-search decoding of a seq2seq model, as graph code TF Serving can run.

keras-hub's `generate()` cannot be traced into a graph (keras-hub issue 1090) and its
cached decoding writes the cache with `keras.ops.slice_update`, which becomes
`XlaDynamicUpdateSlice` even with jit_compile=False; TF Serving runs with XLA off and
cannot load that op (serving issues 2214, 2217). So the decode here is a `tf.while_loop`
over the model's own layers, with the cache written by `tf.where` on a position mask:
every op is a core TensorFlow op.

The model is read by its layer names (`zoo.models.transformer_seq2seq`): the encoder
runs once, and so do the cross-attention's key and value projections of its output.
Each step embeds one token at its position and runs each keras-hub `TransformerDecoder`
block by block as the layer's own `call` does (its projections, norms and feed-forward
layers, its residual order), with the attention over the cached keys and values of
the earlier steps written out here: the layer's `call` would rebuild its masks and
cache on every step, which costs more ops per step than the step's arithmetic on
models of this size. A step is matrix products on [N, D] rows and element-wise ops:
no BatchMatMul, Softmax or Einsum, whose oneDNN kernels (what TensorFlow's x86 build
runs) cost 20-50 us per call on one row, several times the rest of a step
(`benchmarks/RESULTS-seq2seq.md`). The graph decode is checked token for token
against running the whole Keras model once per word (`tests/test_seq2seq.py`).

Ids: 0 pads, 2 is [START], 3 is [END] (`zoo.data.sequences`); after [END] a sequence
is padded with 0.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo.data.sequences import END, PAD, START

# Beam search keeps at most this many hypotheses per example; more costs memory and time
# for no gain on models of this size.
MAX_BEAM_SIZE = 8
# Ids a decoder never outputs: padding and [START] are never a next word (the labels
# never hold them), however a model's logits fall.
NEVER = (PAD, START)
LAYER_NAMES = ("source_mask", "source_embedding", "encoder_0", "target_embedding", "decoder_0", "logits")


def check_layers(model) -> None:
    """Raises ValueError unless `model` has the named layers the decoder reads."""
    names = {layer.name for layer in model.layers}
    missing = [n for n in LAYER_NAMES if n not in names]
    if missing:
        raise ValueError(f"A seq2seq model has the named layers {', '.join(LAYER_NAMES)} (and encoder_1.., "
                         f"decoder_1..), as zoo.models.transformer_seq2seq builds them; this one lacks "
                         f"{', '.join(missing)}.")


class CachedDecoder(tf.Module):
    """`encode` once, then `step` one token at a time with key/value caches."""

    def __init__(self, model: keras.Model, name=None):
        super().__init__(name=name)
        check_layers(model)
        self.model = model
        layer = model.get_layer
        self.source_mask, self.source_embedding = layer("source_mask"), layer("source_embedding")
        self.target_embedding, self.logits = layer("target_embedding"), layer("logits")
        names = {x.name for x in model.layers}
        self.encoders = [layer(f"encoder_{i}") for i in range(len(names)) if f"encoder_{i}" in names]
        self.decoders = [layer(f"decoder_{i}") for i in range(len(names)) if f"decoder_{i}" in names]
        self.target_length = int(layer("target_embedding").sequence_length)

    def encode(self, source_ids):
        """(encoder output [N, S, D], additive source mask [N, 1, S], cross-attention keys and
        values per decoder layer, each [N, heads, S, key_dim])."""
        mask = self.source_mask(source_ids)
        x = self.source_embedding(source_ids)
        for encoder in self.encoders:
            x = encoder(x, padding_mask=mask, training=False)
        # The encoder's keys and values, once: the cross-attention of every step reads them.
        cross = [(_heads_first(d._cross_attention_layer._key_dense(x)),
                  _heads_first(d._cross_attention_layer._value_dense(x))) for d in self.decoders]
        return x, _additive(mask[:, tf.newaxis], x.dtype), cross

    def empty_caches(self, batch):
        """Zero self-attention keys and values [N, heads, T, key_dim], one pair per decoder layer."""
        caches = []
        for d in self.decoders:
            attention = d._self_attention_layer
            shape = tf.stack([batch, attention.num_heads, self.target_length, attention.key_dim])
            caches.append((tf.zeros(shape, attention.compute_dtype), tf.zeros(shape, attention.compute_dtype)))
        return caches

    def weights(self):
        """The step's weights, read once before a decoding loop: per decoder layer, the
        attention projections as matrices (views of the kernels, not copies) with their
        biases; and the target embeddings."""
        layers = []
        for d in self.decoders:
            own, cross = d._self_attention_layer, d._cross_attention_layer
            layers.append({"query": _matrix(own._query_dense), "key": _matrix(own._key_dense),
                           "value": _matrix(own._value_dense), "own_output": _matrix(own._output_dense, output=True),
                           "cross_query": _matrix(cross._query_dense),
                           "cross_output": _matrix(cross._output_dense, output=True)})
        embedding = self.target_embedding
        dtype = embedding.compute_dtype
        return {"layers": layers,
                "tokens": tf.cast(embedding.token_embedding.embeddings, dtype),
                "positions": tf.cast(embedding.position_embedding.position_embeddings, dtype)}

    def step(self, tokens, index, caches, encoded, source_bias, cross, weights):
        """Logits [N, V] of the token after `tokens` [N] at position `index`, and the new caches.

        Each decoder layer runs as keras-hub's `TransformerDecoder.call` does (attention,
        residual, layer norm, before or after as the layer says; cross-attention; feed
        forward), on one position, with the layer's own weights and norms. The attention
        is written out on [N, D] rows with the projections as plain matrix products (the
        layer's `call` would rebuild its masks and cache, and its einsums reshape, on every
        step: more ops than the step's arithmetic on models of this size). `weights` is
        `self.weights()`, read once per decode.
        """
        x = tf.gather(weights["tokens"], tokens) + tf.gather(weights["positions"], index)
        length = self.target_length
        at_index = tf.reshape(tf.equal(tf.range(length), index), [1, 1, length, 1])
        seen = _additive(tf.reshape(tf.range(length) <= index, [1, 1, length]), x.dtype)
        new_caches = []
        for decoder, w, (keys, values), (cross_keys, cross_values) in zip(self.decoders, weights["layers"], caches,
                                                                           cross):
            def self_attention(h, decoder=decoder, w=w, keys=keys, values=values):
                attention = decoder._self_attention_layer
                heads = [-1, attention.num_heads, 1, attention.key_dim]
                keys = tf.where(at_index, tf.reshape(_project(h, w["key"]), heads), keys)
                values = tf.where(at_index, tf.reshape(_project(h, w["value"]), heads), values)
                new_caches.append((keys, values))
                return _attend(attention, _project(h, w["query"]), keys, values, seen, w["own_output"])

            def cross_attention(h, decoder=decoder, w=w, keys=cross_keys, values=cross_values):
                query = _project(h, w["cross_query"])
                return _attend(decoder._cross_attention_layer, query, keys, values, source_bias, w["cross_output"])

            def feed_forward(h, decoder=decoder):
                return decoder._feedforward_output_dense(decoder._feedforward_intermediate_dense(h))

            for block, norm in ((self_attention, decoder._self_attention_layer_norm),
                                (cross_attention, decoder._cross_attention_layer_norm),
                                (feed_forward, decoder._feedforward_layer_norm)):
                residual = x
                x = block(norm(x) if decoder.normalize_first else x) + residual
                if not decoder.normalize_first:
                    x = norm(x)
        logits = tf.cast(self.logits(x), tf.float32)
        never = tf.reduce_any(tf.equal(tf.range(tf.shape(logits)[-1])[:, tf.newaxis], NEVER), axis=1)
        return tf.where(never, -1e9, logits), new_caches


def _matrix(dense, output=False):
    """A MultiHeadAttention projection's kernel and bias as a matrix [inputs, outputs] and a vector,
    in its compute dtype: kernel [D, heads, key_dim] for a query, key or value projection,
    [heads, key_dim, D] for the `output` one."""
    kernel = dense.kernel
    shape = [-1, kernel.shape[-1]] if output else [kernel.shape[0], -1]
    return (tf.cast(tf.reshape(kernel, shape), dense.compute_dtype),
            tf.cast(tf.reshape(dense.bias, [-1]), dense.compute_dtype))


def _project(h, matrix):
    kernel, bias = matrix
    return tf.nn.bias_add(tf.matmul(h, kernel), bias)


def _heads_first(t):
    """[N, S, heads, key_dim] -> [N, heads, S, key_dim]."""
    return tf.transpose(t, [0, 2, 1, 3])


def _additive(allowed, dtype):
    """0 where attention is allowed, -1e9 where not: what Keras' masked softmax adds."""
    return tf.cast(tf.where(allowed, 0.0, -1e9), dtype)


def _attend(attention, query, keys, values, bias, output):
    """A Keras MultiHeadAttention's answer [N, D] for one projected query per row, `query`
    [N, heads * key_dim], over projected `keys` and `values` [N, heads, T, key_dim], with the
    additive mask `bias` [N or 1, 1, T] and the output projection `output` (matrix, bias).

    One query per head is a matrix-vector product, written as multiply and sum (two
    element-wise kernels) with the softmax spelled out: TensorFlow's oneDNN kernels for
    BatchMatMul and Softmax, which the x86 build picks, cost 20-50 us per call at these
    sizes, more than the rest of a step (`benchmarks/RESULTS-seq2seq.md`).
    """
    heads, key_dim, dtype = attention.num_heads, attention.key_dim, query.dtype
    # In float32 (under a mixed policy the sums would otherwise run in 16 bits); a no-op in an export.
    query, keys, values, bias = (tf.cast(t, tf.float32) for t in (query, keys, values, bias))
    query = tf.reshape(query, [-1, heads, 1, key_dim]) * (1.0 / float(key_dim) ** 0.5)
    scores = tf.reduce_sum(query * keys, axis=-1) + bias  # [N, heads, T]
    weights = tf.exp(scores - tf.reduce_max(scores, axis=-1, keepdims=True))
    weights = weights / tf.reduce_sum(weights, axis=-1, keepdims=True)
    context = tf.reduce_sum(weights[..., tf.newaxis] * values, axis=2)  # [N, heads, key_dim]
    return _project(tf.cast(tf.reshape(context, [-1, heads * key_dim]), dtype), output)


def greedy(decoder: CachedDecoder, source_ids, max_length):
    """Ids [N, T] of the most likely next word at each step, [END] included, 0 after it.

    Stops after `max_length` words (at most the model's target_length) or when every
    row has ended.
    """
    batch = tf.shape(source_ids)[0]
    length = decoder.target_length
    encoded, mask, cross = decoder.encode(source_ids)
    weights = decoder.weights()
    positions = tf.range(length)

    def body(t, tokens, output, done, caches):
        logits, caches = decoder.step(tokens, t, caches, encoded, mask, cross, weights)
        token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        token = tf.where(done, PAD, token)
        output = tf.where(tf.equal(positions, t)[tf.newaxis], token[:, tf.newaxis], output)
        return t + 1, token, output, done | tf.equal(token, END), caches

    def more(t, tokens, output, done, caches):
        return (t < max_length) & ~tf.reduce_all(done)

    start = (tf.constant(0), tf.fill([batch], START), tf.zeros([batch, length], tf.int32),
             tf.zeros([batch], tf.bool), decoder.empty_caches(batch))
    _, _, output, _, _ = tf.while_loop(more, body, start, maximum_iterations=length)
    return output


def beam_search(decoder: CachedDecoder, source_ids, beam_size, max_length):
    """(ids [N, K, T], scores [N, K]): the K best outputs by total log-probability, best first.

    A hypothesis that has produced [END] keeps its score and is padded with 0; beam
    size 1 is greedy decoding. Scores are sums of log-probabilities (no length
    penalty), the quantity greedy decoding maximises one step at a time.
    """
    batch = tf.shape(source_ids)[0]
    length = decoder.target_length
    k = beam_size
    encoded, mask, cross = decoder.encode(source_ids)
    # Every example's encoder output, mask and caches, once per beam: [N*K, ...].
    repeat = lambda t: tf.repeat(t, k, axis=0)  # noqa: E731
    encoded, mask, cross = repeat(encoded), repeat(mask), tf.nest.map_structure(repeat, cross)
    weights = decoder.weights()
    positions = tf.range(length)
    # Only the first beam is live at the start, so the first step does not pick K copies.
    scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], axis=0)[tf.newaxis], [batch, 1])

    def body(t, tokens, output, scores, done, caches):
        logits, caches = decoder.step(tokens, t, caches, encoded, mask, cross, weights)
        vocabulary = tf.shape(logits)[-1]
        log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch, k, vocabulary])
        # A finished hypothesis continues only with padding, at no cost.
        finished_row = tf.where(tf.equal(tf.range(vocabulary), PAD), 0.0, -1e9)
        log_probs = tf.where(done[..., tf.newaxis], finished_row[tf.newaxis, tf.newaxis], log_probs)
        total = tf.reshape(scores[..., tf.newaxis] + log_probs, [batch, k * vocabulary])
        scores, best = tf.math.top_k(total, k=k)
        beams, token = best // vocabulary, tf.cast(best % vocabulary, tf.int32)
        flat = tf.reshape(tf.range(batch)[:, tf.newaxis] * k + beams, [-1])
        caches = tf.nest.map_structure(lambda c: tf.gather(c, flat), caches)
        output = tf.reshape(tf.gather(tf.reshape(output, [batch * k, length]), flat), [batch, k, length])
        done = tf.reshape(tf.gather(tf.reshape(done, [-1]), flat), [batch, k])
        output = tf.where(tf.equal(positions, t)[tf.newaxis, tf.newaxis], token[..., tf.newaxis], output)
        done = done | tf.equal(token, END)
        return t + 1, tf.reshape(token, [-1]), output, scores, done, caches

    def more(t, tokens, output, scores, done, caches):
        return (t < max_length) & ~tf.reduce_all(done)

    start = (tf.constant(0), tf.fill([batch * k], START), tf.zeros([batch, k, length], tf.int32), scores,
             tf.zeros([batch, k], tf.bool), decoder.empty_caches(batch * k))
    _, _, output, scores, _, _ = tf.while_loop(more, body, start, maximum_iterations=length)
    return output, scores
