"""`RGLRUCell` and `GriffinBlock` params from and to Google DeepMind's
``recurrentgemma`` (``recurrentgemma.jax.layers.RGLRU`` and
``recurrentgemma.jax.modules.RecurrentBlock``, Flax linen modules).

recurrentgemma nests the gates' weights (``input_gate: {w, b}``); jaxrnn keeps
one flat dict per cell, and names the convolution's ``w, b`` ``kernel,
bias``. The arrays are the same, no transposes.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxrnn.cells.rg_lru import RGLRUCell
from jaxrnn.layers.griffin import GriffinBlock

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
) -> tuple[Any, dict[str, Any]]:
    """An `RGLRUCell` from a recurrentgemma ``RGLRU``, or a `GriffinBlock`
    from a ``RecurrentBlock``, and its params.

    Args:
      module: the ``RGLRU`` (its ``width``, ``num_heads``, ``min_rad``,
        dtypes and ``only_real`` are read; ``only_real=False``, the complex
        variant, has no jaxrnn counterpart) or ``RecurrentBlock`` (its
        widths, heads, ``conv1d_temporal_width``, ``min_rad``, dtypes and
        ``lru_only_real``).
      variables: its ``{'params': ...}`` (or the params alone).

    Returns:
      ``(cell, params)`` or ``(block, params)``; the params hold the same
      arrays.

    Raises:
      ValueError: a complex module, or variables with missing, extra or
        wrongly shaped arrays.
    """
    if type(module).__name__ == "RecurrentBlock":
        return _block_from_recurrentgemma(module, variables)
    return _cell_from_recurrentgemma(module, variables)


def _cell_from_recurrentgemma(module, variables):
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
    params = _rg_lru_params(variables.get("params", variables))
    cell.check_params(params, cell.units)
    return cell, params


def _rg_lru_params(tree: Any) -> dict[str, Any]:
    """An RGLRU's params tree as `RGLRUCell` params (not yet checked)."""
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
    return params


def to_recurrentgemma(
    cell: RGLRUCell | GriffinBlock, params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """recurrentgemma's ``(module, variables)`` computing what `cell` does
    with `params`: an ``RGLRU`` for an `RGLRUCell` (the same at positions
    after a document's first, where recurrentgemma does not reset the
    state), a ``RecurrentBlock`` for a `GriffinBlock` (the same
    everywhere: the block restarts as recurrentgemma does).

    Raises:
      ValueError: params of the wrong shapes, or a cell recurrentgemma
        cannot express (c or max_rad changed).
      ImportError: recurrentgemma is not installed.
    """
    if isinstance(cell, GriffinBlock):
        return _block_to_recurrentgemma(cell, params)
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


def _block_from_recurrentgemma(module, variables):
    if not getattr(module, "lru_only_real", True):
        raise ValueError(
            "recurrentgemma's RecurrentBlock(lru_only_real=False) (a complex "
            "RG-LRU) has no jaxrnn counterpart."
        )
    block = GriffinBlock(
        int(module.width),
        num_heads=int(module.num_heads),
        lru_width=None if module.lru_width is None else int(module.lru_width),
        conv1d_temporal_width=int(module.conv1d_temporal_width),
        min_rad=float(module.min_rad),
        final_w_init_variance_scale=float(module.final_w_init_variance_scale),
        dtype=module.dtype,
        param_dtype=jnp.dtype(module.param_dtype).name,
    )
    tree = variables.get("params", variables)
    expected = {"linear_x", "linear_y", "linear_out", "conv_1d", "rg_lru"}
    if not isinstance(tree, dict) or set(tree) != expected:
        raise ValueError(
            f"recurrentgemma RecurrentBlock variables must hold "
            f"{sorted(expected)}, got "
            f"{sorted(tree) if isinstance(tree, dict) else type(tree).__name__}."
        )
    conv = tree["conv_1d"]
    if not isinstance(conv, dict) or set(conv) != {"w", "b"}:
        raise ValueError(
            "recurrentgemma RecurrentBlock variables' conv_1d must hold w "
            "and b."
        )
    rg_lru = _rg_lru_params(tree["rg_lru"])
    params = {
        name: dict(tree[name])
        for name in ("linear_x", "linear_y", "linear_out")
    }
    params["conv_1d"] = {"kernel": conv["w"], "bias": conv["b"]}
    params["rg_lru"] = rg_lru
    # recurrentgemma's block reads inputs of its own width.
    block.check_params(params, block.width)
    return block, params


def _block_to_recurrentgemma(block, params):
    from recurrentgemma.jax import modules  # pyright: ignore[reportMissingImports]

    # recurrentgemma's block reads inputs of its own width.
    block.check_params(params, block.width)
    module = modules.RecurrentBlock(
        width=block.width,
        num_heads=block.num_heads,
        lru_width=block.lru_width,
        conv1d_temporal_width=block.conv1d_temporal_width,
        final_w_init_variance_scale=block.final_w_init_variance_scale,
        dtype=block.dtype,
        param_dtype=jnp.dtype(block.param_dtype),
        min_rad=block.min_rad,
    )
    _, rg_lru = to_recurrentgemma(block.rg_lru, params["rg_lru"])
    tree = {
        name: dict(params[name])
        for name in ("linear_x", "linear_y", "linear_out")
    }
    tree["conv_1d"] = {
        "w": params["conv_1d"]["kernel"],
        "b": params["conv_1d"]["bias"],
    }
    tree["rg_lru"] = rg_lru["params"]
    return module, {"params": tree}


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(tree, dict):
        return [
            path
            for key, value in tree.items()
            for path in _paths(value, (*prefix, str(key)))
        ]
    return [prefix]
