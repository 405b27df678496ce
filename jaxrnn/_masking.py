"""Masks, sequence lengths and carry resets, and Keras' rule for masked
steps: a masked step keeps the carry and repeats the row's last valid
output (zeros before its first, or always zeros with
``zero_output_for_mask``). Every engine of `jaxrnn.rnn` applies the rule
from here: the chunked scans with `masked_chunk_outputs` (and the
split-step scan's backward pass with `masked_chunk_outputs_backward`), the
parallel scan with `forward_fill`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import core, lax


def lengths_to_mask(seq_lengths: jax.Array, time_steps: int) -> jax.Array:
    """Turns lengths into the right-padded mask they stand for.

    Args:
      seq_lengths: (...,) integer lengths, e.g. (B,).
      time_steps: T.

    Returns:
      (..., T) bool, True where ``t < length``.

    Raises:
      TypeError: `seq_lengths` is not of an integer dtype.
      ValueError: a length is below 0 or above T. This is checked only where
        the lengths are concrete; traced lengths (under `jax.jit`, `vmap`,
        ...) cannot be read at trace time, and there a length below 0
        gives a row of False (as 0 would) and one above T a row of True
        (as T would).

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxrnn import lengths_to_mask
      >>> lengths_to_mask(jnp.array([1, 3]), 3)
      Array([[ True, False, False],
             [ True,  True,  True]], dtype=bool)
    """
    seq_lengths = jnp.asarray(seq_lengths)
    if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
        raise TypeError(
            "`seq_lengths` must have an integer dtype, got "
            f"{seq_lengths.dtype}."
        )
    check_lengths_in_range(seq_lengths, time_steps)
    lengths = _int32_lengths(seq_lengths, time_steps)
    return jnp.arange(time_steps) < lengths[..., None]


def _int32_lengths(seq_lengths: jax.Array, time_steps: int) -> jax.Array:
    """Lengths of any integer dtype as int32, clipped to [0, T] first so
    that none wraps (int8 or uint32 lengths compare with an int32 arange
    only through a cast: strict dtype promotion refuses mixing them)."""
    info = jnp.iinfo(seq_lengths.dtype)
    if info.max > time_steps:
        seq_lengths = jnp.minimum(
            seq_lengths, jnp.asarray(time_steps, seq_lengths.dtype)
        )
    if info.min < 0:
        seq_lengths = jnp.maximum(
            seq_lengths, jnp.zeros((), seq_lengths.dtype)
        )
    return seq_lengths.astype(jnp.int32)


def check_lengths_in_range(seq_lengths: jax.Array, time_steps: int) -> None:
    """Raises ValueError if concrete `seq_lengths` leave [0, time_steps];
    traced ones are let through (their values are unknown at trace time)."""
    if isinstance(seq_lengths, core.Tracer) or seq_lengths.size == 0:
        return
    values = np.asarray(seq_lengths)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > time_steps:
        raise ValueError(
            f"`seq_lengths` must lie in [0, T] = [0, {time_steps}], got "
            f"values from {low} to {high}; a length counts the valid steps "
            "of a right-padded row."
        )


def broadcast_over(keep: jax.Array, leaf: jax.Array) -> jax.Array:
    """(B,) -> (B, 1, ..., 1) with leaf's rank, for per-example selects."""
    return keep.reshape(keep.shape + (1,) * (leaf.ndim - keep.ndim))


def zero_masked(xs: jax.Array, keep: jax.Array | None) -> jax.Array:
    """`xs` (T, B, ...) or (B, ...) with zeros where `keep` (bool (T, B) or
    (B,)) is False; `xs` itself when `keep` is None. Masked inputs zeroed
    so cannot bring NaN or inf into outputs or gradients (`jnp.where`'s
    gradient multiplies the unused branch by 0)."""
    if keep is None:
        return xs
    return jnp.where(broadcast_over(keep, xs), xs, jnp.zeros((), xs.dtype))


def keep_where(keep: jax.Array | None, new: Any, old: Any) -> Any:
    """`new` where `keep` (bool (B,)) is True, `old` where it is False, leaf
    by leaf over pytrees of (B, ...) arrays (`old`'s leaves may be scalars);
    `new` itself when `keep` is None."""
    if keep is None:
        return new
    return jax.tree.map(
        lambda n, o: jnp.where(broadcast_over(keep, n), n, o), new, old
    )


def latest_valid_steps(step_mask: jax.Array) -> jax.Array:
    """(T, B) bool -> (T, B) int32: each row's latest valid step up to t,
    -1 before its first."""
    times = jnp.arange(step_mask.shape[0], dtype=jnp.int32)[:, None]
    return lax.cummax(jnp.where(step_mask, times, -1), axis=0)


def masked_chunk_outputs(
    ys: jax.Array, keep: jax.Array | None, last: jax.Array, zero_output: bool
) -> tuple[jax.Array, jax.Array]:
    """A chunk's outputs by `rnn`'s masked-output rules (Keras': a masked
    step repeats the row's last valid output), and the last valid output
    after it; scans carry `last` from chunk to chunk.

    Args:
      ys: (K, B, ...) the steps' raw outputs.
      keep: bool (K, B) or None.
      last: (B, ...) each row's output at its last valid step before the
        chunk (zeros before its first).
      zero_output: masked steps output zeros instead of repeating `last`.

    Returns:
      (outputs (K, B, ...), last after the chunk).
    """
    if keep is None:
        return ys, ys[-1]
    outputs = []
    for k in range(ys.shape[0]):
        valid = broadcast_over(keep[k], ys[k])
        outputs.append(
            jnp.where(
                valid, ys[k], jnp.zeros((), ys.dtype) if zero_output else last
            )
        )
        last = jnp.where(valid, ys[k], last)
    return jnp.stack(outputs), last


def masked_chunk_outputs_backward(
    keep: jax.Array | None,
    d_output: jax.Array,
    d_last: jax.Array | None,
    zero_output: bool,
) -> tuple[jax.Array, jax.Array | None]:
    """The backward step of `masked_chunk_outputs` at one step: from the
    gradients of the step's output and of the last valid output after it,
    (the gradient of the step's raw y, that of the last valid output
    before it).

    Args:
      keep: bool (B,), the step's mask, or None (unmasked; then `d_last`
        is None too: the caller adds the last output's gradient to the
        last step's before its loop).
      d_output: (B, ...) the gradient of the step's output.
      d_last: (B, ...) the gradient of the last valid output after the
        step, or None where `keep` is None.
      zero_output: as in `masked_chunk_outputs`.
    """
    if keep is None:
        return d_output, None
    assert d_last is not None  # masked runs carry it (see Args)
    total = d_output + d_last
    valid = broadcast_over(keep, total)
    zero = jnp.zeros((), total.dtype)
    return (
        jnp.where(valid, total, zero),
        jnp.where(valid, zero, d_last if zero_output else total),
    )


def forward_fill(ys: jax.Array, latest: jax.Array) -> jax.Array:
    """ys (T, B, ...) with every step replaced by its row's output at
    `latest` (from `latest_valid_steps`), zeros where that is -1: Keras'
    masked steps repeat the last valid output."""
    filled = jnp.take_along_axis(
        ys, broadcast_over(jnp.maximum(latest, 0), ys), axis=0
    )
    return zero_masked(filled, latest >= 0)


def reset_carry(carry: Any, reset_mask: jax.Array) -> Any:
    """Zeros the carry of the batch entries where `reset_mask` is True.

    For episodic streams: thread the final carry of one chunk into the next
    call, resetting the entries whose episode ended.

    Args:
      carry: any carry pytree whose leaves are (B, ...), e.g. an LSTM's
        ``(h, c)``, each (B, H).
      reset_mask: (B,) bool, True for the rows to reset.

    Returns:
      The carry, same structure, shapes and dtypes, with the selected rows
      set to zero.

    Raises:
      TypeError: `reset_mask` is not bool.
      ValueError: `reset_mask` is not (B,), or a carry leaf's first axis is
        not B.

    Example:
      >>> import jax.numpy as jnp
      >>> from jaxrnn import reset_carry
      >>> h, c = jnp.ones((2, 3)), jnp.ones((2, 3))
      >>> h, c = reset_carry((h, c), jnp.array([True, False]))
      >>> h[:, 0], c[:, 0]
      (Array([0., 1.], dtype=float32), Array([0., 1.], dtype=float32))
    """
    reset_mask = jnp.asarray(reset_mask)
    if reset_mask.dtype != jnp.bool_:
        raise TypeError(
            f"`reset_mask` must be a bool array, got {reset_mask.dtype}."
        )
    if reset_mask.ndim != 1:
        raise ValueError(
            f"`reset_mask` must have shape (B,), got {reset_mask.shape}."
        )
    for i, leaf in enumerate(jax.tree.leaves(carry)):
        if np.ndim(leaf) < 1 or np.shape(leaf)[0] != reset_mask.shape[0]:
            raise ValueError(
                f"carry leaf {i} must have shape "
                f"({reset_mask.shape[0]}, ...) to match "
                f"`reset_mask`, got {np.shape(leaf)}."
            )
    return jax.tree.map(
        lambda leaf: jnp.where(
            broadcast_over(reset_mask, leaf), jnp.zeros((), leaf.dtype), leaf
        ),
        carry,
    )
