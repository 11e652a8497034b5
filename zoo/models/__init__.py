"""Model families; importing this package registers every builder."""

from zoo.models import (  # noqa: F401
    bert, bilstm_tagger, ctc_recognizer, ds_cnn, mlp, mobilenet, resnet, retinanet, rnn, simple_cnn, speech_cnn,
    text_cnn,
    transformer_classifier, transformer_seq2seq,
)
