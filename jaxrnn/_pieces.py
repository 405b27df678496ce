"""Loops over the pieces of a sequence: the plumbing of the split-step scan.

`scan_pieces` runs a body over consecutive pieces of `size` steps (a
`lax.scan` over the full pieces, a direct call for the shorter last one),
in time order or reversed, over time-major sequences or batch-major ones
read and written a piece at a time in place. The loop buffers are 2-D
rows and a piece's index rides in the loop's carry: each form was measured
against XLA:CPU's copies and kernels (docs/design-notes.md#the-step-loop,
docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import jax
import jax.numpy as jnp
from jax import lax

# `body(carry, piece, entry) -> (carry, out)`: one piece's work.
Body = Callable[[Any, Any, Any], tuple[Any, Any]]


class Layout(TypedDict, total=False):
    """`scan_pieces`' layout arguments (`batch_major_layout`)."""

    batch_major: tuple[int, ...]
    batch_major_out: tuple[int, ...]


def _pieces(steps: int, size: int) -> tuple[int, int]:
    """(number of full pieces of `size` steps, steps left over)."""
    return divmod(steps, size)


def scan_pieces(
    body: Body,
    carry: Any,
    seq: Any,
    size: int,
    *,
    unroll: int = 1,
    reverse: bool = False,
    per_piece: Any = None,
    hand_on: bool = False,
    batch_major: tuple[int, ...] = (),
    batch_major_out: tuple[int, ...] = (),
) -> tuple[Any, Any]:
    """Runs `body(carry, seq_piece, per_piece_entry) -> (carry, out)` over
    consecutive pieces of `size` steps of `seq` (leading axis time) and a
    shorter last piece; `lax.scan` over the full ones, a direct call for
    the last (and for a lone full piece). `per_piece` has one entry per
    piece. Outputs, leading axis per step of their piece, are concatenated
    in time order; with `reverse` the pieces run last to first.

    With `batch_major` or `batch_major_out`, `seq` and `out` are tuples
    and their elements at those positions have time on axis 1
    (`_scan_batch_major_pieces`).

    With `hand_on`, each iteration copies the piece that runs next into the
    loop's carry and runs the one its predecessor copied: XLA:CPU compiles
    elementwise fusions that read a dynamic slice of the scanned sequence
    into loops 5-10x slower than the same work on a buffer of their own."""
    if batch_major or batch_major_out:
        if hand_on:
            raise ValueError("hand_on takes time-major pieces only.")
        return _scan_batch_major_pieces(
            body,
            carry,
            seq,
            size,
            unroll=unroll,
            reverse=reverse,
            per_piece=per_piece,
            batch_major=batch_major,
            batch_major_out=batch_major_out,
        )
    steps = jax.tree.leaves(seq)[0].shape[0]
    full, tail = _pieces(steps, size)

    def piece_of(tree, start, stop):
        return jax.tree.map(lambda leaf: leaf[start:stop], tree)

    def run_full(carry):
        entries = piece_of(per_piece, 0, full)
        if full == 1:
            return body(carry, piece_of(seq, 0, size), tree_at(entries, 0))
        # The loop reads and writes 2-D (pieces, rest) buffers: with a unit
        # axis among theirs (a piece of one step, a batch of one), XLA:CPU
        # placed it differently inside the loop and out, and copied each
        # such buffer between the two layouts on every call.
        body_seq = jax.tree.map(
            lambda leaf: _rows(leaf[: full * size], full), seq
        )
        flat_body = _OnRows(body, seq, entries, size)
        entry_rows = jax.tree.map(lambda entry: _rows(entry, full), entries)
        if hand_on:
            step = -1 if reverse else 1

            def handing_on(state, index, entry):
                carry, current = state
                upcoming = tree_at(
                    body_seq, jnp.clip(index + step, 0, full - 1)
                )
                carry, out = flat_body(carry, current, entry)
                return (carry, upcoming), out

            first = tree_at(body_seq, full - 1 if reverse else 0)
            ((carry, _), _), out = lax.scan(
                _counting(handing_on, reverse),
                ((carry, first), _first_index(full, reverse)),
                entry_rows,
                length=full,
                reverse=reverse,
                unroll=unroll,
            )
        else:
            carry, out = lax.scan(
                lambda c, xs: flat_body(c, *xs),
                carry,
                (body_seq, entry_rows),
                reverse=reverse,
                unroll=unroll,
            )
        return carry, flat_body.unflatten(out)

    def run_tail(carry):
        entry = jax.tree.map(lambda leaf: leaf[full], per_piece)
        return body(carry, piece_of(seq, full * size, steps), entry)

    return _run_in_order(
        [run_full] * bool(full) + [run_tail] * bool(tail), carry, reverse
    )


def _first_index(pieces: int, reverse: bool) -> jax.Array:
    return jnp.int32(pieces - 1 if reverse else 0)


def _counting(
    body: Callable[[Any, Any, Any], tuple[Any, Any]], reverse: bool
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """`lax.scan`'s body for `body(state, index, entry) -> (state, out)`,
    with the piece's index (int32) carried beside the state, starting at
    `_first_index`. XLA merges it with the loop's own counter; scanned from
    an `arange` instead, it was an array to build and read every
    iteration."""

    def counting(state_and_index, entry):
        state, index = state_and_index
        state, out = body(state, index, entry)
        return (state, index - 1 if reverse else index + 1), out

    return counting


def _run_in_order(
    runs: list[Callable[[Any], tuple[Any, Any]]], state: Any, reverse: bool
) -> tuple[Any, Any]:
    """Runs `runs` (`run(state) -> (state, out)`, in time order) one after
    another, last to first with `reverse`; returns (state, their outs
    concatenated in time order)."""
    outs = []
    for run in reversed(runs) if reverse else runs:
        state, out = run(state)
        outs.append(out)
    if reverse:
        outs.reverse()
    out = (
        outs[0]
        if len(outs) == 1
        else jax.tree.map(lambda *parts: jnp.concatenate(parts), *outs)
    )
    return state, out


def _scan_batch_major_pieces(
    body: Body,
    carry: Any,
    seq: tuple[Any, ...],
    size: int,
    *,
    unroll: int,
    reverse: bool,
    per_piece: Any,
    batch_major: tuple[int, ...],
    batch_major_out: tuple[int, ...],
) -> tuple[Any, Any]:
    """`scan_pieces` where the elements of the tuple `seq` at the positions
    `batch_major` are (B, T, ...), as are those of the body's tuple `out`
    at `batch_major_out`: the loop slices each piece out of them and writes
    each output piece into one (B, T, ...) buffer (the last, shorter piece
    too), so a batch-major sequence is never copied or transposed whole.
    Time-major elements are scanned and concatenated as `scan_pieces`
    does."""
    steps = jax.tree.leaves(seq[batch_major[0]])[0].shape[1]
    full, tail = _pieces(steps, size)

    def piece_at(start, length):
        """The piece of `seq` at step `start` (an int or a traced index)."""
        return tuple(
            jax.tree.map(
                lambda leaf, i=i: lax.dynamic_slice_in_dim(
                    leaf, start, length, axis=1 if i in batch_major else 0
                ),
                element,
            )
            for i, element in enumerate(seq)
        )

    def write(buffers, out, start):
        """Writes the batch-major outputs of a piece at step `start`;
        returns (buffers, the rest of out)."""
        buffers = {
            i: jax.tree.map(
                lambda buffer, piece: lax.dynamic_update_slice_in_dim(
                    buffer, piece, start, axis=1
                ),
                buffer,
                out[i],
            )
            for i, buffer in buffers.items()
        }
        return buffers, tuple(
            None if i in buffers else part for i, part in enumerate(out)
        )

    first_length = size if full else tail
    out_shapes = jax.eval_shape(
        lambda c: body(c, piece_at(0, first_length), tree_at(per_piece, 0))[1],
        carry,
    )
    buffers = {
        i: jax.tree.map(
            lambda shape: jnp.zeros(
                (shape.shape[0], steps, *shape.shape[2:]), shape.dtype
            ),
            out_shapes[i],
        )
        for i in batch_major_out
    }

    def run_full(state):
        def iteration(state, index, entry):
            carry, buffers = state
            start = lax.convert_element_type(index, jnp.uint32) * size
            carry, out = body(carry, piece_at(start, size), entry)
            buffers, out = write(buffers, out, start)
            return (carry, buffers), out

        entries = jax.tree.map(lambda leaf: leaf[:full], per_piece)
        if full == 1:
            return iteration(state, 0, tree_at(entries, 0))
        # Rows, as in `scan_pieces`. An unsigned index spares every dynamic
        # slice JAX's wrapping of negative starts, a kernel per iteration.
        on_rows = _OnRows(iteration, None, entries, size)
        (state, _), out = lax.scan(
            _counting(on_rows, reverse),
            (state, _first_index(full, reverse)),
            jax.tree.map(lambda entry: _rows(entry, full), entries),
            length=full,
            reverse=reverse,
            unroll=unroll,
        )
        return state, on_rows.unflatten(out)

    def run_tail(state):
        carry, buffers = state
        carry, out = body(
            carry, piece_at(full * size, tail), tree_at(per_piece, full)
        )
        buffers, out = write(buffers, out, full * size)
        return (carry, buffers), out

    (carry, buffers), out = _run_in_order(
        [run_full] * bool(full) + [run_tail] * bool(tail),
        (carry, buffers),
        reverse,
    )
    return carry, tuple(buffers.get(i, part) for i, part in enumerate(out))


def tree_at(tree: Any, k: Any) -> Any:
    """Each leaf of `tree` indexed by `k` (an int, a traced index, a
    slice)."""
    return jax.tree.map(lambda leaf: leaf[k], tree)


def _rows(a: jax.Array, count: int) -> jax.Array:
    """`a` as `count` rows: (count, rest), or (count,) where rest is 1."""
    rest = a.size // count
    return a.reshape(count, *(() if rest == 1 else (rest,)))


class _OnRows:
    """`body(carry, piece, entry) -> (carry, out)` taking its piece (`size`
    steps of `seq`; with `seq` None, the piece as it comes) and entry (one
    of `entries`) as flat rows and handing its out back as a flat row;
    ``.unflatten(stacked)`` turns the stacked rows of its outs back into
    arrays, the pieces' leading axes joined."""

    def __init__(self, body: Body, seq: Any, entries: Any, size: int):
        self.body, self.seq, self.entries, self.size = body, seq, entries, size
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, carry: Any, piece: Any, entry: Any) -> tuple[Any, Any]:
        if self.seq is not None:
            piece = jax.tree.map(
                lambda row, leaf: row.reshape(self.size, *leaf.shape[1:]),
                piece,
                self.seq,
            )
        entry = jax.tree.map(
            lambda row, leaf: row.reshape(leaf.shape[1:]), entry, self.entries
        )
        carry, out = self.body(carry, piece, entry)
        self.shapes[:] = [leaf.shape for leaf in jax.tree.leaves(out)]
        return carry, jax.tree.map(lambda leaf: _rows(leaf[None], 1)[0], out)

    def unflatten(self, stacked: Any) -> Any:
        leaves, tree = jax.tree.flatten(stacked)
        return tree.unflatten(
            [
                leaf.reshape(-1, *shape[1:])
                for leaf, shape in zip(leaves, self.shapes)
            ]
        )


def swap_layout(piece: jax.Array, time_axis: int) -> jax.Array:
    """A piece of a sequence between (S, B, ...) and its layout: swapped
    (either way) where `time_axis` is 1."""
    return piece if time_axis == 0 else jnp.swapaxes(piece, 0, 1)


def batch_major_layout(
    time_axis: int,
    seq_positions: tuple[int, ...],
    out_positions: tuple[int, ...],
) -> Layout:
    """`scan_pieces`' layout arguments: with `time_axis` 1 the sequences
    at `seq_positions` and the outputs at `out_positions` are (B, T, ...)."""
    if time_axis == 0:
        return Layout()
    return Layout(batch_major=seq_positions, batch_major_out=out_positions)
