"""Model families; importing this package registers every builder."""

from zoo.models import (  # noqa: F401
    bert, bilstm_tagger, ds_cnn, mlp, mobilenet, resnet, rnn, simple_cnn, text_cnn, transformer_classifier,
    speech_cnn, transformer_seq2seq,
)
