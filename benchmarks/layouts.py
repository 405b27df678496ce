"""jaxrnn's Keras-layout weights in each peer's layout.

jaxrnn (as Keras): ``kernel`` (D, G*H), ``recurrent_kernel`` (H, G*H); LSTM
gates (i, f, c, o) and one ``bias`` (4H,); GRU gates (z, r, h) and, with
reset_after, ``bias`` (2, 3H): row 0 for the input, row 1 for the recurrent
side. Every function here is written in jax.numpy, so `jax.vjp` of a
conversion carries a peer's gradients back into jaxrnn's layout for the
numerical check. Read from each library's source (versions in RESULTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxrnn.interop import _gates

# Flax's gate letters (its Denses: i + letter, h + letter) in Keras' order of
# gates, so a letter's index is its block in jaxrnn's params.
FLAX_LSTM = _gates.gate_order("flax_linen", "lstm").names_in_keras_order
FLAX_GRU = _gates.gate_order("flax_linen", "gru").names_in_keras_order


def gate(array: jax.Array, index: int, gates: int) -> jax.Array:
    """The `index`-th of `gates` equal slices of the last axis."""
    size = array.shape[-1] // gates
    return array[..., index * size : (index + 1) * size]


def to_peer(array: jax.Array, peer: str, cell: str) -> jax.Array:
    """Keras' gate blocks of the last axis in `peer`'s order (a framework of
    jaxrnn.interop._gates; `cell` "LSTM" or "GRU")."""
    return _gates.reorder(array, "keras", peer, cell.lower())


def path_names(path) -> list[str]:
    """A pytree path as plain names, without NNX's trailing ``value``."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return [n for n in names if n != "value"]


def fill(template: Any, leaf_for: Callable[[list[str]], jax.Array]) -> Any:
    """Rebuilds `template` (a peer's params pytree) with ``leaf_for(names)``
    at every leaf; raises if a shape differs from the template's."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    values = []
    for path, leaf in leaves:
        names = path_names(path)
        value = leaf_for(names)
        if tuple(value.shape) != tuple(leaf.shape):
            raise ValueError(
                f"{'/'.join(names)}: converted shape "
                f"{value.shape}, peer expects {leaf.shape}."
            )
        values.append(value)
    return jax.tree_util.tree_unflatten(treedef, values)


def direction(params: dict, names: list[str]) -> dict:
    """The direction's params for a leaf of a bidirectional peer (its path
    names a forward or backward module), else `params` itself."""
    if "forward" not in params:
        return params
    for name in names:
        if "backward" in name:
            return params["backward"]
        if "forward" in name:
            return params["forward"]
    raise ValueError(f"No direction in {names}.")


# Flax (linen and NNX) per-gate Dense layers: ``ii`` .. ``ho`` for the LSTM,
# ``ir`` .. ``hn`` for the GRU; input side first letter i, hidden side h.


def flax_lstm_leaf(p: dict, module: str, leaf: str) -> jax.Array:
    """LSTMCell / OptimizedLSTMCell: kernels on both sides, the bias on the
    hidden side only (``hi`` .. ``ho``), so Keras' bias goes there whole."""
    side, g = module[0], FLAX_LSTM.index(module[1])
    if leaf == "bias":
        return gate(p["bias"], g, 4)
    return gate(p["kernel" if side == "i" else "recurrent_kernel"], g, 4)


def flax_gru_leaf(p: dict, module: str, leaf: str) -> jax.Array:
    """linen GRUCell: biases on ``ir``, ``iz``, ``in`` and ``hn`` only; r and
    z add both Keras biases, the candidate keeps them apart
    (n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), as Keras reset_after)."""
    side, g = module[0], FLAX_GRU.index(module[1])
    if leaf == "kernel":
        return gate(p["kernel" if side == "i" else "recurrent_kernel"], g, 3)
    b_input, b_recurrent = gate(p["bias"][0], g, 3), gate(p["bias"][1], g, 3)
    if module in ("ir", "iz"):
        return b_input + b_recurrent
    return b_input if module == "in" else b_recurrent


def nnx_lstm_leaf(p: dict, names: list[str]) -> jax.Array:
    """nnx.LSTMCell (``if_`` for the forget gate) or nnx.OptimizedLSTMCell
    (fused ``dense_i`` (D, 4H), ``dense_h`` (H, 4H) with bias, gates
    i, f, g, o as Keras)."""
    module, leaf = names[-2], names[-1]
    if module == "dense_i":
        return to_peer(p["kernel"], "flax_nnx", "LSTM")
    if module == "dense_h":
        return to_peer(
            p["recurrent_kernel"] if leaf == "kernel" else p["bias"],
            "flax_nnx",
            "LSTM",
        )
    return flax_lstm_leaf(p, module.rstrip("_"), leaf)


def nnx_gru_leaf(p: dict, names: list[str]) -> jax.Array:
    """nnx.GRUCell: ``dense_i`` (D, 3H) with bias, ``dense_h`` (H, 3H)
    without, gates r, z, n. It has no recurrent candidate bias b_hn (n =
    tanh(x_n + r * (W_hn h))), so the check zeroes that bias in jaxrnn."""
    module, leaf = names[-2], names[-1]
    if module == "dense_h":
        return to_peer(p["recurrent_kernel"], "flax_nnx", "GRU")
    if leaf == "kernel":
        return to_peer(p["kernel"], "flax_nnx", "GRU")
    return to_peer(gru_input_bias(p), "flax_nnx", "GRU")


def gru_input_bias(p: dict) -> jax.Array:
    """Both Keras biases on z and r, the input one on the candidate (3H,),
    Keras order: the single bias of peers that add one to x_z, x_r, x_n."""
    b_input, b_recurrent = p["bias"][0], p["bias"][1]
    units = b_input.shape[0] // 3
    return b_input + b_recurrent.at[2 * units :].set(0)


def without_candidate_bias(p: dict) -> dict:
    """`p` with the recurrent candidate bias b_hn zeroed (nnx.GRUCell's maths)."""
    units = p["bias"].shape[1] // 3
    return {**p, "bias": p["bias"].at[1, 2 * units :].set(0)}


def equinox_lstm(p: dict, cell: Any) -> Any:
    """eqx.nn.LSTMCell: weight_ih (4H, D), weight_hh (4H, H), gates i, f, g, o
    as Keras, one bias (4H,)."""
    import equinox as eqx

    return eqx.tree_at(
        lambda m: (m.weight_ih, m.weight_hh, m.bias),
        cell,
        (
            to_peer(p["kernel"], "equinox", "LSTM").T,
            to_peer(p["recurrent_kernel"], "equinox", "LSTM").T,
            to_peer(p["bias"], "equinox", "LSTM"),
        ),
    )


def equinox_gru(p: dict, cell: Any) -> Any:
    """eqx.nn.GRUCell: torch's maths, gates r, z, n; ``bias`` (3H,) on the
    input side, ``bias_n`` (H,) inside the reset product."""
    import equinox as eqx

    units = p["bias"].shape[1] // 3
    return eqx.tree_at(
        lambda m: (m.weight_ih, m.weight_hh, m.bias, m.bias_n),
        cell,
        (
            to_peer(p["kernel"], "equinox", "GRU").T,
            to_peer(p["recurrent_kernel"], "equinox", "GRU").T,
            to_peer(gru_input_bias(p), "equinox", "GRU"),
            p["bias"][1, 2 * units :],
        ),
    )


def haiku_lstm(p: dict) -> dict:
    """hk.LSTM: one Linear on concat([x, h]), w (D+H, 4H) and b (4H,), gates
    i, g, f, o, and sigmoid(f + 1): the forget bias is one lower."""
    w = jnp.concatenate([p["kernel"], p["recurrent_kernel"]], 0)
    units = p["bias"].shape[0] // 4
    bias = p["bias"].at[units : 2 * units].add(-1.0)
    return {
        "w": to_peer(w, "haiku", "LSTM"),
        "b": to_peer(bias, "haiku", "LSTM"),
    }


def reset_before_params(p: dict) -> dict:
    """Keras reset_after=False params from reset_after ones: bias (3H,) is
    row 0 (row 1 has no place in that maths)."""
    return {
        "kernel": p["kernel"],
        "recurrent_kernel": p["recurrent_kernel"],
        "bias": p["bias"][0],
    }


def haiku_gru(q: dict) -> dict:
    """hk.GRU from Keras reset_after=False params `q`: w_i (D, 3H), w_h
    (H, 3H), b (3H,), gates z, r, a as Keras, but h' = (1 - z) h + z a where
    Keras has h' = z h + (1 - z) a; sigmoid(-x) = 1 - sigmoid(x), so the z
    columns change sign."""
    units = q["bias"].shape[0] // 3
    z = _gates.gate_order("keras", "gru").gates.index("z")
    sign = jnp.ones(3 * units).at[z * units : (z + 1) * units].set(-1)
    return {
        "w_i": to_peer(q["kernel"] * sign, "haiku", "GRU"),
        "w_h": to_peer(q["recurrent_kernel"] * sign, "haiku", "GRU"),
        "b": to_peer(q["bias"] * sign, "haiku", "GRU"),
    }


def torch_state(
    p: dict, cell: str, suffix: str = "", peer: str = "torch"
) -> dict:
    """torch.nn.LSTM / GRU ``*_l0{suffix}``: weight_ih (G*H, D), weight_hh
    (G*H, H), bias_ih and bias_hh, gates in `peer`'s order (torch's; cuDNN's
    for `cudnn_lstm_weights`). The LSTM's Keras bias goes to bias_ih, zeros
    to bias_hh; the GRU's bias rows 0 and 1 to bias_ih and bias_hh (torch's
    GRU is Keras reset_after)."""
    w_ih = to_peer(p["kernel"], peer, cell).T
    w_hh = to_peer(p["recurrent_kernel"], peer, cell).T
    if cell == "LSTM":
        b_ih = to_peer(p["bias"], peer, cell)
        b_hh = jnp.zeros_like(p["bias"])
    else:
        b_ih = to_peer(p["bias"][0], peer, cell)
        b_hh = to_peer(p["bias"][1], peer, cell)
    return {
        f"weight_ih_l0{suffix}": w_ih,
        f"weight_hh_l0{suffix}": w_hh,
        f"bias_ih_l0{suffix}": b_ih,
        f"bias_hh_l0{suffix}": b_hh,
    }


def cudnn_lstm_weights(params: dict) -> jax.Array:
    """`jax.experimental.rnn.lstm`'s flat weight vector (cuDNN's layout,
    one layer): each direction's weight_ih (4H, D) then weight_hh (4H, H),
    torch's shapes in cuDNN's gate order, then each direction's bias_ih and
    bias_hh (`jax.experimental.rnn._get_params_shapes_in_lstm`). `params`
    is an LSTM's, or a Bidirectional's {"forward": ..., "backward": ...}."""
    directions = (
        [params["forward"], params["backward"]]
        if "forward" in params
        else [params]
    )
    states = [torch_state(p, "LSTM", peer="cudnn") for p in directions]
    weights = [
        state[f"weight_{side}_l0"].ravel()
        for state in states
        for side in ("ih", "hh")
    ]
    biases = [
        state[f"bias_{side}_l0"] for state in states for side in ("ih", "hh")
    ]
    return jnp.concatenate(weights + biases)
