"""The plain hand-written JAX reference: the hoisted input projection as one
GEMM over the whole sequence, then fused gates in a `lax.scan`.

Params in jaxrnn's (Keras') layout; padded steps keep the carry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jaxrnn.interop import _gates


def step(cell: str, p: dict, carry, projected):
    """One fused step: a single (B, H) x (H, G*H) matmul, then the gates."""
    if cell == "LSTM":
        h, c = carry
        part = _gates.split(
            projected + h @ p["recurrent_kernel"], "keras", "lstm"
        )
        i, f, g, o = part["i"], part["f"], part["c"], part["o"]
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h
    h = carry
    x = _gates.split(projected, "keras", "gru")
    x_z, x_r, x_h = x["z"], x["r"], x["h"]
    hidden = _gates.split(
        h @ p["recurrent_kernel"] + p["bias"][1], "keras", "gru"
    )
    h_z, h_r, h_h = hidden["z"], hidden["r"], hidden["h"]
    z = jax.nn.sigmoid(x_z + h_z)
    r = jax.nn.sigmoid(x_r + h_r)
    h = z * h + (1 - z) * jnp.tanh(x_h + r * h_h)
    return h, h


def direction(cell: str, p: dict, x, lengths, reverse: bool):
    """One direction over x (B, T, D): outputs (B, T, H) in input order."""
    batch, steps, features = x.shape
    xs = jnp.swapaxes(x, 0, 1)  # (T, B, D)
    bias = p["bias"] if cell == "LSTM" else p["bias"][0]
    # The hoisted input projection: one (T*B, D) x (D, G*H) GEMM.
    projected = (
        xs.reshape(steps * batch, features) @ p["kernel"] + bias
    ).reshape(steps, batch, -1)
    units = p["recurrent_kernel"].shape[0]
    h0 = jnp.zeros((batch, units), x.dtype)
    carry = (h0, h0) if cell == "LSTM" else h0
    valid = (
        None
        if lengths is None
        else jnp.arange(steps)[:, None] < lengths[None, :]
    )  # (T, B)

    def body(carry, step_in):
        projected_t, valid_t = step_in
        new, y = step(cell, p, carry, projected_t)
        if valid_t is not None:  # padded steps keep the carry
            new = jax.tree.map(
                lambda n, o: jnp.where(valid_t[:, None], n, o), new, carry
            )
        return new, y

    _, ys = lax.scan(body, carry, (projected, valid), reverse=reverse)
    return jnp.swapaxes(ys, 0, 1)


def forward(cell: str, p: dict, x: jax.Array, lengths) -> jax.Array:
    """Outputs (B, T, H), or (B, T, 2H) for params {'forward', 'backward'}."""
    if "forward" not in p:
        return direction(cell, p, x, lengths, reverse=False)
    return jnp.concatenate(
        [
            direction(cell, p["forward"], x, lengths, False),
            direction(cell, p["backward"], x, lengths, True),
        ],
        -1,
    )
