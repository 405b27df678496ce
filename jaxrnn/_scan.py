"""The plain chunked scan: `rnn`'s engine for every cell and option that
the split-step scan (jaxrnn/_fused.py) and the parallel scan
(jaxrnn/_parallel.py) do not take, differentiated by JAX's autodiff.

Each iteration of a `lax.scan` projects a chunk of K steps at once (for a
cell with the projected step: one ``(K*B, D) x (D, G*H)`` GEMM) and runs
the chunk's steps unrolled, each reading a static slice
(docs/design-notes.md#how-rnn-lays-out-the-recurrence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxrnn._masking import masked_chunk_outputs

# `step(carry, x, keep) -> (carry, y)`; where `keep` (bool (B,) or None)
# is False the carry comes back unchanged.
Step = Callable[[Any, jax.Array, jax.Array | None], tuple[Any, jax.Array]]


def run_scan(
    cell: Any,
    project: Callable[[jax.Array], jax.Array],
    step: Step,
    xs: jax.Array,
    step_mask: jax.Array | None,
    carry: Any,
    *,
    chunk: int,
    unroll: int,
    remat: bool,
    zero_output: bool,
    collect: bool,
) -> tuple[jax.Array | None, jax.Array, Any]:
    """Scans chunks of steps.

    Args:
      cell: the cell, for error messages.
      project: the hoisted input half, (K, B, ...) -> (K, B, ...) (the
        identity for a cell that runs whole).
      step: the rest of a step, from one step's projected input.
      xs: (T, B, ...) time-major inputs, zero at masked steps.
      step_mask: bool (T, B) or None.
      carry: the batched initial carry, leaves (B, ...).
      chunk: steps per chunk, K (T: one chunk, no loop).
      unroll: `lax.scan`'s unroll factor over chunks.
      remat: `jax.checkpoint` each chunk.
      zero_output: masked steps output zeros instead of repeating the
        row's last valid output.
      collect: return the outputs of every step.

    Returns:
      ``(ys (T, B, ...) or None, last y (B, ...), final carry)``.

    Raises:
      ValueError: the cell's step does not return ``(new_carry, y)``
        shaped like its carry.
    """
    steps, batch = xs.shape[:2]

    def run_chunk(state, chunk_xs, chunk_mask):
        carry, y_prev = state
        projected = project(chunk_xs)  # (K, B, G*H)
        ys = []
        for k in range(chunk_xs.shape[0]):
            keep = None if chunk_mask is None else chunk_mask[k]
            carry, y = step(carry, projected[k], keep)
            ys.append(y)
        ys, y_prev = masked_chunk_outputs(
            jnp.stack(ys), chunk_mask, y_prev, zero_output
        )
        return (carry, y_prev), (ys if collect else None)

    if remat:
        run_chunk = jax.checkpoint(run_chunk)
    new_carry, y_shape = jax.eval_shape(
        lambda c, x: step(c, project(x[None])[0], None), carry, xs[0]
    )
    _check_step_output(cell, carry, new_carry, y_shape)
    state = (carry, jnp.zeros(y_shape.shape, y_shape.dtype))

    full, tail = divmod(steps, chunk)
    parts = []
    if full == 1:
        state, ys = run_chunk(
            state, xs[:chunk], None if step_mask is None else step_mask[:chunk]
        )
        parts.append(ys)
    else:
        body_xs = xs[: full * chunk].reshape(full, chunk, *xs.shape[1:])
        body_mask = (
            None
            if step_mask is None
            else step_mask[: full * chunk].reshape(full, chunk, batch)
        )
        state, ys = lax.scan(
            lambda s, c: run_chunk(s, *c),
            state,
            (body_xs, body_mask),
            unroll=unroll,
        )
        if ys is not None:  # None unless `collect`
            parts.append(ys.reshape(full * chunk, *ys.shape[2:]))
    if tail:
        state, ys = run_chunk(
            state,
            xs[full * chunk :],
            None if step_mask is None else step_mask[full * chunk :],
        )
        parts.append(ys)
    carry, last_y = state
    ys = (
        (parts[0] if len(parts) == 1 else jnp.concatenate(parts))
        if collect
        else None
    )
    return ys, last_y, carry


def _check_step_output(cell: Any, carry: Any, new_carry: Any, y: Any) -> None:
    """Raises ValueError unless a step returned (new_carry, y): new_carry
    with the structure and leaf shapes of `carry`, y one array. Checked on
    shapes (jax.eval_shape), so a cell that returns (y, new_carry) is named
    before `lax.scan` or a mask's select trips over it."""
    fits = (
        jax.tree.structure(new_carry) == jax.tree.structure(carry)
        and all(
            np.shape(a) == np.shape(b)
            for a, b in zip(jax.tree.leaves(new_carry), jax.tree.leaves(carry))
        )
        and isinstance(y, jax.ShapeDtypeStruct)
    )
    if not fits:
        raise ValueError(
            f"`cell` ({type(cell).__name__}) must return (new_carry, y): "
            f"new_carry like the carry it takes, {_describe_tree(carry)}, "
            f"and y one array; it returned ({_describe_tree(new_carry)}, "
            f"{_describe_tree(y)}). If it returns (y, new_carry), swap "
            "them."
        )


def _describe_tree(tree: Any) -> str:
    leaves = jax.tree.leaves(tree)
    if len(leaves) == 1 and jax.tree.structure(tree).num_nodes == 1:
        return f"an array of shape {tuple(np.shape(leaves[0]))}"
    return (
        f"{jax.tree.structure(tree)} with leaf shapes "
        f"{[tuple(np.shape(leaf)) for leaf in leaves]}"
    )
