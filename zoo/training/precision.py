"""The precision a run trains in, chosen from the hardware, and float32 copies for serving.

    policy = dtype_policy("auto")   # "mixed_float16", "mixed_bfloat16" or "float32"
    served = float32_model(model)   # the same weights, computing in float32

`auto` picks `mixed_float16` on a GPU with tensor cores (compute capability 7.0+),
`mixed_bfloat16` on a CPU with native bfloat16 arithmetic (AMX or AVX512-BF16, read
from the CPU's flags, not assumed) and float32 elsewhere. Measured here (2 cores with
AVX512-BF16): Keras `fit` on the classic CIFAR CNN reached about 3,700-4,000 samples/s
in mixed_bfloat16 against about 2,000-2,700 in float32. Variables stay float32 in every
policy, and every builder's `logits` layer computes in float32.

An export computes in float32 whatever the run trained in (a bfloat16 graph on a
serving CPU without bfloat16 would be slow, and TF Serving's CPUs vary): the model is
rebuilt layer by layer under float32 with the trained weights.
"""

from __future__ import annotations

import keras

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# `--set mixed_precision=`: a policy by name, or auto / on (the hardware's mixed policy) / off (float32).
SETTINGS = ("auto", "on", "off") + POLICIES
_NATIVE_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU does bfloat16 arithmetic natively (AMX or AVX512-BF16)."""
    try:
        with open(cpuinfo) as f:
            lines = [line for line in f if line.startswith("flags")]
    except OSError:  # not Linux: no way to tell, so no assumption
        return False
    return any(_NATIVE_BF16_FLAGS & set(line.split(":", 1)[-1].split()) for line in lines)


def gpu_has_tensor_cores() -> bool:
    import tensorflow as tf

    # float16 tensor cores arrived with compute capability 7.0 (Volta).
    for gpu in tf.config.list_physical_devices("GPU"):
        if tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (7, 0):
            return True
    return False


def dtype_policy(setting: str = "auto") -> str:
    """The Keras dtype policy for a `mixed_precision` setting on this machine."""
    if setting in POLICIES:
        return setting
    if setting == "off":
        return "float32"
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        if gpu_has_tensor_cores() or setting == "on":
            return "mixed_float16"
        return "float32"
    if cpu_has_native_bf16() or setting == "on":
        return "mixed_bfloat16"
    return "float32"


def model_policy(model: keras.Model) -> str:
    """The policy a model's layers compute in: a mixed one if any layer has it (the
    float32 `logits` layer of a mixed model aside), else "float32"."""
    names = [layer.dtype_policy.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return next((name for name in names if name != "float32"), "float32")


def float32_model(model: keras.Model) -> keras.Model:
    """`model` computing in float32: itself if it does, else a functional copy whose
    every layer is rebuilt with dtype float32 and given the trained weights."""
    if model_policy(model) == "float32":
        return model

    if type(model).__module__.split(".")[0] != "keras":
        # A model class of its own (a keras-hub task such as the detectors) is rebuilt
        # from its config, every mixed policy in it made float32: it keeps its class.
        copy = type(model).from_config(_float32_config(model.get_config()))
    else:
        def clone(layer):
            config = layer.get_config()
            config["dtype"] = "float32"
            return layer.__class__.from_config(config)

        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _float32_config(config):
    """A layer or model config with every mixed dtype policy in it (at any depth) made float32."""
    if isinstance(config, dict):
        return {k: "float32" if k == "dtype" and _is_mixed(v) else _float32_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    return config


def _is_mixed(value) -> bool:
    if isinstance(value, dict):  # a serialized DTypePolicy
        value = (value.get("config") or {}).get("name", "")
    return isinstance(value, str) and value.startswith("mixed_")

