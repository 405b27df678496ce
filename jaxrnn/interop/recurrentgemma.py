"""`RGLRUCell` params from and to Google DeepMind's ``recurrentgemma``
(``recurrentgemma.jax.layers.RGLRU``, a Flax linen module).

recurrentgemma nests the gates' weights (``input_gate: {w, b}``); jaxrnn keeps
one flat dict. The arrays are the same, no transposes.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrnn.cells.rg_lru import RGLRUCell

# recurrentgemma's (module, name) -> jaxrnn's param.
_NAMES = {
    ("a_param",): "a_param",
    ("input_gate", "w"): "input_gate_kernel",
    ("input_gate", "b"): "input_gate_bias",
    ("a_gate", "w"): "a_gate_kernel",
    ("a_gate", "b"): "a_gate_bias",
}


def from_recurrentgemma(
    module: Any, variables: dict[str, Any]
) -> tuple[RGLRUCell, dict[str, Any]]:
    """An `RGLRUCell` and its params from a recurrentgemma ``RGLRU``.

    Args:
      module: the ``RGLRU`` (its ``width``, ``num_heads``, ``min_rad``,
        dtypes and ``only_real`` are read; ``only_real=False``, the complex
        variant, has no jaxrnn counterpart).
      variables: its ``{'params': ...}`` (or the params alone).

    Returns:
      ``(cell, params)``; the params hold the same arrays.

    Raises:
      ValueError: a complex module, or variables with missing, extra or
        wrongly shaped arrays.
    """
    if not getattr(module, "only_real", True):
        raise ValueError(
            "recurrentgemma's RGLRU(only_real=False) (a complex recurrence) "
            "has no jaxrnn counterpart; RGLRUCell is the real RG-LRU."
        )
    cell = RGLRUCell(
        int(module.width),
        num_heads=int(module.num_heads),
        min_rad=float(module.min_rad),
        w_init_variance_scale=float(module.w_init_variance_scale),
        dtype=module.dtype,
        param_dtype=jnp.dtype(module.param_dtype).name,
    )
    tree = variables.get("params", variables)
    found = {path for path in _paths(tree) if path not in _NAMES}
    if found:
        raise ValueError(
            f"recurrentgemma RGLRU variables hold arrays jaxrnn does not "
            f"know: {sorted('/'.join(p) for p in found)}."
        )
    params = {}
    for path, name in _NAMES.items():
        node: Any = tree
        for part in path:
            if not isinstance(node, dict) or part not in node:
                raise ValueError(
                    f"recurrentgemma RGLRU variables lack {'/'.join(path)}."
                )
            node = node[part]
        params[name] = node
    cell.check_params(params, cell.units)
    return cell, params


def to_recurrentgemma(
    cell: RGLRUCell, params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """recurrentgemma's ``(RGLRU module, variables)`` computing what `cell`
    does with `params` (at positions after a document's first, where
    recurrentgemma does not reset the state).

    Raises:
      ValueError: params of the wrong shapes.
      ImportError: recurrentgemma is not installed.
    """
    from recurrentgemma.jax import layers  # pyright: ignore[reportMissingImports]

    cell.check_params(params, cell.units)
    if cell.c != 8.0 or cell.max_rad != 0.999:
        raise ValueError(
            "recurrentgemma's RGLRU fixes c = 8 and max_rad = 0.999; got "
            f"c={cell.c}, max_rad={cell.max_rad}."
        )
    module = layers.RGLRU(
        width=cell.units,
        num_heads=cell.num_heads,
        min_rad=cell.min_rad,
        w_init_variance_scale=cell.w_init_variance_scale,
        dtype=cell.dtype,
        param_dtype=jnp.dtype(cell.param_dtype),
    )
    tree: dict[str, Any] = {}
    for path, name in _NAMES.items():
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = params[name]
    return module, {"params": tree}


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(tree, dict):
        return [
            path
            for key, value in tree.items()
            for path in _paths(value, (*prefix, str(key)))
        ]
    return [prefix]
