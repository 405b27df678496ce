"""A whole-sequence recurrence with a hand-written backward pass.

For cells whose step splits into an input projection, one recurrent matmul
and elementwise gates (``project_inputs``, ``recurrent_input``,
``project_recurrent``, ``apply_gates``: the built-in LSTM, GRU with
``reset_after`` and SimpleRNN, and any custom cell that offers them),
autodiff of the scan saves every step's gate activations and accumulates
rank-B updates of every weight inside the backward loop. Here the forward
pass saves only each step's previous carry (the memory of `remat` at the
speed of no remat), and the backward pass walks the chunks of K steps in
reverse: it recomputes the chunk's input and recurrent projections with one
``(K*B, ...) x (..., G*H)`` GEMM each, keeps only what must be sequential
inside the chunk (the gate gradients and the carry's gradient through one
``(B, G*H) x (G*H, H)`` matmul per step), then gets the chunk's kernel,
recurrent-kernel, bias and input gradients from one GEMM each with K*B rows.
No (T, B, G*H) array is ever materialised, so nothing large is allocated,
mapped and page-faulted per call.

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

from jaxrnn._masking import broadcast_over

_SPLIT_STEP = ("project_inputs", "recurrent_input", "project_recurrent",
               "apply_gates")


def has_split_step(cell: Any) -> bool:
    """Whether `cell` offers the split step (and says it applies)."""
    return (all(hasattr(cell, name) for name in _SPLIT_STEP)
            and bool(getattr(cell, "split_step", True)))


def _segments(steps: int, chunk: int) -> list[tuple[int, int, int]]:
    """(start, number of chunks, chunk size) covering `steps`."""
    full, tail = divmod(steps, chunk)
    parts = [(0, full, chunk)] if full else []
    if tail:
        parts.append((full * chunk, 1, tail))
    return parts


def _where(keep, new, old):
    return jax.tree.map(
        lambda n, o: jnp.where(broadcast_over(keep, n), n, o), new, old)


def _index(tree, k):
    return jax.tree.map(lambda leaf: leaf[k], tree)


def _stack(trees):
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _forward(cell, chunk, unroll, params, xs, keep, carry, save,
             remat=False):
    """Runs the steps; returns (ys (T, B, ...), carry[, every step's
    previous carry, or with `remat` every chunk's first carry])."""

    def run_chunk(carry, inputs):
        chunk_xs, chunk_keep = inputs
        projected = cell.project_inputs(params, chunk_xs)  # (K, B, G*H)
        dtype = projected.dtype
        ys, previous = [], []
        for k in range(chunk_xs.shape[0]):
            h_in = cell.recurrent_input(carry, None, dtype)
            recurrent = cell.project_recurrent(params, h_in)
            new_carry, y = cell.apply_gates(carry, projected[k], recurrent)
            ys.append(y)
            if save and (k == 0 or not remat):
                previous.append(carry)
            carry = (new_carry if chunk_keep is None else
                     _where(chunk_keep[k], new_carry, carry))
        out = jnp.stack(ys)
        if save:
            out = (out, _stack(previous))
        return carry, out

    outs = []
    for start, count, size in _segments(xs.shape[0], chunk):
        seg_xs = xs[start:start + count * size]
        seg_keep = None if keep is None else keep[start:start + count * size]
        if count == 1:
            carry, out = run_chunk(carry, (seg_xs, seg_keep))
        else:
            seg_xs = seg_xs.reshape(count, size, *seg_xs.shape[1:])
            if seg_keep is not None:
                seg_keep = seg_keep.reshape(count, size, *seg_keep.shape[1:])
            carry, out = lax.scan(run_chunk, carry, (seg_xs, seg_keep),
                                  unroll=unroll)
            out = jax.tree.map(
                lambda leaf: leaf.reshape(-1, *leaf.shape[2:]), out)
        outs.append(out)
    out = jax.tree.map(lambda *parts: jnp.concatenate(parts), *outs)
    if not save:
        return out, carry
    ys, previous = out
    return ys, carry, previous


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def split_step_scan(cell: Any, chunk: int, unroll: int, remat: bool,
                    params: Any,
                    xs: jax.Array, keep: jax.Array | None,
                    carry: Any) -> tuple[jax.Array, Any]:
    """Runs a split-step cell over time-major inputs.

    Args:
      cell: a cell for which `has_split_step` holds (static).
      chunk: steps per chunk K (static).
      unroll: `lax.scan`'s unroll factor over chunks (static).
      remat: save only each chunk's first carry for the backward pass, which
        reruns the chunk's steps (static).
      params: the cell's params.
      xs: (T, B, D) inputs.
      keep: bool (T, B) or None; a step whose entry is False keeps the
        carry.
      carry: the initial carry, leaves (B, ...).

    Returns:
      ``(ys, final_carry)``: ys (T, B, ...) holds every step's raw output
      (at a masked step: what the cell would have output; the caller
      selects).
    """
    del remat
    return _forward(cell, chunk, unroll, params, xs, keep, carry, save=False)


def _flat(a):
    return a.reshape(-1, *a.shape[2:])


def _rerun(cell, params, projected, keep, carry):
    """Reruns a chunk's steps from its first carry; returns (every step's
    previous carry (K, B, ...), every step's recurrent projection)."""
    previous, recurrents = [], []
    for k in range(projected.shape[0]):
        previous.append(carry)
        h_in = cell.recurrent_input(carry, None, projected.dtype)
        recurrent = cell.project_recurrent(params, h_in)
        recurrents.append(recurrent)
        new_carry, _ = cell.apply_gates(carry, projected[k], recurrent)
        carry = new_carry if keep is None else _where(keep[k], new_carry, carry)
    return _stack(previous), jnp.stack(recurrents)


def _split_step_fwd(cell, chunk, unroll, remat, params, xs, keep, carry):
    ys, final, previous = _forward(
        cell, chunk, unroll, params, xs, keep, carry, save=True, remat=remat)
    return (ys, final), (params, xs, keep, previous)


def _split_step_bwd(cell, chunk, unroll, remat, residuals, cotangents):
    params, xs, keep, previous = residuals
    d_ys, d_carry = cotangents

    def back_chunk(state, inputs):
        d_carry, d_params = state
        chunk_xs, chunk_previous, chunk_keep, chunk_d_ys = inputs
        steps, batch = chunk_xs.shape[:2]
        projected, inputs_vjp = jax.vjp(
            lambda p, x: cell.project_inputs(p, x), params, _flat(chunk_xs))
        dtype = projected.dtype
        projected = projected.reshape(steps, batch, -1)
        if remat:
            chunk_previous, recurrent = _rerun(
                cell, params, projected, chunk_keep, chunk_previous)
        h_in = _flat(cell.recurrent_input(chunk_previous, None, dtype))
        flat_recurrent, weights_vjp = jax.vjp(
            lambda p: cell.project_recurrent(p, h_in), params)
        if not remat:
            recurrent = flat_recurrent.reshape(steps, batch, -1)
        d_projected, d_recurrent = [], []
        for k in reversed(range(steps)):
            prev = _index(chunk_previous, k)
            if chunk_keep is None:
                d_new, d_skip = d_carry, None
            else:
                zeros = jax.tree.map(jnp.zeros_like, d_carry)
                d_new = _where(chunk_keep[k], d_carry, zeros)
                d_skip = _where(chunk_keep[k], zeros, d_carry)
            _, gates_vjp = jax.vjp(cell.apply_gates, prev, projected[k],
                                   recurrent[k])
            d_prev, d_proj, d_rec = gates_vjp((d_new, chunk_d_ys[k]))
            _, step_vjp = jax.vjp(
                lambda c: cell.project_recurrent(
                    params, cell.recurrent_input(c, None, dtype)), prev)
            (d_prev_h,) = step_vjp(d_rec)
            d_carry = jax.tree.map(jnp.add, d_prev, d_prev_h)
            if d_skip is not None:
                d_carry = jax.tree.map(jnp.add, d_carry, d_skip)
            d_projected.append(d_proj)
            d_recurrent.append(d_rec)
        d_projected = jnp.concatenate(d_projected[::-1])
        d_recurrent = jnp.concatenate(d_recurrent[::-1])
        d_params_in, d_xs = inputs_vjp(d_projected)
        (d_params_rec,) = weights_vjp(d_recurrent)
        d_params = jax.tree.map(lambda a, b, c: a + b + c, d_params,
                                d_params_in, d_params_rec)
        return (d_carry, d_params), d_xs.reshape(chunk_xs.shape)

    state = (d_carry, jax.tree.map(jnp.zeros_like, params))
    d_xs = []
    for start, count, size in reversed(_segments(xs.shape[0], chunk)):
        stop = start + count * size
        saved = (slice(start // chunk, start // chunk + count) if remat else
                 slice(start, stop))
        seg_previous = _index(previous, saved)
        if remat and count == 1:
            seg_previous = _index(seg_previous, 0)
        seg = (xs[start:stop], seg_previous,
               None if keep is None else keep[start:stop], d_ys[start:stop])
        if count == 1:
            state, out = back_chunk(state, seg)
        else:
            def chunked(leaf):
                return leaf.reshape(count, size, *leaf.shape[1:])

            seg = (chunked(seg[0]),
                   seg[1] if remat else jax.tree.map(chunked, seg[1]),
                   None if seg[2] is None else chunked(seg[2]),
                   chunked(seg[3]))
            state, out = lax.scan(back_chunk, state, seg, reverse=True,
                                  unroll=unroll)
            out = out.reshape(-1, *out.shape[2:])
        d_xs.insert(0, out)
    d_carry, d_params = state
    d_keep = None if keep is None else jnp.zeros(keep.shape, jax.dtypes.float0)
    return d_params, jnp.concatenate(d_xs), d_keep, d_carry


split_step_scan.defvjp(_split_step_fwd, _split_step_bwd)


def masked_outputs(ys: jax.Array, keep: jax.Array | None,
                   zero_output: bool) -> tuple[jax.Array, jax.Array]:
    """Applies `rnn`'s masked-output rules to raw per-step outputs.

    Args:
      ys: (T, B, ...) every step's raw output.
      keep: bool (T, B), or None.
      zero_output: masked steps output zeros instead of repeating the last
        valid output.

    Returns:
      (outputs (T, B, ...), last (B, ...)): last is each row's output at
      its last valid step, zeros if it has none.
    """
    if keep is None:
        return ys, ys[-1]
    steps = ys.shape[0]
    zero = jnp.zeros((), ys.dtype)
    # The index of each step's last valid step so far (-1: none yet).
    times = jnp.arange(steps, dtype=jnp.int32)[:, None]
    latest = lax.cummax(jnp.where(keep, times, -1), axis=0)  # (T, B)
    last_index = latest[-1]
    last = jnp.take_along_axis(
        ys, broadcast_over(jnp.maximum(last_index, 0)[None], ys), axis=0)[0]
    last = jnp.where(broadcast_over(last_index >= 0, last), last, zero)
    if zero_output:
        return jnp.where(broadcast_over(keep, ys), ys, zero), last
    filled = jnp.take_along_axis(
        ys, broadcast_over(jnp.maximum(latest, 0), ys), axis=0)
    return jnp.where(broadcast_over(latest >= 0, ys), filled, zero), last
