"""Model families; importing this package registers every builder."""

from zoo.models import mlp, mobilenet, resnet, simple_cnn, text_cnn, transformer_classifier  # noqa: F401
