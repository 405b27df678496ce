"""A whole-sequence recurrence with a hand-written backward pass.

For cells whose step splits into an input projection, one recurrent matmul
and elementwise gates (``project_inputs``, ``recurrent_input``,
``project_recurrent``, ``apply_gates``: the built-in LSTM, GRU with
``reset_after`` and SimpleRNN, and any custom cell that offers them),
autodiff of the scan saves every step's gate activations and accumulates
rank-B updates of every weight inside the backward loop. Here the forward
pass saves each step's previous carry (the memory of `remat` at the speed
of no remat) and, for wide cells only, each step's input and recurrent
projections; the backward pass walks blocks of S steps in reverse (`S*B`
about `SPLIT_STEP_BLOCK_ROWS` rows): it recomputes the block's input and
recurrent projections, where they were not saved, with one
``(S*B, ...) x (..., G*H)`` GEMM each, keeps only what must be sequential
inside a loop over the block's steps (the gate gradients and the carry's
gradient through one ``(B, G*H) x (G*H, H)`` matmul per step), then gets
the block's kernel, recurrent-kernel, bias and input gradients from one
GEMM each with `S*B` rows. Unless the projections are saved, no
`(T, B, G*H)` array is ever materialised, so nothing large is allocated,
mapped and page-faulted per call; and XLA's CPU GEMMs run about twice as
fast with 512 rows as with 64.

The forward pass is the same chunked scan as `jaxrnn.rnn`'s: one
``(K*B, D) x (D, G*H)`` GEMM per chunk, the K steps unrolled so each reads a
static slice.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxrnn._masking import broadcast_over, keep_where, masked_chunk_outputs

# What the forward pass saves for the backward pass (`split_step_scan`).
SAVED = ("carries", "projections", "chunk_carries")


def _trace_types() -> tuple[type | None, type | None]:
    """JAX's (JVPTrace, LinearizeTrace) classes, None where this JAX
    version has no such class."""
    try:
        from jax._src.interpreters import ad
    except ImportError:  # pragma: no cover - a JAX that moved its internals
        return None, None
    return getattr(ad, "JVPTrace", None), getattr(ad, "LinearizeTrace", None)


def forward_differentiated(tree: Any) -> bool:
    """Whether forward-mode autodiff (`jax.jvp`, `jax.jacfwd`) sees a leaf
    of `tree`: a custom_vjp function such as `split_step_scan` would fail
    there ("can't apply forward-mode autodiff (jvp) to a custom_vjp
    function"), so `jaxrnn.rnn` takes its plain scan instead.

    The innermost differentiating trace under each tracer decides: JAX
    handles the custom_vjp call there. Reverse mode (`jax.grad`,
    `jax.vjp`) traces with a LinearizeTrace, even inside
    an outer `jax.jacfwd` (a Hessian), and keeps the hand-written backward
    pass; a JVPTrace means forward mode, unless it stages its tangents for
    linearisation (JAX without ``jax_use_direct_linearize``). Only the
    traces above `rnn`'s own call are visible: a `jax.jvp` applied outside
    a `jax.jit` that encloses `rnn` is not (the jit traces first).
    """
    jvp_trace, linearize_trace = _trace_types()
    if jvp_trace is None:
        return False
    for leaf in jax.tree.leaves(tree):
        trace = (
            getattr(leaf, "_trace", None)
            if isinstance(leaf, jax.core.Tracer)
            else None
        )
        while trace is not None:
            if linearize_trace is not None and isinstance(
                trace, linearize_trace
            ):
                break
            if isinstance(trace, jvp_trace):
                parent = getattr(trace, "parent_trace", None)
                if type(parent).__name__ != "JaxprTrace":
                    return True
                break
            trace = getattr(trace, "parent_trace", None)
    return False


def _pieces(steps: int, size: int) -> tuple[int, int]:
    """(number of full pieces of `size` steps, steps left over)."""
    return divmod(steps, size)


def _scan_pieces(
    body,
    carry,
    seq,
    size,
    *,
    unroll=1,
    reverse=False,
    per_piece=None,
    hand_on=False,
    batch_major=(),
    batch_major_out=(),
):
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
            return body(carry, piece_of(seq, 0, size), _index(entries, 0))
        # The loop reads and writes 2-D (pieces, rest) buffers: with a unit
        # axis among theirs (a piece of one step, a batch of one), XLA:CPU
        # placed it differently inside the loop and out, and copied each
        # such buffer between the two layouts on every call.
        body_seq = jax.tree.map(
            lambda leaf: _rows(leaf[: full * size], full), seq
        )
        flat_body = _on_rows(body, seq, entries, size)
        entry_rows = jax.tree.map(lambda entry: _rows(entry, full), entries)
        if hand_on:
            step = -1 if reverse else 1

            def handing_on(state, index, entry):
                carry, current = state
                upcoming = _index(
                    body_seq, jnp.clip(index + step, 0, full - 1)
                )
                carry, out = flat_body(carry, current, entry)
                return (carry, upcoming), out

            first = _index(body_seq, full - 1 if reverse else 0)
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


def _first_index(pieces, reverse):
    return jnp.int32(pieces - 1 if reverse else 0)


def _counting(body, reverse):
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


def _run_in_order(runs, state, reverse):
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
    body,
    carry,
    seq,
    size,
    *,
    unroll,
    reverse,
    per_piece,
    batch_major,
    batch_major_out,
):
    """`_scan_pieces` where the elements of the tuple `seq` at the positions
    `batch_major` are (B, T, ...), as are those of the body's tuple `out`
    at `batch_major_out`: the loop slices each piece out of them and writes
    each output piece into one (B, T, ...) buffer (the last, shorter piece
    too), so a batch-major sequence is never copied or transposed whole.
    Time-major elements are scanned and concatenated as `_scan_pieces`
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
        lambda c: body(c, piece_at(0, first_length), _index(per_piece, 0))[1],
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
            return iteration(state, 0, _index(entries, 0))
        # Rows, as in `_scan_pieces`. An unsigned index spares every dynamic
        # slice JAX's wrapping of negative starts, a kernel per iteration.
        on_rows = _on_rows(iteration, None, entries, size)
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
            carry, piece_at(full * size, tail), _index(per_piece, full)
        )
        buffers, out = write(buffers, out, full * size)
        return (carry, buffers), out

    (carry, buffers), out = _run_in_order(
        [run_full] * bool(full) + [run_tail] * bool(tail),
        (carry, buffers),
        reverse,
    )
    return carry, tuple(buffers.get(i, part) for i, part in enumerate(out))


def apply_gates(cell, carry, projected, recurrent, keep):
    """One step's elementwise rest, ``(new carry, y)``; where `keep` (bool
    (B,) or None) is False the carry comes back unchanged and y is
    unspecified. A cell whose ``gates_take_keep`` is true holds it itself
    (through its gates: a select of the carry after the step let XLA:CPU
    split and copy the gate kernels of an unrolled chunk); others get a
    select."""
    if keep is None:
        return cell.apply_gates(carry, projected, recurrent)
    if getattr(cell, "gates_take_keep", False):
        return cell.apply_gates(carry, projected, recurrent, keep=keep)
    new_carry, y = cell.apply_gates(carry, projected, recurrent)
    return keep_where(keep, new_carry, carry), y


def gates_add_projections(cell, carry, projected, recurrent, keep=None):
    """Whether `cell`'s step reads the two projections only through their
    sum, as the LSTM's and SimpleRNN's do (the GRU's does not: its reset
    gate scales the recurrent one alone): in the step traced on abstract
    values (ShapeDtypeStructs or arrays; nothing is computed), with
    `keep` (B,) where masked runs, each of the two is used once, by the
    same addition. A step that adds them and also reads one of them
    elsewhere, even where no gradient flows (a comparison,
    `stop_gradient`), does not qualify."""
    abstract = jax.tree.map(
        lambda leaf: jax.ShapeDtypeStruct(jnp.shape(leaf), leaf.dtype),
        (keep, carry, projected, recurrent),
    )
    jaxpr = jax.make_jaxpr(lambda k, c, p, r: apply_gates(cell, c, p, r, k))(
        *abstract
    ).jaxpr
    pair = jaxpr.invars[-2:]
    readers = [
        eqn
        for eqn in jaxpr.eqns
        if any(v is u for v in eqn.invars for u in pair)
    ]
    return (
        len(jax.tree.leaves(abstract[2:])) == 2
        and len(readers) == 1
        and readers[0].primitive is lax.add_p
        and sorted(map(id, readers[0].invars)) == sorted(map(id, pair))
        and not any(v is u for v in jaxpr.outvars for u in pair)
    )


def _index(tree, k):
    return jax.tree.map(lambda leaf: leaf[k], tree)


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _flat(a):
    return a.reshape(-1, *a.shape[2:])


def _rows(a, count):
    """`a` as `count` rows: (count, rest), or (count,) where rest is 1."""
    rest = a.size // count
    return a.reshape(count, *(() if rest == 1 else (rest,)))


def _on_rows(body, seq, entries, size):
    """`body(carry, piece, entry) -> (carry, out)` taking its piece (`size`
    steps of `seq`; with `seq` None, the piece as it comes) and entry (one
    of `entries`) as flat rows and handing its out back as a flat row;
    ``.unflatten(stacked)`` turns the stacked rows of its outs back into
    arrays, the pieces' leading axes joined."""
    shapes = []

    def on_rows(carry, piece, entry):
        if seq is not None:
            piece = jax.tree.map(
                lambda row, leaf: row.reshape(size, *leaf.shape[1:]),
                piece,
                seq,
            )
        entry = jax.tree.map(
            lambda row, leaf: row.reshape(leaf.shape[1:]), entry, entries
        )
        carry, out = body(carry, piece, entry)
        shapes[:] = [leaf.shape for leaf in jax.tree.leaves(out)]
        return carry, jax.tree.map(lambda leaf: _rows(leaf[None], 1)[0], out)

    def unflatten(stacked):
        leaves, tree = jax.tree.flatten(stacked)
        return tree.unflatten(
            [
                leaf.reshape(-1, *shape[1:])
                for leaf, shape in zip(leaves, shapes)
            ]
        )

    on_rows.unflatten = unflatten
    return on_rows


def _steps(cell, params, projected, keep, carry, chunk, unroll):
    """Runs the steps of a block from its projected inputs `(S, B, G*H)`:
    chunks of `chunk` steps, unrolled so each step reads a static slice.
    Returns (carry, (ys (S, B, ...), every step's previous carry, every
    step's recurrent projection `(S, B, G*H)`))."""

    def run_chunk(carry, chunk_projected, chunk_keep):
        dtype = chunk_projected.dtype
        ys, previous, recurrents = [], [], []
        for k in range(chunk_projected.shape[0]):
            h_in = cell.recurrent_input(carry, None, dtype)
            recurrent = cell.project_recurrent(params, h_in)
            previous.append(carry)
            recurrents.append(recurrent)
            carry, y = apply_gates(
                cell,
                carry,
                chunk_projected[k],
                recurrent,
                None if chunk_keep is None else chunk_keep[k],
            )
            ys.append(y)
        return carry, (jnp.stack(ys), _stack(previous), jnp.stack(recurrents))

    # Gate fusions that read a dynamic slice of the block's projection
    # (scan's xs) compile to slow loops, hence `hand_on`.
    return _scan_pieces(
        lambda c, piece, _: run_chunk(c, *piece),
        carry,
        (projected, keep),
        chunk,
        unroll=unroll,
        hand_on=True,
    )


def _forward(
    cell,
    chunk,
    unroll,
    zero_output,
    time_axis,
    params,
    xs,
    keep,
    carry,
    saved,
    residuals,
):
    """Runs the steps, one input-projection GEMM per chunk of K steps
    (larger blocks made the forward slower: their projection falls out of
    cache); returns (ys (T, B, ...) or with `time_axis` 1 (B, T, ...),
    carry, last y[, with `residuals` what `saved` names: every step's
    previous carry, with "projections" also every step's input and
    recurrent projections `(T, B, G*H)` (where `gates_add_projections`, their
    sum and None), with "chunk_carries" every chunk's first carry
    instead]). Masked steps' outputs follow
    `masked_chunk_outputs`."""
    # Checked here, which both the primal and the differentiated forward
    # pass run: differentiation never calls `split_step_scan` itself.
    if saved not in SAVED:
        raise ValueError(f"saved must be one of {SAVED}; got {saved!r}.")

    def run_chunk(state, inputs, _):
        carry, last = state
        chunk_xs, chunk_keep = inputs
        first = carry
        chunk_xs = _zero_masked(_swap_layout(chunk_xs, time_axis), chunk_keep)
        projected = cell.project_inputs(params, chunk_xs)  # (K, B, G*H)
        carry, (ys, previous, recurrent) = _steps(
            cell, params, projected, chunk_keep, carry, chunk, unroll
        )
        ys, last = masked_chunk_outputs(ys, chunk_keep, last, zero_output)
        ys = _swap_layout(ys, time_axis)
        if not residuals:
            return (carry, last), (ys,)
        if saved == "chunk_carries":
            previous = jax.tree.map(lambda leaf: leaf[None], first)
        elif saved == "projections":
            # Gates that add the projections first need only their sum: one
            # (T, B, G*H) sequence saved instead of two.
            previous = (
                (previous, projected + recurrent, None)
                if summed
                else (previous, projected, recurrent)
            )
        return (carry, last), (ys, previous)

    one_step = jax.ShapeDtypeStruct(
        (1, xs.shape[1 - time_axis], *xs.shape[2:]), xs.dtype
    )

    def first_step(c, x):
        projected = cell.project_inputs(params, x)
        _, (ys, _, recurrent) = _steps(cell, params, projected, None, c, 1, 1)
        return ys[0], projected[0], recurrent[0]

    first_y, first_projected, first_recurrent = jax.eval_shape(
        first_step, carry, one_step
    )
    summed = (
        residuals
        and saved == "projections"
        and gates_add_projections(
            cell,
            carry,
            first_projected,
            first_recurrent,
            None if keep is None else keep[0],
        )
    )
    last = jnp.zeros(first_y.shape, first_y.dtype)
    (carry, last), out = _scan_pieces(
        run_chunk,
        (carry, last),
        (xs, keep),
        chunk,
        unroll=unroll,
        **_batch_major(time_axis, (0,), (0,)),
    )
    if not residuals:
        return out[0], carry, last
    ys, previous = out
    return ys, carry, last, previous


def _zero_masked(piece, keep):
    """A piece of inputs (S, B, ...) with its masked steps zeroed, so that
    NaN or inf there reaches neither the projections nor the gradients."""
    if keep is None:
        return piece
    return jnp.where(
        broadcast_over(keep, piece), piece, jnp.zeros((), piece.dtype)
    )


def _swap_layout(piece, time_axis):
    """A piece of a sequence between (S, B, ...) and its layout: swapped
    (either way) where `time_axis` is 1."""
    return piece if time_axis == 0 else jnp.swapaxes(piece, 0, 1)


def _batch_major(time_axis, seq_positions, out_positions):
    """`_scan_pieces`' layout arguments: with `time_axis` 1 the sequences
    at `seq_positions` and the outputs at `out_positions` are (B, T, ...)."""
    if time_axis == 0:
        return {}
    return {"batch_major": seq_positions, "batch_major_out": out_positions}


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3, 4, 5, 6))
def split_step_scan(
    cell: Any,
    chunk: int,
    block: int,
    unroll: int,
    saved: str,
    zero_output: bool,
    time_axis: int,
    params: Any,
    xs: jax.Array,
    keep: jax.Array | None,
    carry: Any,
) -> tuple[jax.Array, Any, jax.Array]:
    """Runs a split-step cell over a sequence.

    Args:
      cell: a cell for which `has_split_step` holds (static).
      chunk: steps unrolled per iteration of the inner loop, K (static).
      block: steps per block of the backward pass, S, a multiple of
        `chunk` or all the steps (static): each block recomputes its
        projections and takes its weight and input gradients with one GEMM
        each of `S*B` rows, efficient where `K*B` rows are not, while its
        sequential loop takes one step per iteration (a block of one
        chunk: its K steps unrolled).
      unroll: `lax.scan`'s unroll factor over chunks (in the backward
        pass's loop over a block's steps: over steps) (static).
      saved: what the forward pass saves for the backward pass (static):
        "carries", each step's previous carry; "projections", also each
        step's input and recurrent projections (their sum alone where the
        gates add them first: LSTM, SimpleRNN), which the backward pass
        then need not recompute (faster where the projections' GEMMs
        cost more than writing `(T, B, 2*G*H)` floats: wide cells);
        "chunk_carries" (remat), only each block's first carry, from
        which the backward pass reruns the block's steps.
      zero_output: masked steps output zeros instead of repeating the
        row's last valid output (static).
      time_axis: 0 for time-major xs and ys, 1 for batch-major ones
        (static): those are read and written a piece at a time in their
        own layout, never transposed as a whole.
      params: the cell's params.
      xs: (T, B, D) inputs, (B, T, D) with `time_axis` 1.
      keep: bool (T, B) or None; a step whose entry is False keeps the
        carry, reads its input as zeros and passes it a zero gradient.
      carry: the initial carry, leaves (B, ...).

    Returns:
      ``(ys, final_carry, last)``: ys (T, B, ...) (with `time_axis` 1:
      (B, T, ...)) holds every step's output, a masked step's by Keras'
      rules (the row's last valid output, zeros before its first, or
      zeros with `zero_output`); last (B, ...) is each row's output at its
      last valid step, zeros if it has none.
    """
    del block
    return _forward(
        cell,
        chunk,
        unroll,
        zero_output,
        time_axis,
        params,
        xs,
        keep,
        carry,
        saved,
        residuals=False,
    )


def _split_step_fwd(
    cell,
    chunk,
    block,
    unroll,
    saved,
    zero_output,
    time_axis,
    params,
    xs,
    keep,
    carry,
):
    ys, final, last, previous = _forward(
        cell,
        chunk,
        unroll,
        zero_output,
        time_axis,
        params,
        xs,
        keep,
        carry,
        saved,
        residuals=True,
    )
    if saved == "chunk_carries":
        # Blocks start every block // chunk chunks (a lone block may hold a
        # partial chunk); only their first carries are kept.
        previous = _index(
            previous,
            slice(None, None, block // chunk)
            if block % chunk == 0
            else slice(0, 1),
        )
    return (ys, final, last), (params, xs, keep, previous)


def _masked_output_backward(keep, d_output, d_last, zero_output):
    """The backward step of `masked_chunk_outputs` at one step: from the
    gradients of the step's output and of the last valid output after it,
    (the gradient of the step's raw y, that of the last valid output
    before it)."""
    if keep is None:
        # Unmasked, `_split_step_bwd` has added d_last to the last step's
        # gradient already and carries none.
        return d_output, None
    total = d_output + d_last
    valid = broadcast_over(keep, total)
    zero = jnp.zeros((), total.dtype)
    return (
        jnp.where(valid, total, zero),
        jnp.where(valid, zero, d_last if zero_output else total),
    )


def _gates_backward(cell, prev, projected, recurrent, keep, d_new, d_y):
    _, gates_vjp = jax.vjp(
        lambda c, p, r: apply_gates(cell, c, p, r, keep),
        prev,
        projected,
        recurrent,
    )
    return gates_vjp((d_new, d_y))


def _split_step_bwd(
    cell,
    chunk,
    block,
    unroll,
    saved,
    zero_output,
    time_axis,
    residuals,
    cotangents,
):
    params, xs, keep, previous = residuals
    remat = saved == "chunk_carries"
    d_ys, d_carry, d_last = cotangents
    if keep is None:
        # Unmasked, the last valid output is the last step's: its gradient
        # joins that step's here, and the loops carry none (a zero carried
        # through every step cost a broadcast and two copies per step).
        last_step = (slice(None),) * time_axis + (-1,)
        d_ys = d_ys.at[last_step].add(d_last)
        d_last = None

    def back_chunk(state, inputs, _):
        d_carry, d_last = state
        (
            chunk_projected,
            chunk_recurrent,
            chunk_previous,
            chunk_keep,
            chunk_d_ys,
        ) = inputs
        dtype = chunk_projected.dtype
        d_projected, d_recurrent = [], []
        for k in reversed(range(chunk_projected.shape[0])):
            step_keep = None if chunk_keep is None else chunk_keep[k]
            d_y, d_last = _masked_output_backward(
                step_keep, chunk_d_ys[k], d_last, zero_output
            )
            prev = _index(chunk_previous, k)
            # Without a recurrent sequence the saved one is the projections'
            # sum (`_forward`), which the gates take plus zeros.
            step_recurrent = (
                jnp.zeros_like(chunk_projected[k])
                if chunk_recurrent is None
                else chunk_recurrent[k]
            )
            d_prev, d_proj, d_rec = _gates_backward(
                cell,
                prev,
                chunk_projected[k],
                step_recurrent,
                step_keep,
                d_carry,
                d_y,
            )
            _, step_vjp = jax.vjp(
                lambda c: cell.project_recurrent(
                    params, cell.recurrent_input(c, None, dtype)
                ),
                prev,
            )
            (d_prev_h,) = step_vjp(d_rec)
            d_carry = jax.tree.map(jnp.add, d_prev, d_prev_h)
            d_projected.append(d_proj)
            d_recurrent.append(d_rec)
        # Where the gates add the two projections first (LSTM, SimpleRNN),
        # autodiff hands both the same gradient: the loop writes it once,
        # not two equal (S, B, G*H) sequences.
        shared = all(p is r for p, r in zip(d_projected, d_recurrent))
        return (d_carry, d_last), (
            jnp.stack(d_projected[::-1]),
            None if shared else jnp.stack(d_recurrent[::-1]),
        )

    def back_block(state, inputs, first):
        # d_state: the gradients of the carry and of the last valid output.
        d_state, d_params = state
        block_xs, block_previous, block_keep, block_d_ys = inputs
        block_xs = _zero_masked(_swap_layout(block_xs, time_axis), block_keep)
        block_d_ys = _swap_layout(block_d_ys, time_axis)
        steps, batch = block_xs.shape[:2]
        projected, inputs_vjp = jax.vjp(
            lambda p, x: cell.project_inputs(p, x), params, _flat(block_xs)
        )
        dtype = projected.dtype
        projected = projected.reshape(steps, batch, -1)
        if remat:
            _, (_, block_previous, _) = _steps(
                cell, params, projected, block_keep, first, chunk, unroll
            )
        if saved == "projections":
            block_previous, projected, kept_recurrent = block_previous
        h_in = _flat(cell.recurrent_input(block_previous, None, dtype))
        recurrent, weights_vjp = jax.vjp(
            lambda p: cell.project_recurrent(p, h_in), params
        )
        # Where the forward pass saved the projections, the GEMMs that
        # recompute them above have no use and XLA drops them; their VJPs
        # stay.
        recurrent = (
            kept_recurrent
            if saved == "projections"
            else recurrent.reshape(steps, batch, -1)
        )
        # A block of one chunk runs unrolled; longer blocks step one at a
        # time: as fast (faster at B=16, T=2048) and it compiles in about
        # 40 % less time than unrolled chunks
        # (docs/design-notes.md#the-step-loop).
        step_size = chunk if block <= chunk else 1
        d_state, (d_projected, d_recurrent) = _scan_pieces(
            back_chunk,
            d_state,
            (projected, recurrent, block_previous, block_keep, block_d_ys),
            step_size,
            unroll=unroll,
            reverse=True,
        )
        if d_recurrent is None:
            d_recurrent = d_projected
        d_params_in, d_xs = inputs_vjp(_flat(d_projected))
        (d_params_rec,) = weights_vjp(_flat(d_recurrent))
        d_params = jax.tree.map(
            lambda a, b, c: a + b + c, d_params, d_params_in, d_params_rec
        )
        return (d_state, d_params), (
            _swap_layout(d_xs.reshape(block_xs.shape), time_axis),
        )

    state = ((d_carry, d_last), jax.tree.map(jnp.zeros_like, params))
    if remat:
        seq = (xs, None, keep, d_ys)
        per_block = previous
    else:
        seq = (xs, previous, keep, d_ys)
        per_block = None
    ((d_carry, _), d_params), (d_xs,) = _scan_pieces(
        back_block,
        state,
        seq,
        block,
        reverse=True,
        per_piece=per_block,
        **_batch_major(time_axis, (0, 3), (0,)),
    )
    d_keep = None if keep is None else jnp.zeros(keep.shape, jax.dtypes.float0)
    return d_params, d_xs, d_keep, d_carry


split_step_scan.defvjp(_split_step_fwd, _split_step_bwd)
