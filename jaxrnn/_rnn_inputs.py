"""What `rnn` makes of its arguments, checked here at the public boundary:
its options; its inputs, batched or not and time-major or not, the mask
from `mask` or `seq_lengths` and the initial carry, in its engines' layout;
and the outputs back in the caller's layout."""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxrnn._masking import lengths_to_mask
from jaxrnn._validation import check_bool, check_floating, check_tree_like


def check_options(*, unroll: bool | int, **flags: bool) -> None:
    """Raises unless each flag is a bool, `unroll` a bool or a positive
    int, and no option is one that the others make meaningless."""
    for name, value in flags.items():
        check_bool(name, value)
    if not isinstance(unroll, bool) and (
        not isinstance(unroll, numbers.Integral) or unroll < 1
    ):
        raise ValueError(
            f"`unroll` must be a bool or a positive int, got {unroll!r}."
        )
    # Options that would be accepted only to be ignored.
    if flags["keep_order"] and not flags["go_backwards"]:
        raise ValueError(
            "`keep_order=True` reorders the outputs of `go_backwards=True` "
            "and means nothing without it, got go_backwards=False; drop "
            "keep_order (forward outputs are already aligned with inputs)."
        )
    if flags["remat"] and unroll is True:
        raise ValueError(
            "`remat=True` keeps one carry per chunk of steps, and "
            "`unroll=True` makes the whole sequence one chunk, so together "
            "they save nothing; got unroll=True, remat=True. Drop one (an "
            "int unroll factor works with remat)."
        )


def checked_inputs(
    inputs: ArrayLike, time_major: bool, input_ndim: int = 1
) -> tuple[jax.Array, bool]:
    """Returns (inputs, whether the call was batched): batched inputs as
    they came, unbatched ones as `(T, 1, *features)`."""
    inputs = jnp.asarray(inputs)
    check_floating("inputs", inputs)
    if inputs.ndim == input_ndim + 1:
        xs, batched = inputs[:, None], False
    elif inputs.ndim == input_ndim + 2:
        xs, batched = inputs, True
    else:
        features = (
            "D"
            if input_ndim == 1
            else ", ".join(f"F{i}" for i in range(1, input_ndim + 1))
        )
        layout = f"(T, B, {features})" if time_major else f"(B, T, {features})"
        raise ValueError(
            f"`inputs` must have shape {layout} or unbatched "
            f"(T, {features}), got {inputs.shape} (rank "
            f"{inputs.ndim})."
        )
    if xs.shape[0 if time_major or not batched else 1] == 0:
        raise ValueError(
            f"`inputs` must have at least one time step, got "
            f"shape {inputs.shape}."
        )
    return xs, batched


def time_major_mask(
    mask: ArrayLike | None,
    seq_lengths: ArrayLike | None,
    batched: bool,
    time_major: bool,
    steps: int,
    batch: int,
) -> jax.Array | None:
    """Returns the (T, B) bool mask that `mask` or `seq_lengths` stands for."""
    if mask is not None and seq_lengths is not None:
        raise ValueError("Give `mask` or `seq_lengths`, not both.")
    if seq_lengths is not None:
        seq_lengths = jnp.asarray(seq_lengths)
        want = (batch,) if batched else ()
        if not jnp.issubdtype(seq_lengths.dtype, jnp.integer):
            raise TypeError(
                "`seq_lengths` must have an integer dtype, got "
                f"{seq_lengths.dtype}."
            )
        if seq_lengths.shape != want:
            raise ValueError(
                f"`seq_lengths` must have shape {want}, got "
                f"{seq_lengths.shape}."
            )
        # lengths_to_mask refuses lengths outside [0, T] where it can see
        # them (not under jit).
        return lengths_to_mask(seq_lengths.reshape(batch), steps).T
    if mask is None:
        return None
    mask = jnp.asarray(mask)
    if mask.dtype != jnp.bool_:
        raise TypeError(
            f"`mask` must be a bool array, got {mask.dtype} "
            "(use mask.astype(bool))."
        )
    if not batched:
        want = (steps,)
    else:
        want = (steps, batch) if time_major else (batch, steps)
    if mask.shape != want:
        raise ValueError(f"`mask` must have shape {want}, got {mask.shape}.")
    if not batched:
        return mask[:, None]
    return mask if time_major else mask.T


def batched_carry(
    cell: Any, initial_carry: Any, batched: bool, batch: int
) -> Any:
    """The carry to start from with a batch axis: the cell's zeros, or
    `initial_carry` checked against them (and given a batch axis of one
    where the call is unbatched)."""
    if initial_carry is None:
        return cell.initial_carry((batch,))
    expected = jax.eval_shape(
        lambda: cell.initial_carry((batch,) if batched else ())
    )
    check_tree_like("initial_carry", initial_carry, expected)
    for leaf in jax.tree.leaves(initial_carry):
        check_floating("initial_carry", leaf)
    carry = jax.tree.map(jnp.asarray, initial_carry)
    if not batched:
        carry = jax.tree.map(lambda leaf: leaf[None], carry)
    return carry


def restore_layout(
    ys: jax.Array, batched: bool, time_major: bool
) -> jax.Array:
    """Time-major outputs (T, B, ...) in the layout the inputs came in."""
    if not batched:
        return ys[:, 0]
    return ys if time_major else jnp.swapaxes(ys, 0, 1)
