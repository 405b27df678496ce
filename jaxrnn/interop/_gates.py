"""Every peer's gate order, in one table, and the reorderings between them.

A gated cell keeps its G gates side by side on one axis of G*H: Keras'
``kernel`` (D, G*H), torch's ``weight_ih`` (G*H, D). Which gate sits in which
block of H differs between frameworks, and so do the gates' letters (Keras'
LSTM candidate is ``c``, torch's ``g``). Here each peer's order is written
in Keras' letters (LSTM i, f, c, o; GRU z, r, h), beside the peer's own
letters and where the order was read; the converters and the benchmarks
reorder through `reorder` and never spell an order themselves.

Only the order lives here: each converter still owns what else differs
(Haiku's forget bias + 1, its negated update gate, where biases go); the
table's ``note`` names those so that a reader sees them together.

Example:
  >>> import numpy as np
  >>> permutation("keras", "torch", "gru")  # torch's (r, z, n) from (z, r, h)
  (1, 0, 2)
  >>> reorder(np.arange(8), "keras", "haiku", "lstm")  # (i, f, c, o), H = 2
  array([0, 1, 4, 5, 2, 3, 6, 7])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

KERAS_GATES = {"lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h")}


@dataclasses.dataclass(frozen=True)
class GateOrder:
    """One framework's gate blocks along its fused G*H axis.

    Attributes:
      kind: 'lstm' or 'gru'.
      gates: the blocks in the framework's order, in Keras' letters.
      names: the framework's own letter for each block, in the same order
        (Flax names its per-gate Denses ``i`` + letter and ``h`` + letter).
      source: where the order was read.
      note: what else differs gate by gate ('' if nothing).
    """

    kind: str
    gates: tuple[str, ...]
    names: tuple[str, ...]
    source: str
    note: str = ""

    @property
    def names_in_keras_order(self) -> tuple[str, ...]:
        """The framework's letters rearranged into Keras' order of gates:
        ``('z', 'r', 'n')`` for torch's GRU."""
        return tuple(
            self.names[self.gates.index(g)] for g in KERAS_GATES[self.kind]
        )


_LSTM_IFCO = ("i", "f", "c", "o")
_GRU_RZH = ("r", "z", "h")

TABLE: dict[str, dict[str, GateOrder]] = {
    "keras": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "c", "o"),
            "keras/src/layers/rnn/lstm.py, LSTMCell.call: "
            "k_i, k_f, k_c, k_o = ops.split(self.kernel, 4)",
        ),
        "gru": GateOrder(
            "gru",
            ("z", "r", "h"),
            ("z", "r", "h"),
            "keras/src/layers/rnn/gru.py, GRUCell.call: x_z = "
            "inputs @ kernel[:, :H], then x_r, then x_h",
        ),
    },
    "torch": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "g", "o"),
            "torch.nn.LSTM docs: weight_ih_l[k] is (W_ii|W_if|W_ig|W_io)",
            note="two biases, bias_ih and bias_hh, summed",
        ),
        "gru": GateOrder(
            "gru",
            _GRU_RZH,
            ("r", "z", "n"),
            "torch.nn.GRU docs: weight_ih_l[k] is (W_ir|W_iz|W_in)",
            note="Keras reset_after=True; bias rows 0 and 1 "
            "are bias_ih and bias_hh",
        ),
    },
    "flax_linen": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "g", "o"),
            "flax/linen/recurrent.py, LSTMCell.__call__: "
            "Denses ii, if, ig, io and hi, hf, hg, ho "
            "(OptimizedLSTMCell: the same, concatenated)",
            note="the bias sits on the h* Denses only",
        ),
        "gru": GateOrder(
            "gru",
            _GRU_RZH,
            ("r", "z", "n"),
            "flax/linen/recurrent.py, GRUCell.__call__: Denses "
            "ir, iz, in and hr, hz, hn",
            note="biases on ir, iz, in and hn only",
        ),
    },
    "flax_nnx": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "g", "o"),
            "flax/nnx/nn/recurrent.py: LSTMCell's ii, if_, ig, "
            "io ('if' is a keyword); OptimizedLSTMCell.__call__"
            ": i, f, g, o = jnp.split(y, 4)",
        ),
        "gru": GateOrder(
            "gru",
            _GRU_RZH,
            ("r", "z", "n"),
            "flax/nnx/nn/recurrent.py, GRUCell.__call__: xi_r, "
            "xi_z, xi_n = jnp.split(x_transformed, 3)",
            note="no recurrent bias: b_hn must be zero",
        ),
    },
    "equinox": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "g", "o"),
            "equinox/nn/_rnn.py, LSTMCell.__call__: i, f, g, "
            "o = jnp.split(lin, 4)",
        ),
        "gru": GateOrder(
            "gru",
            _GRU_RZH,
            ("r", "z", "n"),
            "equinox/nn/_rnn.py, GRUCell.__call__: igates[0] "
            "is reset, [1] update (inp), [2] new",
            note="one bias (3H,) plus bias_n inside r * (...)",
        ),
    },
    "haiku": {
        "lstm": GateOrder(
            "lstm",
            ("i", "c", "f", "o"),
            ("i", "g", "f", "o"),
            "haiku/_src/recurrent.py, LSTM.__call__: i, g, f, "
            "o = jnp.split(gated, 4)",
            note="f = sigmoid(z_f + 1): Keras' forget bias is Haiku's + 1",
        ),
        "gru": GateOrder(
            "gru",
            ("z", "r", "h"),
            ("z", "r", "a"),
            "haiku/_src/recurrent.py, GRU.__call__: zr_x, a_x "
            "= jnp.split(x @ w_i, [2H]); z, r = jnp.split(zr, "
            "2)",
            note="h' = (1 - z) h + z a: Haiku's update gate is "
            "Keras' negated; Keras reset_after=False",
        ),
    },
    "cudnn": {
        "lstm": GateOrder(
            "lstm",
            _LSTM_IFCO,
            ("i", "f", "g", "o"),
            "jax/experimental/rnn.py, lstm_ref: W_ii, W_if, "
            "W_ig, W_io = jnp.split(W_ih, 4) (cuDNN's flat "
            "layout, torch's shapes)",
        ),
    },
}

FRAMEWORKS = tuple(sorted(TABLE))


def gate_order(framework: str, kind: str) -> GateOrder:
    """The table's entry for `framework` ('torch', 'haiku', ...) and `kind`
    ('lstm' or 'gru').

    Raises:
      ValueError: an unknown framework, or a kind it has no entry for; the
        message names the known ones.
    """
    if framework not in TABLE:
        raise ValueError(
            f"Unknown framework {framework!r} for gate orders; "
            f"known: {list(FRAMEWORKS)}."
        )
    kinds = TABLE[framework]
    if kind not in kinds:
        raise ValueError(
            f"No {kind!r} gate order for {framework!r}; its "
            f"kinds: {sorted(kinds)}."
        )
    return kinds[kind]


def permutation(src: str, dst: str, kind: str) -> tuple[int, ...]:
    """Block indices that take `src`'s gate order to `dst`'s: block k of the
    result is block ``permutation[k]`` of the input.

    Raises:
      ValueError: `src`, `dst` or `kind` is unknown (see `gate_order`).
    """
    have = gate_order(src, kind).gates
    return tuple(have.index(g) for g in gate_order(dst, kind).gates)


def reorder(array: Any, src: str, dst: str, kind: str, axis: int = -1) -> Any:
    """`array`'s gate blocks along `axis`, from `src`'s order into `dst`'s.

    A NumPy array stays a NumPy array, anything else becomes a JAX array;
    an order that is already right returns `array` itself.

    Raises:
      ValueError: an unknown framework or kind, or `axis` of a size that the
        kind's number of gates does not divide.
    """
    order = permutation(src, dst, kind)
    if order == tuple(range(len(order))):
        return array
    xp = np if isinstance(array, np.ndarray) else jnp
    blocks = _split(xp, array, len(order), axis)
    return xp.concatenate([blocks[k] for k in order], axis=axis)


def split(
    array: Any, framework: str, kind: str, axis: int = -1
) -> dict[str, Any]:
    """`array`'s gate blocks along `axis`, keyed by Keras' letter.

    Example:
      >>> import numpy as np
      >>> split(np.arange(6), "torch", "gru")["z"]  # torch's second block
      array([2, 3])
    """
    gates = gate_order(framework, kind).gates
    xp = np if isinstance(array, np.ndarray) else jnp
    return dict(zip(gates, _split(xp, array, len(gates), axis)))


def _split(xp: Any, array: Any, gates: int, axis: int) -> list[Any]:
    size = np.shape(array)[axis]
    if size % gates:
        raise ValueError(
            f"A gate axis of size {size} does not split into "
            f"{gates} gates of equal size."
        )
    return xp.split(array, gates, axis=axis)
