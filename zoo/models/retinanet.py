"""RetinaNet (Lin et al., 2017, "Focal Loss for Dense Object Detection") on keras-hub's parts.

A backbone gives feature maps at strides 2^min_level .. 2^max_level, keras-hub's feature
pyramid (`FeaturePyramid`) mixes them top-down, and keras-hub's RetinaNet prediction
heads (`PredictionHead`, shared over the levels) predict, for each of the anchors at
every position, four box offsets and one logit per class. Anchors come from keras-hub's
`AnchorGenerator`, the assignment of ground-truth boxes to anchors and their encoding
from its `RetinaNetLabelEncoder`, and the loss (focal loss on the classes, Huber on the
offsets of the matched anchors, both over the number of matched anchors) from keras-hub's
`RetinaNetObjectDetector.compute_loss`: a `Detector` is that class, built so that

- it takes `image` [B,H,W,3] raw 0-255 pixels and scales them itself (the zoo's image
  contract: no client needs to know the normalisation);
- the width of the pyramid and the heads is an argument (keras-hub fixes it at 256,
  which is the published RetinaNet and far too much for a CPU-sized detector);
- its outputs are float32 under mixed precision.

Boxes are "yxyx" pixels of the model's input ([ymin, xmin, ymax, xmax]); the
`object_detection` task converts them from and to normalised coordinates.

    >>> import zoo
    >>> model = zoo.build_model("retinanet", num_classes=20, input_shape=(384, 384, 3))
    >>> model.fit(images, {"boxes": boxes, "labels": labels})   # boxes [B,N,4] pixels, labels -1 past the end
"""

from __future__ import annotations

import keras
import keras_hub
from keras_hub.src.models.retinanet.feature_pyramid import FeaturePyramid
from keras_hub.src.models.retinanet.prediction_head import PredictionHead
from keras_hub.src.models.retinanet.retinanet_label_encoder import RetinaNetLabelEncoder

from zoo.models.preprocessing import check_num_classes
from zoo.registry import register_model

BOX_FORMAT = "yxyx"  # the models' boxes: [ymin, xmin, ymax, xmax] in pixels of the input
ASPECT_RATIOS = (0.5, 1.0, 2.0)
NUM_SCALES = 3


def light_encoder(filters, image_shape) -> keras.Model:
    """A small CNN for the light detector: a stride-2 stem, then per level a stride-2
    3x3 convolution and a 3x3 one (batch norm, ReLU). Outputs P2 (stride 4) upwards."""
    image = keras.Input(image_shape, name="pixels")
    x = _conv_bn(image, filters[0], 2, "stem")
    outputs = {}
    for level, width in enumerate(filters, start=2):
        x = _conv_bn(x, width, 2, f"p{level}_down")
        x = _conv_bn(x, width, 1, f"p{level}_conv")
        outputs[f"P{level}"] = x
    model = keras.Model(image, outputs, name="light_encoder")
    model.pyramid_outputs = outputs  # as keras-hub backbones name their levels
    return model


def _conv_bn(x, filters, strides, name):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


@keras.saving.register_keras_serializable(package="zoo")
class DetectorBackbone(keras_hub.models.FeaturePyramidBackbone):
    """Pixels 0-255 -> feature pyramid {"P3": ..., "P{max_level}": ...} of `num_filters` channels.

    The encoder is a keras-hub backbone with pyramid outputs (`ResNetBackbone`), given
    as `image_encoder`, or, when that is None, `light_encoder(encoder_filters)`.
    Levels above the encoder's are made by keras-hub's `FeaturePyramid` (stride-2
    convolutions), as in RetinaNet's P6 and P7.
    """

    def __init__(self, image_encoder=None, encoder_filters=(16, 32, 64, 96), min_level=3, max_level=5,
                 num_filters=256, use_p5=True, image_shape=(None, None, 3), dtype=None, **kwargs):
        image_shape = tuple(image_shape)
        own_encoder = image_encoder is None
        encoder = light_encoder(tuple(encoder_filters), image_shape) if own_encoder else image_encoder
        pyramid = encoder.pyramid_outputs
        levels = sorted(int(k[1:]) for k in pyramid)
        if min_level not in levels:
            raise ValueError(f"The encoder gives levels {levels}; min_level {min_level} is not one of them.")
        top = min(max(levels), max_level)
        features = keras.Model(encoder.inputs, {f"P{i}": pyramid[f"P{i}"] for i in range(min_level, top + 1)},
                               name="encoder_features")
        fpn = FeaturePyramid(min_level=min_level, max_level=max_level, use_p5=use_p5, num_filters=num_filters,
                             name="fpn", dtype=dtype)
        image = keras.Input(image_shape, name="image")
        x = keras.layers.Rescaling(1 / 255, name="scale_pixels", dtype=dtype)(image)
        outputs = fpn(features(x))
        super().__init__(inputs=image, outputs=outputs, dtype=dtype, **kwargs)
        self.image_encoder = None if own_encoder else image_encoder
        self.encoder_filters = tuple(encoder_filters)
        self.min_level, self.max_level, self.num_filters, self.use_p5 = min_level, max_level, num_filters, use_p5
        self.image_shape = image_shape
        self.pyramid_outputs = outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            image_encoder=None if self.image_encoder is None else keras.layers.serialize(self.image_encoder),
            encoder_filters=self.encoder_filters, min_level=self.min_level, max_level=self.max_level,
            num_filters=self.num_filters, use_p5=self.use_p5, image_shape=self.image_shape)
        return config

    @classmethod
    def from_config(cls, config):
        if isinstance(config.get("image_encoder"), dict):
            config["image_encoder"] = keras.layers.deserialize(config["image_encoder"])
        return super().from_config(config)


@keras.saving.register_keras_serializable(package="zoo")
class Detector(keras_hub.models.RetinaNetObjectDetector):
    """keras-hub's RetinaNetObjectDetector with its input named `image` and heads of
    `head_filters` channels and `head_layers` convolutions (keras-hub: 256 and 4).

    The graph is keras-hub's (`RetinaNetObjectDetector.__init__`, keras-hub 0.32) with
    those two numbers made arguments; the loss, label encoding, box decoding and
    serialization are inherited unchanged.
    """

    def __init__(self, backbone, num_classes, bounding_box_format=BOX_FORMAT, anchor_generator=None,
                 label_encoder=None, head_filters=256, head_layers=4, anchor_size=4.0,
                 classification_head_prior_probability=0.01, preprocessor=None, dtype=None,
                 prediction_decoder=None, **kwargs):
        for key in ("use_prediction_head_norm", "pre_logits_num_conv_layers", "activation"):
            kwargs.pop(key, None)  # keras-hub's config keys with the values this class fixes
        anchor_generator = anchor_generator or keras_hub.layers.AnchorGenerator(
            bounding_box_format, min_level=backbone.min_level, max_level=backbone.max_level,
            num_scales=NUM_SCALES, aspect_ratios=list(ASPECT_RATIOS), anchor_size=anchor_size)
        # Every object gets at least its best anchor, as torchvision's RetinaNet matcher
        # (allow_low_quality_matches): a small or thin one may overlap no anchor by 0.5.
        label_encoder = label_encoder or RetinaNetLabelEncoder(
            anchor_generator, bounding_box_format=bounding_box_format, encoding_format="center_xywh",
            box_matcher_force_match_for_each_col=True)
        head_dtype = dtype or backbone.dtype_policy
        heads = {}
        for name, per_anchor, prior in (("box_head", 4, False), ("classification_head", num_classes, True)):
            heads[name] = PredictionHead(
                output_filters=anchor_generator.num_base_anchors * per_anchor, num_conv_layers=head_layers,
                num_filters=head_filters, use_prior_probability=prior,
                prior_probability=classification_head_prior_probability, dtype=head_dtype, name=name)

        image = keras.layers.Input(backbone.image_shape, name="image")
        pyramid = backbone(image)
        boxes, classes = [], []
        for level in pyramid:
            boxes.append(keras.layers.Reshape((-1, 4), name=f"box_pred_{level}")(heads["box_head"](pyramid[level])))
            classes.append(keras.layers.Reshape((-1, num_classes), name=f"cls_pred_{level}")(
                heads["classification_head"](pyramid[level])))
        outputs = {
            # Offsets of each anchor's box ("center_xywh" deltas) and per-class logits, float32.
            "bbox_regression": keras.layers.Concatenate(axis=1, name="bbox_regression", dtype="float32")(boxes),
            "cls_logits": keras.layers.Concatenate(axis=1, name="cls_logits", dtype="float32")(classes),
        }
        # keras-hub's ObjectDetector -> Task -> functional Model, skipping RetinaNet's own graph.
        # A list of one named input: fit/predict take plain arrays and {"image": x} alike.
        keras_hub.models.ObjectDetector.__init__(self, inputs=[image], outputs=outputs, **kwargs)
        self.bounding_box_format = bounding_box_format
        self.use_prediction_head_norm = False
        self.num_classes = num_classes
        self.backbone = backbone
        self.preprocessor = preprocessor
        self.activation = None  # logits: sigmoid in the loss and the decoder
        self.pre_logits_num_conv_layers = head_layers
        self.head_filters, self.head_layers, self.anchor_size = head_filters, head_layers, anchor_size
        self.classification_head_prior_probability = classification_head_prior_probability
        self.box_head, self.classification_head = heads["box_head"], heads["classification_head"]
        self.anchor_generator = anchor_generator
        self.label_encoder = label_encoder
        self._prediction_decoder = prediction_decoder or keras_hub.layers.NonMaxSuppression(
            from_logits=True, bounding_box_format=bounding_box_format)

    def compute_loss(self, x, y, y_pred, sample_weight=None, **kwargs):
        if isinstance(x, dict):  # {"image": pixels}, as the zoo's pipelines give it
            x = x["image"]
        # One padding object more per image (a zero box, class -1: background). keras-hub
        # 0.32's BoxMatcher with force_match_for_each_col gathers one column past the end
        # when no object's best anchor is the first anchor; the zero box's best anchor is
        # the first, and it leaves the loss as it was (matched to background).
        boxes = keras.ops.cast(y["boxes"], "float32")
        labels = keras.ops.cast(y["labels"], "float32")
        batch = keras.ops.shape(boxes)[0]
        y = dict(y, boxes=keras.ops.concatenate([boxes, keras.ops.zeros((batch, 1, 4))], axis=1),
                 labels=keras.ops.concatenate([labels, -keras.ops.ones((batch, 1))], axis=1))
        return super().compute_loss(x, y, y_pred, sample_weight, **kwargs)

    def compile(self, optimizer="auto", loss=None, metrics=None, box_loss="auto", classification_loss="auto",
                **kwargs):
        """keras-hub's ObjectDetector.compile (box_loss, classification_loss), which also
        takes Keras' own `loss={"bbox_regression": ..., "cls_logits": ...}` and metrics."""
        if loss is None:
            return super().compile(optimizer, box_loss, classification_loss, metrics=metrics or None, **kwargs)
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)  # keras-hub's default for detectors
        return keras.Model.compile(self, optimizer=optimizer, loss=loss, metrics=metrics or None, **kwargs)

    def compile_from_config(self, config):
        # A saved model comes back compiled as it was (Keras' own would skip a custom compile()).
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(head_filters=self.head_filters, head_layers=self.head_layers, anchor_size=self.anchor_size,
                      classification_head_prior_probability=self.classification_head_prior_probability)
        return config


def _check_int(model, arg, value, low=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{model}: {arg} must be an int >= {low}, got {value!r}.")


def check_image_shape(model, input_shape, levels: int):
    """The input shape as a tuple; height and width must be multiples of 2^max_level."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape) or shape[-1] != 3:
        raise ValueError(f"{model}: input_shape must be (height, width, 3) of positive ints, got {input_shape!r}.")
    stride = 2 ** levels
    if shape[0] % stride or shape[1] % stride:
        raise ValueError(f"{model}: height and width must be multiples of {stride} (the stride of the coarsest "
                         f"level, P{levels}), got {shape[:2]}. Resize the images (load_dataset(..., "
                         f"image_size=...), CLI --set image_size=H,W).")
    return shape


def detector(backbone, num_classes, head_filters, head_layers, anchor_size, name):
    check_num_classes(num_classes, name)
    _check_int(name, "head_filters", head_filters)
    _check_int(name, "head_layers", head_layers, low=0)
    if not isinstance(anchor_size, (int, float)) or isinstance(anchor_size, bool) or anchor_size <= 0:
        raise ValueError(f"{name}: anchor_size must be a positive number, got {anchor_size!r}.")
    return Detector(backbone, num_classes, head_filters=head_filters, head_layers=head_layers,
                    anchor_size=float(anchor_size), name=name)


@register_model(task="object_detection", default_dataset="synthetic_detection")
def retinanet(num_classes=20, input_shape=(384, 384, 3), depth=18, min_level=3, max_level=7, num_filters=256,
              head_layers=4, anchor_size=4.0):
    """RetinaNet: keras-hub's ResNet (18 or 50) + feature pyramid P3-P7 + focal-loss heads.

    Args:
        num_classes: object classes (no background class: every class has a sigmoid).
        input_shape: (height, width, 3); both multiples of 2^max_level.
        depth: 18 (basic blocks) or 50 (bottleneck blocks), randomly initialised.
        min_level, max_level: pyramid levels (strides 2^min_level .. 2^max_level).
        num_filters: width of the feature pyramid and the heads (256 in the paper).
        head_layers: 3x3 convolutions in each head before its prediction (4 in the paper).
        anchor_size: an anchor's side over its level's stride (4: 32 px at P3).

    Example:
        >>> import zoo
        >>> model = zoo.build_model("retinanet", num_classes=20, input_shape=(384, 384, 3))
    """
    _check_int("retinanet", "num_filters", num_filters)
    if depth not in (18, 50):
        raise ValueError(f"retinanet: depth must be 18 or 50, got {depth!r}.")
    if not (isinstance(min_level, int) and isinstance(max_level, int) and 3 <= min_level <= 5 <= max_level <= 7):
        raise ValueError(f"retinanet: levels must satisfy 3 <= min_level <= 5 <= max_level <= 7, "
                         f"got {min_level!r}..{max_level!r}.")
    shape = check_image_shape("retinanet", input_shape, max_level)
    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128, 256, 512],
        stackwise_num_blocks=[2, 2, 2, 2] if depth == 18 else [3, 4, 6, 3], stackwise_num_strides=[1, 2, 2, 2],
        block_type="basic_block" if depth == 18 else "bottleneck_block", image_shape=shape)
    backbone = DetectorBackbone(encoder, min_level=min_level, max_level=max_level, num_filters=num_filters,
                                image_shape=shape)
    return detector(backbone, num_classes, num_filters, head_layers, anchor_size, "retinanet")


@register_model(task="object_detection", default_dataset="synthetic_detection")
def light_detector(num_classes=6, input_shape=(128, 128, 3), filters=(16, 32, 64, 96), num_filters=48,
                   head_layers=1, anchor_size=2.0):
    """A RetinaNet sized for CPUs: a small CNN, a narrow pyramid P3-P5 and light heads.

    Same anchors, label encoding, loss and decoding as `retinanet`; 366,378
    parameters at the defaults (6 classes).

    Args:
        num_classes: object classes.
        input_shape: (height, width, 3); both multiples of 32.
        filters: channels of the encoder's levels P2..P5 (four numbers).
        num_filters: width of the feature pyramid and the heads.
        head_layers: 3x3 convolutions in each head before its prediction.
        anchor_size: an anchor's side over its level's stride (2: 16 px at P3).

    Example:
        >>> import zoo
        >>> model = zoo.build_model("light_detector", num_classes=6)
    """
    if len(filters) != 4:
        raise ValueError(f"light_detector: filters must be four channel counts (P2..P5), got {filters!r}.")
    for width in filters:
        _check_int("light_detector", "filters", width)
    _check_int("light_detector", "num_filters", num_filters)
    shape = check_image_shape("light_detector", input_shape, 5)
    backbone = DetectorBackbone(None, encoder_filters=tuple(filters), min_level=3, max_level=5,
                                num_filters=num_filters, image_shape=shape)
    return detector(backbone, num_classes, num_filters, head_layers, anchor_size, "light_detector")
