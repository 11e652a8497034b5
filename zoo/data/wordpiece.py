"""The WordPiece tokenizer of BERT models: keras-hub's `BertTokenizer` and `StartEndPacker`.

Without a preset the vocabulary is learned from the training split with keras-hub's
`compute_word_piece_vocabulary` (lower-cased, BERT's reserved tokens first: [PAD] 0,
[UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4); with a preset it is the preset's own. A text
becomes `[CLS] pieces… [SEP]` padded with [PAD] (id 0) to `sequence_length`, truncated
to fit. The tokenizer's ops come from tensorflow-text (`RegexSplitWithOffsets`,
`FastWordpieceTokenizeWithOffsets`, `CaseFoldUTF8`): TF Serving's model server links
them; any other process that loads such an export must `import tensorflow_text` first
(zoo-model-server does).

    vocabulary = compute_vocabulary(texts, vocabulary_size=8000)
    encoder = WordPieceEncoder(vocabulary, sequence_length=64)
    encoder(tf.constant(["A sentence."]))  # int32 [1, 64]
"""

from __future__ import annotations

import pathlib

import keras
import tensorflow as tf

RESERVED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
DEFAULT_VOCABULARY_SIZE = 8_000  # pieces learned from a training split (BERT's own has 30,522)


MAX_PIECES_PER_WORD = 8  # a word's pieces past these are dropped (its first piece is what a tagger reads)


def compute_vocabulary(texts, vocabulary_size: int = DEFAULT_VOCABULARY_SIZE, lowercase: bool = True) -> list[str]:
    """A WordPiece vocabulary of at most `vocabulary_size` pieces learned from `texts`
    (a tf.data set of strings, or a list), the reserved tokens first. Taggers keep the
    case (`lowercase=False`): a capital is how a name nobody saw is told from a word."""
    import keras_hub

    if not isinstance(texts, tf.data.Dataset):
        texts = tf.data.Dataset.from_tensor_slices([str(t) for t in texts])
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        texts.batch(1024), vocabulary_size, lowercase=lowercase, reserved_tokens=list(RESERVED_TOKENS))
    return [str(piece) for piece in vocabulary]


def preset_vocabulary(preset: str) -> list[str]:
    """The WordPiece vocabulary of a keras-hub preset (a directory, or a built-in name
    when Kaggle answers: `zoo.presets.resolve_preset`)."""
    import keras_hub

    from zoo.presets import resolve_preset

    return list(keras_hub.models.BertTokenizer.from_preset(resolve_preset(preset)).get_vocabulary())


@keras.saving.register_keras_serializable(package="zoo")
class WordPieceEncoder(keras.layers.Layer):
    """Strings [B] -> int32 token ids [B, sequence_length]: [CLS] pieces [SEP], 0 pads."""

    def __init__(self, vocabulary, sequence_length: int, **kwargs):
        super().__init__(**kwargs)
        import keras_hub

        if isinstance(vocabulary, (str, pathlib.Path)):
            vocabulary = pathlib.Path(vocabulary).read_text(encoding="utf-8").split("\n")
            vocabulary = [piece for piece in vocabulary if piece]
        self.vocabulary, self.sequence_length = list(vocabulary), sequence_length
        missing = [t for t in RESERVED_TOKENS[:4] if t not in self.vocabulary]
        if missing:
            raise ValueError(f"A WordPiece vocabulary must hold BERT's special tokens; {', '.join(missing)} "
                             f"missing (learn it with zoo.data.wordpiece.compute_vocabulary, or use a preset's).")
        if self.vocabulary.index("[PAD]") != 0:
            raise ValueError("A WordPiece vocabulary's [PAD] must be id 0 (the models mask id 0 as padding).")
        self.tokenizer = keras_hub.models.BertTokenizer(vocabulary=self.vocabulary, lowercase=True, dtype="int32")
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length, start_value=self.tokenizer.cls_token_id, end_value=self.tokenizer.sep_token_id,
            pad_value=self.tokenizer.pad_token_id, return_padding_mask=False)

    def call(self, text):
        return tf.cast(self.packer(self.tokenizer(text)), tf.int32)

    def get_config(self):
        return dict(super().get_config(), vocabulary=self.vocabulary, sequence_length=self.sequence_length)


class WordPieceAligner(tf.Module):
    """Words to word pieces with each word's place kept, for a tagger that answers per word.

    Ragged words [B, (W)] -> `token_ids` int32 [B, piece_length] ([CLS] pieces [SEP], 0
    pads) and `word_index` int32 [B, sequence_length], the position of each word's first
    piece; 0 (the [CLS] position) for a word that did not fit and past the last word.
    Words are tokenized one by one (cased), so no piece spans two words.
    """

    def __init__(self, vocabulary, sequence_length: int, piece_length: int, name=None):
        super().__init__(name=name)
        import keras_hub

        encoder = WordPieceEncoder(vocabulary, piece_length)  # checks the special tokens
        self.vocabulary, self.sequence_length, self.piece_length = encoder.vocabulary, sequence_length, piece_length
        self.tokenizer = keras_hub.models.BertTokenizer(vocabulary=self.vocabulary, lowercase=False, split=False,
                                                        dtype="int32")
        self.packer = keras_hub.layers.StartEndPacker(
            piece_length, start_value=self.tokenizer.cls_token_id, end_value=self.tokenizer.sep_token_id,
            pad_value=self.tokenizer.pad_token_id, return_padding_mask=False)
        self.unknown = self.tokenizer.token_to_id("[UNK]")

    @tf.function  # keras-hub's tokenizers answer Python lists when called eagerly
    def __call__(self, words) -> dict:
        flat = words.flat_values
        pieces = self.tokenizer(tf.expand_dims(flat, -1))  # one row of pieces per word
        # A word that yields no piece (only characters the tokenizer drops) reads as [UNK].
        empty = tf.cast(pieces.row_lengths() == 0, tf.int64)
        unknown = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(empty)], self.unknown), empty)
        pieces = tf.concat([tf.cast(pieces, tf.int32), unknown], axis=1)[:, :MAX_PIECES_PER_WORD]
        counts = words.with_flat_values(tf.cast(pieces.row_lengths(), tf.int32))
        start = 1 + tf.math.cumsum(counts, axis=1, exclusive=True)  # after [CLS]
        fits = start < self.piece_length - 1  # the first piece comes before [SEP]
        kept = tf.ragged.boolean_mask(words.with_flat_values(pieces), fits).merge_dims(1, 2)
        token_ids = self.packer(kept[:, :self.piece_length - 2])
        word_index = tf.where(fits, start, 0).to_tensor(0, shape=[None, self.sequence_length])
        return {"token_ids": tf.cast(token_ids, tf.int32), "word_index": tf.cast(word_index, tf.int32)}
