"""The Keras 3 classes jaxrnn reads from live Keras objects.

`keras_kind` names the supported Keras class an object is an instance of
(subclasses too) and refuses the rest; `ARRAYS` lists the variables each
leaf layer may own, in Keras' order. Keras is imported only when a function
here is called (`keras_module`), so jaxrnn itself needs nothing beyond jax
and numpy.
"""

from __future__ import annotations

from typing import Any

# Variables each Keras leaf layer may own, in Keras' order; absent ones (a
# bias with use_bias=False, gamma with scale=False) are None on the layer.
ARRAYS = {
    "SimpleRNNCell": ("kernel", "recurrent_kernel", "bias"),
    "LSTMCell": ("kernel", "recurrent_kernel", "bias"),
    "GRUCell": ("kernel", "recurrent_kernel", "bias"),
    "Embedding": ("embeddings",),
    "Dense": ("kernel", "bias"),
    "Conv1D": ("kernel", "bias"),
    "Dropout": (),
    "Masking": (),
    "MaxPooling1D": (),
    "GlobalAveragePooling1D": (),
    "GlobalMaxPooling1D": (),
    "BatchNormalization": (
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "moving_stddev",
        "renorm_mean",
        "renorm_stddev",
    ),
    "LayerNormalization": ("gamma", "beta"),
}
_CONTAINERS = (
    "Sequential",
    "RNN",
    "StackedRNNCells",
    "Bidirectional",
    "TimeDistributed",
)
_SUPPORTED = sorted(
    set(ARRAYS) | set(_CONTAINERS) | {"SimpleRNN", "LSTM", "GRU"}
)


def keras_module() -> Any:
    """The keras module, imported on first use."""
    import keras  # Lazy: Keras is an optional, test-time dependency.

    return keras


def keras_kind(obj: Any) -> str:
    """The supported Keras class `obj` is an instance of (subclasses too)."""
    keras = keras_module()
    if isinstance(obj, keras.Sequential):
        return "Sequential"
    for name in (
        "SimpleRNN",
        "LSTM",
        "GRU",
        "RNN",
        "StackedRNNCells",
        *ARRAYS,
        "Bidirectional",
        "TimeDistributed",
    ):
        if isinstance(obj, getattr(keras.layers, name)):
            return name
    label = getattr(obj, "name", type(obj).__name__)
    raise TypeError(
        f"{label}: Keras {type(obj).__name__} is not supported; "
        f"expected one of {_SUPPORTED}."
    )


def object_label(obj: Any) -> str:
    """A Keras object's name for messages (its class name if unnamed)."""
    return getattr(obj, "name", None) or type(obj).__name__
