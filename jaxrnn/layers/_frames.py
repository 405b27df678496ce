"""How a recurrent layer reads its cell's inputs: vectors or frames.

Most cells step on vectors `(..., D)`. A ConvLSTM cell steps on frames
`(..., *S, C)` (channels_first `(..., C, *S)`), and its carry's size S'
depends on the frames' spatial size S, so a layer binds the cell to its
inputs' S at each call (the cell's ``spatial_shape``). A stack of ConvLSTM
cells (`StackedCells`) is bound cell by cell, each to the size of the
frames the cell below it outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jaxrnn.cells.conv_lstm import ConvLSTMCell
from jaxrnn.cells.stacked import StackedCells


def feature_axes(cell: Any) -> int:
    """The axes of one step's input: 1 for a vector D, rank + 1 for a
    ConvLSTM cell's frame (the ``input_ndim`` that `jaxrnn.rnn` reads)."""
    return getattr(cell, "input_ndim", 1)


def _first(cell: Any) -> Any:
    """The cell that reads the layer's inputs."""
    return cell.cells[0] if isinstance(cell, StackedCells) else cell


def _channels_first(cell: Any) -> bool:
    first = _first(cell)
    return (
        isinstance(first, ConvLSTMCell)
        and first.data_format == "channels_first"
    )


def describe(cell: Any) -> str:
    """The letters of one step's input: ``D``, ``*S, C`` or ``C, *S``
    (``F1, F2, ...`` for another cell with several feature axes)."""
    if isinstance(_first(cell), ConvLSTMCell):
        return "C, *S" if _channels_first(cell) else "*S, C"
    n = feature_axes(cell)
    return "D" if n == 1 else ", ".join(f"F{i}" for i in range(1, n + 1))


def _known(size: Any) -> bool:
    return isinstance(size, (int, np.integer)) and bool(size > 0)


def check_features(cell: Any, shape: tuple[Any, ...], name: str) -> None:
    """Raises ValueError unless `shape` gives the size the params depend
    on: D, or the frames' channel count C."""
    frame = shape[len(shape) - feature_axes(cell) :]
    if feature_axes(cell) == 1:
        if not _known(frame[0]):
            raise ValueError(
                f"`{name}` must end with a known feature size D, got {shape}."
            )
        return
    channels = frame[0] if _channels_first(cell) else frame[-1]
    if not _known(channels):
        raise ValueError(
            f"`{name}` must have a known channel count C in its frames "
            f"({describe(cell)}), got {shape}."
        )


def input_dim(cell: Any, frame: tuple[Any, ...]) -> Any:
    """What ``cell.init`` takes: D; a whole frame, checked against the
    kernel, when all its sizes are known; else the channel count C."""
    if feature_axes(cell) == 1:
        return frame[0]
    if all(_known(size) for size in frame):
        return frame
    return frame[0] if _channels_first(cell) else frame[-1]


def _spatial(cell: ConvLSTMCell, frame: tuple[Any, ...]) -> tuple[Any, ...]:
    return frame[1:] if cell.data_format == "channels_first" else frame[:-1]


def bind(cell: Any, frame: tuple[Any, ...] | None) -> Any:
    """`cell` with each ConvLSTM cell in it bound to the spatial size of
    the frames it reads (a cell built with a ``spatial_shape`` keeps it,
    and refuses frames of another size); other cells as they are."""
    if isinstance(cell, StackedCells):
        bound = []
        for inner in cell.cells:
            inner = bind(inner, frame)
            bound.append(inner)
            # Past a cell that is not a ConvLSTM cell, the frames are
            # unknown: the cells above stay as they are.
            frame = (
                inner.state_shape(_spatial(inner, frame))
                if frame is not None and isinstance(inner, ConvLSTMCell)
                else None
            )
        return StackedCells(bound)
    if (
        frame is not None
        and isinstance(cell, ConvLSTMCell)
        and cell.spatial_shape is None
    ):
        return dataclasses.replace(cell, spatial_shape=_spatial(cell, frame))
    return cell


def frame_shapes(
    cell: Any, frame: tuple[Any, ...], owner: str
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """One example's step output shape and state shapes for frames of
    shape `frame` (None for unknown sizes): `(*S', F)` each for a ConvLSTM
    cell, chained through a stack.

    Raises:
      TypeError: `cell` is neither a ConvLSTM cell nor a stack of them, so
        `owner` (a layer's ``output_shape``) cannot tell its shapes.
    """
    if isinstance(cell, StackedCells):
        states = []
        for inner in cell.cells:
            frame, inner_states = frame_shapes(inner, frame, owner)
            states += inner_states
        return frame, states
    if not isinstance(cell, ConvLSTMCell):
        raise TypeError(
            f"{owner} knows the shapes of vector cells and of ConvLSTM "
            f"cells' frames; {type(cell).__name__} reads "
            f"{feature_axes(cell)} feature axes."
        )
    state = cell.state_shape(_spatial(cell, frame))
    return state, [state, state]
