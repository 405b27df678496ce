"""Reading and checking a torch state dict before any array is converted.

The names a jaxrnn structure stands for (`expected_names`), the part of a
whole model's state dict under a module path (`under_prefix`), the values
as NumPy float arrays (`numpy_state`, torch tensors on any device
included) and each array's shape (`check_shapes`). The messages say what
the state dict looks like (``num_layers``, ``bidirectional``, ``bias``, a
module it fits) and suggest the ``prefix`` that would fit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxrnn.interop._torch_cells import name_suffix

_KEY = re.compile(r"(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?")


def under_prefix(
    state_dict: Any, prefix: str, expected: list[str]
) -> Mapping[str, Any]:
    """The names under `prefix`, without it; all of `state_dict` for an
    empty prefix. `expected` (the names the layer needs) shapes the hint
    when nothing starts with `prefix`."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "`state_dict` must be a dict of arrays (a torch "
            "module's state_dict()), got "
            f"{type(state_dict).__name__}."
        )
    if not isinstance(prefix, str):
        raise TypeError(
            f"`prefix` must be a string such as 'lstm.', got "
            f"{type(prefix).__name__}."
        )
    if not prefix:
        return state_dict
    selected = {
        name[len(prefix) :]: value
        for name, value in state_dict.items()
        if isinstance(name, str) and name.startswith(prefix)
    }
    if not selected:
        heads = sorted(
            {
                str(name).rpartition(".")[0] + "."
                for name in state_dict
                if "." in str(name)
            }
        )
        raise ValueError(
            f"No name in `state_dict` starts with `prefix` "
            f"{prefix!r}; its names start with {heads or ['']}."
            f"{_prefix_hint(state_dict, expected, '')}"
        )
    return selected


def numpy_state(
    state_dict: Mapping[str, Any],
    prefix: str,
    structure: list[list[Any]],
    owner: str,
) -> dict[str, np.ndarray]:
    """The selected state dict as NumPy float arrays, once its names fit
    `structure` (`owner` names the layer in messages)."""
    # Names first: a whole model's state dict holds integer buffers that
    # are not ours to convert.
    _check_names(state_dict, structure, owner, prefix)
    return {
        name: _float_array(prefix + name, value)
        for name, value in state_dict.items()
    }


def _float_array(name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, maybe on a GPU
        if not value.is_floating_point():
            raise TypeError(
                f"state_dict[{name!r}] must be a floating "
                f"tensor, got dtype {value.dtype}."
            )
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            # NumPy has no bfloat16 of torch's; float32 holds it exactly.
            return value.float().numpy().astype(jnp.bfloat16)
        value = value.numpy()
    array = np.asarray(value)
    if not jnp.issubdtype(array.dtype, jnp.floating):
        raise TypeError(
            f"state_dict[{name!r}] must be a float array, got "
            f"dtype {array.dtype}."
        )
    return array


def float_dtype(dtype: Any) -> np.dtype | None:
    """`dtype` as a NumPy float dtype (None stays None); TypeError
    otherwise."""
    if dtype is None:
        return None
    if type(dtype).__module__ == "torch":  # torch.float32 names its kind
        dtype = str(dtype).removeprefix("torch.")
    try:
        target = jnp.dtype(dtype)
    except TypeError:
        target = None
    if target is None or not jnp.issubdtype(target, jnp.floating):
        raise TypeError(
            "`dtype` must be a float dtype such as jnp.float32 "
            f"or 'bfloat16', got {dtype!r}."
        )
    return target


def expected_names(structure: list[list[Any]]) -> list[str]:
    """torch's names for `structure` (`torch_structure`'s), in
    ``state_dict()`` order."""
    names = []
    for k, cells in enumerate(structure):
        for d, cell in enumerate(cells):
            kinds = ("weight_ih", "weight_hh") + (
                ("bias_ih", "bias_hh") if cell.use_bias else ()
            )
            names += [kind + name_suffix(k, d) for kind in kinds]
    return names


def _describe_names(names: Sequence[str]) -> str:
    """What a set of state dict names says about the torch module."""
    # A whole model's names carry a module path: 'lstm.weight_ih_l0'.
    parsed = [
        m.groups()
        for m in map(
            _KEY.fullmatch,
            (n.rpartition(".")[2] for n in names if isinstance(n, str)),
        )
        if m
    ]
    if not parsed:
        return "no torch RNN weights"
    layers = 1 + max(int(layer) for _, _, layer, _ in parsed)
    return (
        f"num_layers={layers}, "
        f"bidirectional={any(rev for *_, rev in parsed)}, "
        f"bias={any(kind == 'bias' for kind, *_ in parsed)}"
        + (", proj_size>0" if any(m == "hr" for _, m, *_ in parsed) else "")
    )


def _check_names(
    arrays: Mapping[str, Any],
    structure: list[list[Any]],
    owner: str,
    prefix: str = "",
) -> None:
    expected = expected_names(structure)
    missing = [prefix + name for name in expected if name not in arrays]
    unexpected = [
        prefix + name for name in arrays if name not in set(expected)
    ]
    if missing or unexpected:
        raise ValueError(
            f"The state dict does not fit {owner}: missing {missing}, "
            f"unexpected {unexpected}. The state dict has "
            f"{_describe_names(list(arrays))}; the layer stands for "
            f"{_describe_names(expected)}.{_prefix_hint(arrays, expected, prefix)}"
        )


def _prefix_hint(
    arrays: Mapping[str, Any], expected: list[str], prefix: str
) -> str:
    """Advice when the names sit under a module path, as in a whole model's
    state dict (``'lstm.weight_ih_l0'``)."""
    names = {name for name in arrays if isinstance(name, str)}
    found = sorted(
        name[: -len(expected[0])]
        for name in names
        if name.endswith("." + expected[0])
    )
    fits = [p for p in found if all(p + n in names for n in expected)]
    if not fits:
        return ""
    if len(fits) > 1:  # an encoder's and a decoder's LSTM, say
        return (
            " Several modules fit: pass prefix= one of "
            f"{[prefix + fit for fit in fits]}."
        )
    return (
        f" The names sit under {prefix + fits[0]!r}: pass "
        f"prefix={prefix + fits[0]!r}."
    )


def check_shapes(
    arrays: Mapping[str, np.ndarray],
    suffix: str,
    cell: Any,
    input_dim: int | None,
    owner: str,
) -> None:
    """Raises unless the arrays of one torch layer and direction (names
    ending in `suffix`) have `cell`'s shapes for inputs of `input_dim`
    (None: any)."""
    rows, units = cell.gates * cell.units, cell.units
    expected = {"weight_ih": (rows, input_dim), "weight_hh": (rows, units)}
    if cell.use_bias:
        expected.update(bias_ih=(rows,), bias_hh=(rows,))
    for kind, shape in expected.items():
        name = kind + suffix
        got = np.shape(arrays[name])
        if len(got) != len(shape) or any(
            want not in (None, have) for want, have in zip(shape, got)
        ):
            want = ", ".join(
                "*" if size is None else str(size) for size in shape
            )
            want += "," if len(shape) == 1 else ""
            raise ValueError(
                f"`{name}` must have shape ({want}) for "
                f"{owner}, got {got}; "
                f"{_guess_module(arrays)}."
            )


def _guess_module(arrays: Mapping[str, np.ndarray]) -> str:
    shape = np.shape(arrays["weight_hh_l0"])  # (G*H, H)
    gates = {1: "nn.RNN", 3: "nn.GRU", 4: "nn.LSTM"}
    if (
        len(shape) == 2
        and shape[1]
        and shape[0] % shape[1] == 0
        and (shape[0] // shape[1] in gates)
    ):
        return (
            f"the state dict looks like an {gates[shape[0] // shape[1]]} "
            f"with hidden_size={shape[1]}"
        )
    return f"weight_hh_l0 {shape} fits no torch RNN module"
