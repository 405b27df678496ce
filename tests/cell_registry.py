"""Every built-in cell, once, with the tiers it takes.

The shared checks (what a step call refuses, scan = unroll, masks, vmap,
gradients, the split step's errors, parallel in time, the protocol tiers)
pick their cells from here by tier, so a new cell is added to them all by
one entry. ``make(units)`` builds the cell; a test chooses the size.
"""

import dataclasses
from collections.abc import Callable
from typing import Any

import jaxrnn


@dataclasses.dataclass(frozen=True)
class CellEntry:
    """One built-in cell (or stack) and the tiers `jaxrnn.protocols`
    should find in it."""

    name: str
    make: Callable[[int], Any]
    projected: bool = True  # has_projected_step
    split: bool = False  # has_split_step
    parallel: bool = False  # supports_parallel
    # The input must have `units` features (LRU's skip D * x is elementwise).
    features_are_units: bool = False
    # Reads frames (*S, C) rather than vectors (D,).
    convolutional: bool = False
    # The relative tolerance of the shared gradient checks (float32).
    grad_rtol: float = 1e-4


def _stack(*cells):
    return jaxrnn.StackedCells(list(cells))


ENTRIES: tuple[CellEntry, ...] = (
    CellEntry("simple", lambda h: jaxrnn.SimpleRNNCell(h), split=True),
    CellEntry("lstm", lambda h: jaxrnn.LSTMCell(h), split=True),
    CellEntry("gru", lambda h: jaxrnn.GRUCell(h), split=True),
    CellEntry(
        "gru_reset_before", lambda h: jaxrnn.GRUCell(h, reset_after=False)
    ),
    CellEntry(
        "stacked",
        lambda h: _stack(jaxrnn.LSTMCell(h + 1), jaxrnn.GRUCell(h)),
    ),
    CellEntry("min_gru", lambda h: jaxrnn.MinGRUCell(h), parallel=True),
    CellEntry(
        "min_gru_log",
        lambda h: jaxrnn.MinGRUCell(h, log_space=True),
        parallel=True,
    ),
    CellEntry("min_lstm", lambda h: jaxrnn.MinLSTMCell(h), parallel=True),
    CellEntry(
        "min_lstm_log",
        lambda h: jaxrnn.MinLSTMCell(h, log_space=True),
        parallel=True,
    ),
    CellEntry(
        "lru",
        lambda h: jaxrnn.LRUCell(h, state_units=h + 1),
        parallel=True,
        features_are_units=True,
    ),
    CellEntry(
        "rg_lru",
        lambda h: jaxrnn.RGLRUCell(h, num_heads=2 if h % 2 == 0 else 1),
        parallel=True,
        features_are_units=True,
    ),
    CellEntry(
        "mlstm",
        lambda h: jaxrnn.MLSTMCell(
            h, num_heads=2 if h % 2 == 0 else 1, chunk_size=3
        ),
        parallel=True,
        # The output's layer norm over a head of 1-4 units amplifies
        # float32 rounding near equal values (gradients of 12 seen 5e-4
        # apart between the two forms).
        grad_rtol=2e-3,
    ),
    CellEntry(
        "slstm",
        lambda h: jaxrnn.SLSTMCell(h, num_heads=2 if h % 2 == 0 else 1),
        split=True,
    ),
    CellEntry(
        "stacked_parallel",
        lambda h: _stack(
            jaxrnn.MinLSTMCell(h, log_space=True),
            jaxrnn.LRUCell(h, state_units=2),
            jaxrnn.MinGRUCell(h + 1),
        ),
        parallel=True,
    ),
    CellEntry(
        "conv_lstm",
        lambda h: jaxrnn.ConvLSTM1DCell(h, 3, padding="same"),
        convolutional=True,
    ),
)
BY_NAME = {entry.name: entry for entry in ENTRIES}


def names(
    *,
    split: bool | None = None,
    parallel: bool | None = None,
    convolutional: bool | None = False,
) -> list[str]:
    """The sorted names of the entries with the given tiers (None: either).

    Vector cells only by default; ``convolutional=None`` adds ConvLSTM.
    """
    wanted = {
        "split": split,
        "parallel": parallel,
        "convolutional": convolutional,
    }
    return sorted(
        entry.name
        for entry in ENTRIES
        if all(
            value is None or getattr(entry, field) is value
            for field, value in wanted.items()
        )
    )


def make(name: str, units: int):
    """The cell `name` with `units` units."""
    return BY_NAME[name].make(units)
