"""What the benchmark runs: cell, size, masking, direction; data and FLOPs.

A workload is one cell type at one size in one setting (plain, right-padded
variable lengths, or bidirectional). Every peer sees the same jaxrnn params
(Keras layout, random biases so that a misplaced bias shows) and the same
inputs; the loss is the mean square of the outputs at valid steps.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn.interop import _gates

GATES = {
    cell: len(_gates.KERAS_GATES[cell.lower()]) for cell in ("LSTM", "GRU")
}

# (B, T, D, H) of each named case; the masked and bidirectional cases use the
# middle size.
SIZES = {
    "latency": (1, 512, 64, 64),
    "mid": (32, 128, 256, 256),
    "large": (128, 64, 512, 512),
    "long": (16, 2048, 128, 128),
    "masked": (32, 128, 256, 256),
    "bidirectional": (32, 128, 256, 256),
}
# Tiny sizes for --smoke: D != H catches a kernel/recurrent_kernel mix-up and
# T = 7 runs jaxrnn's partial last chunk.
SMOKE_SIZES = {
    "smoke": (3, 7, 5, 4),
    "smoke-masked": (3, 7, 5, 4),
    "smoke-bidirectional": (3, 7, 5, 4),
}
# Smoke runs the masked case for the GRU and the bidirectional one for the
# LSTM only (the peers' mask and direction code is shared by both cells);
# the full run does both cells everywhere.
SMOKE_CELLS = {"smoke-masked": ("GRU",), "smoke-bidirectional": ("LSTM",)}


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark setting.

    Attributes:
      cell: "LSTM" or "GRU".
      case: the size's name (a key of SIZES or SMOKE_SIZES).
      batch, steps, features, units: B, T, D, H.
      masked: right-padded variable lengths (seq_lengths / mask / packing).
      bidirectional: both directions, outputs concatenated (B, T, 2H).
    """

    cell: str
    case: str
    batch: int
    steps: int
    features: int
    units: int
    masked: bool = False
    bidirectional: bool = False

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def label(self) -> str:
        extra = " masked" if self.masked else ""
        extra += " bidirectional" if self.bidirectional else ""
        return (
            f"{self.cell} B={self.batch} T={self.steps} "
            f"D={self.features} H={self.units}{extra}"
        )

    def flops(self, mode: str) -> float:
        """Matmul FLOPs of the recurrence: 2*T*B*(D+H)*G*H forward, ~3x for
        a training step (forward, then input and weight gradients)."""
        forward = (
            2.0
            * self.steps
            * self.batch
            * (self.features + self.units)
            * self.gates
            * self.units
        )
        if self.bidirectional:
            forward *= 2
        return forward if mode == "forward" else 3 * forward


def workloads(cells: list[str], cases: list[str]) -> list[Workload]:
    """Workloads for `cells` x `cases`, case-major (all cells of a size
    together)."""
    sizes = {**SIZES, **SMOKE_SIZES}
    out = []
    for case in cases:
        batch, steps, features, units = sizes[case]
        for cell in cells:
            if cell not in SMOKE_CELLS.get(case, (cell,)):
                continue
            out.append(
                Workload(
                    cell,
                    case,
                    batch,
                    steps,
                    features,
                    units,
                    masked=case.endswith("masked"),
                    bidirectional=case.endswith("bidirectional"),
                )
            )
    return out


def jaxrnn_cell(workload: Workload, **kwargs):
    kind = jaxrnn.LSTMCell if workload.cell == "LSTM" else jaxrnn.GRUCell
    return kind(workload.units, **kwargs)


def _random_params(workload: Workload, rng: np.random.Generator, key):
    params = jaxrnn_cell(workload).init(key, workload.features)
    # Random biases (the initialiser's are zeros and ones) so that a bias in
    # the wrong gate or direction changes the numbers.
    bias = rng.normal(0, 0.5, params["bias"].shape).astype(np.float32)
    return {**params, "bias": jnp.asarray(bias)}


@dataclasses.dataclass
class Data:
    """Params (jaxrnn layout), inputs (B, T, D) and lengths (B,) or None."""

    params: dict
    inputs: jax.Array
    lengths: jax.Array | None


def make_data(workload: Workload, seed: int = 0) -> Data:
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    if workload.bidirectional:
        k1, k2 = jax.random.split(key)
        params = {
            "forward": _random_params(workload, rng, k1),
            "backward": _random_params(workload, rng, k2),
        }
    else:
        params = _random_params(workload, rng, key)
    shape = (workload.batch, workload.steps, workload.features)
    inputs = jnp.asarray(rng.normal(size=shape).astype(np.float32))
    lengths = None
    if workload.masked:
        steps = workload.steps
        lengths = rng.integers(max(1, steps // 4), steps + 1, workload.batch)
        lengths[0] = steps  # one full row, so the padded length is T
        lengths = jnp.asarray(lengths.astype(np.int32))
    return Data(params, inputs, lengths)


def valid_mask(lengths, steps: int):
    """(B, T, 1) float32: 1 at valid steps; None without lengths."""
    if lengths is None:
        return None
    valid = jnp.arange(steps)[None, :] < lengths[:, None]
    return valid.astype(jnp.float32)[..., None]


def masked_outputs(outputs: jax.Array, lengths) -> jax.Array:
    """Zeros the padded steps: peers differ there (repeat, zeros, garbage)."""
    mask = valid_mask(lengths, outputs.shape[1])
    return outputs if mask is None else outputs * mask


def loss(outputs: jax.Array, lengths) -> jax.Array:
    """Mean square of the outputs at valid steps (over all B*T*H' entries)."""
    return jnp.mean(jnp.square(masked_outputs(outputs, lengths)))
