"""Helpers for parity tests against real Keras 3 (JAX backend)."""

from __future__ import annotations

import numpy as np

PARITY_ERRORS: dict[str, float] = {}


def randomize_keras_weights(layer, seed: int = 0, scale: float = 0.5) -> None:
    """Random, distinct weights: constant ones would hide swapped gates."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [
            (scale * rng.standard_normal(w.shape)).astype(w.dtype)
            for w in layer.get_weights()
        ]
    )


def params_from_keras(template, weights: list[np.ndarray]):
    """Fills a jaxrnn params pytree from Keras' ``get_weights()`` order.

    Keras orders each cell's weights kernel, recurrent_kernel, bias; stacked
    cells in stack order; Bidirectional forward then backward.
    """
    weights = list(weights)

    def fill(p):
        if isinstance(p, dict) and "kernel" in p:
            out = {
                "kernel": weights.pop(0),
                "recurrent_kernel": weights.pop(0),
            }
            if "bias" in p:
                out["bias"] = weights.pop(0)
            for name in out:
                assert out[name].shape == p[name].shape, (
                    name,
                    out[name].shape,
                )
            return out
        if isinstance(p, list):
            return [fill(q) for q in p]
        return {"forward": fill(p["forward"]), "backward": fill(p["backward"])}

    params = fill(template)
    assert not weights, f"{len(weights)} Keras weights left over"
    return params


def flat(outputs) -> list[np.ndarray]:
    """Flattens a layer's return value (array, list, nested states)."""
    if isinstance(outputs, (list, tuple)):
        return [a for o in outputs for a in flat(o)]
    return [np.asarray(outputs)]


def assert_parity(name: str, ours, theirs, atol: float = 1e-5) -> float:
    """Compares flattened outputs; records the worst error under `name`."""
    ours, theirs = flat(ours), flat(theirs)
    assert len(ours) == len(theirs), (len(ours), len(theirs))
    worst = 0.0
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape, (a.shape, b.shape)
        error = float(np.max(np.abs(a - b))) if a.size else 0.0
        # NaN anywhere fails: max() would silently skip a NaN error.
        worst = max(worst, error if np.isfinite(error) else np.inf)
    PARITY_ERRORS[name] = max(PARITY_ERRORS.get(name, 0.0), worst)
    assert worst <= atol, f"{name}: max abs error {worst:.3g} > {atol}"
    return worst
