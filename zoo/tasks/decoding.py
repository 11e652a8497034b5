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
models of this size (`benchmarks/RESULTS-seq2seq.md`). The graph decode is checked
token for token against running the whole Keras model once per word
(`tests/test_seq2seq.py`).

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
        values per decoder layer, each [N, S, heads, key_dim])."""
        mask = self.source_mask(source_ids)
        x = self.source_embedding(source_ids)
        for encoder in self.encoders:
            x = encoder(x, padding_mask=mask, training=False)
        # The encoder's keys and values, once: the cross-attention of every step reads them.
        cross = [(d._cross_attention_layer._key_dense(x), d._cross_attention_layer._value_dense(x))
                 for d in self.decoders]
        return x, _additive(mask[:, tf.newaxis], x.dtype), cross

    def empty_caches(self, batch):
        """Zero self-attention keys and values [N, T, heads, key_dim], one pair per decoder layer."""
        caches = []
        for d in self.decoders:
            attention = d._self_attention_layer
            shape = tf.stack([batch, self.target_length, attention.num_heads, attention.key_dim])
            caches.append((tf.zeros(shape, attention.compute_dtype), tf.zeros(shape, attention.compute_dtype)))
        return caches

    def step(self, tokens, index, caches, encoded, source_bias, cross):
        """Logits [N, V] of the token after `tokens` [N] at position `index`, and the new caches.

        Each decoder layer runs as keras-hub's `TransformerDecoder.call` does (attention,
        residual, layer norm, before or after as the layer says; cross-attention; feed
        forward), on one position, with the layer's own projections and norms; only the
        attention's mask and cache plumbing is written here, which the layer's call
        would otherwise redo on every step.
        """
        x = self.target_embedding(tokens[:, tf.newaxis], start_index=index)
        length = self.target_length
        at_index = tf.reshape(tf.equal(tf.range(length), index), [1, length, 1, 1])
        seen = _additive(tf.reshape(tf.range(length) <= index, [1, 1, length]), x.dtype)
        new_caches = []
        for decoder, (keys, values), (cross_keys, cross_values) in zip(self.decoders, caches, cross):
            def self_attention(h, decoder=decoder, keys=keys, values=values):
                attention = decoder._self_attention_layer
                keys = tf.where(at_index, attention._key_dense(h), keys)
                values = tf.where(at_index, attention._value_dense(h), values)
                new_caches.append((keys, values))
                return _attend(attention, h, keys, values, seen)

            def cross_attention(h, decoder=decoder, keys=cross_keys, values=cross_values):
                return _attend(decoder._cross_attention_layer, h, keys, values, source_bias)

            def feed_forward(h, decoder=decoder):
                return decoder._feedforward_output_dense(decoder._feedforward_intermediate_dense(h))

            for block, norm in ((self_attention, decoder._self_attention_layer_norm),
                                (cross_attention, decoder._cross_attention_layer_norm),
                                (feed_forward, decoder._feedforward_layer_norm)):
                residual = x
                x = block(norm(x) if decoder.normalize_first else x) + residual
                if not decoder.normalize_first:
                    x = norm(x)
        logits = tf.cast(self.logits(x)[:, 0], tf.float32)
        never = tf.reduce_any(tf.equal(tf.range(tf.shape(logits)[-1])[:, tf.newaxis], NEVER), axis=1)
        return tf.where(never, -1e9, logits), new_caches


def _additive(allowed, dtype):
    """0 where attention is allowed, -1e9 where not: what Keras' masked softmax adds."""
    return tf.cast(tf.where(allowed, 0.0, -1e9), dtype)


def _attend(attention, h, keys, values, bias):
    """A Keras MultiHeadAttention's answer for queries `h` [N, 1, D] over projected `keys`
    and `values` [N, T, heads, key_dim], with the additive mask `bias` [N or 1, 1, T]."""
    query = attention._query_dense(h) * tf.cast(1.0 / float(attention.key_dim) ** 0.5, h.dtype)
    scores = tf.einsum("aqhk,athk->ahqt", query, keys) + bias[:, tf.newaxis]
    context = tf.einsum("ahqt,athk->aqhk", tf.nn.softmax(scores, axis=-1), values)
    return attention._output_dense(context)


def greedy(decoder: CachedDecoder, source_ids, max_length):
    """Ids [N, T] of the most likely next word at each step, [END] included, 0 after it.

    Stops after `max_length` words (at most the model's target_length) or when every
    row has ended.
    """
    batch = tf.shape(source_ids)[0]
    length = decoder.target_length
    encoded, mask, cross = decoder.encode(source_ids)
    positions = tf.range(length)

    def body(t, tokens, output, done, caches):
        logits, caches = decoder.step(tokens, t, caches, encoded, mask, cross)
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
    positions = tf.range(length)
    # Only the first beam is live at the start, so the first step does not pick K copies.
    scores = tf.tile(tf.concat([[0.0], tf.fill([k - 1], -1e9)], axis=0)[tf.newaxis], [batch, 1])

    def body(t, tokens, output, scores, done, caches):
        logits, caches = decoder.step(tokens, t, caches, encoded, mask, cross)
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
