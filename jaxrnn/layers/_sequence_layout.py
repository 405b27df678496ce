"""The sequence layout that Conv1D and the poolings share.

Keras' 1-D layers read (B, T, C) inputs, or (B, C, T) with
``data_format='channels_first'``, and here also one unbatched example,
(T, C) or (C, T). `sequence_layout` checks such a shape and names its
parts, `output_steps` is Keras' output length for a window, stride and
padding, and `with_steps` puts a shape back together. `single` and
`known_format` read the fields that the layers' ``__post_init__``
normalises.
"""

from __future__ import annotations

from typing import Any

from jaxrnn._validation import check_one_of
from jaxrnn.cells._convolution import DATA_FORMATS
from jaxrnn.layers._common import shape_tuple
from jaxrnn.typing import Shape


def single(value: int | tuple[int] | None) -> int:
    """The size a 1-tuple field holds (``kernel_size``, ``strides``, ...).

    `__post_init__` turns Keras' spellings 3 and (for pooling strides)
    None into 1-tuples; the field's type keeps the spellings a caller may
    pass.
    """
    assert isinstance(value, tuple)  # normalised in __post_init__
    return value[0]


def known_format(data_format: str | None) -> str:
    """A ``data_format`` field after `__post_init__`, which turns Keras'
    None into ``'channels_last'``."""
    assert data_format is not None  # normalised in __post_init__
    return data_format


def standardize_data_format(data_format: Any) -> str:
    """Keras' spelling rules: any case; None is Keras' default
    ``'channels_last'``."""
    if data_format is None:
        return "channels_last"
    value = (
        data_format.lower() if isinstance(data_format, str) else data_format
    )
    check_one_of("data_format", value, DATA_FORMATS)
    return value


def sequence_layout(
    owner: str, input_shape: Shape, data_format: str, name: str = "input_shape"
) -> tuple[tuple, Any, Any]:
    """Checks a sequence shape: (B, T, C), or unbatched (T, C); channels_first
    (B, C, T) or (C, T).

    Returns:
      (batch, T, C): batch is () unbatched or (B,); T and C may be None.
    """
    shape = shape_tuple(input_shape, "(None, T, C)", "(None, None, {})")
    layout = (
        "(B, T, C) or unbatched (T, C)"
        if data_format == "channels_last"
        else "(B, C, T) or unbatched (C, T)"
    )
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{owner} expects `{name}` {layout} ({data_format}), "
            f"got {shape} (rank {len(shape)})."
        )
    steps, channels = (
        shape[-2:] if data_format == "channels_last" else shape[-1:-3:-1]
    )
    return shape[:-2], steps, channels


def output_steps(
    owner: str,
    steps: Any,
    *,
    window: int,
    stride: int,
    dilation: int,
    padding: str,
    input_shape: Shape,
) -> Any:
    """Keras' output length: ``floor((T - dilation * (window - 1) - 1) /
    stride) + 1`` with 'valid', ``floor((T - 1) / stride) + 1`` with 'same'
    or 'causal'; None stays None.

    Raises:
      ValueError: 'valid' padding leaves no output (the sequence is shorter
        than the dilated window).
    """
    if steps is None:
        return None
    if padding == "valid":
        out = (steps - dilation * (window - 1) - 1) // stride + 1
        if out <= 0:
            raise ValueError(
                f"{owner} inputs {tuple(input_shape)} have {steps} steps, "
                f"fewer than the window of {dilation * (window - 1) + 1} "
                f"(size {window}, dilation {dilation}) with padding='valid': "
                f"the output would have {out} steps."
            )
        return out
    return (steps - 1) // stride + 1


def with_steps(
    batch: tuple, steps: Any, channels: Any, data_format: str
) -> tuple[Any, ...]:
    """`(*batch, T, C)`, or `(*batch, C, T)` channels_first."""
    if data_format == "channels_last":
        return (*batch, steps, channels)
    return (*batch, channels, steps)
