"""torch's RNN constructor arguments, read from a module or a dict.

`read_config` returns the hyperparameters `layer_from_torch` builds from,
checked as torch checks them (``mode``, ``hidden_size``, ``num_layers``,
``bias``, ``batch_first``, ``bidirectional``, ``nonlinearity``), and
refuses what jaxrnn does not reproduce (``proj_size``); `MODES` maps
torch's ``mode`` to the jaxrnn cell type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jaxrnn._validation import check_bool, check_positive_int
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.simple import SimpleRNNCell

# torch's `mode` -> (cell type, SimpleRNN activation).
MODES = {
    "RNN_TANH": (SimpleRNNCell, "tanh"),
    "RNN_RELU": (SimpleRNNCell, "relu"),
    "LSTM": (LSTMCell, None),
    "GRU": (GRUCell, None),
}
_CONFIG_DEFAULTS = {
    "input_size": None,
    "num_layers": 1,
    "bias": True,
    "batch_first": False,
    "bidirectional": False,
    "nonlinearity": None,
    "proj_size": 0,
}


def read_config(source: Any) -> dict[str, Any]:
    """torch hyperparameters from a module or a dict, validated."""
    if isinstance(source, Mapping):
        allowed = {"mode", "hidden_size", *_CONFIG_DEFAULTS}
        unknown = sorted(set(source) - allowed)
        if unknown or "mode" not in source or "hidden_size" not in source:
            note = (
                " (torch's dropout between layers acts only in training "
                "and is not reproduced)"
                if "dropout" in unknown
                else ""
            )
            raise ValueError(
                "`module_or_config` as a dict needs 'mode' and 'hidden_size' "
                f"and may have {sorted(_CONFIG_DEFAULTS)}; got keys "
                f"{sorted(source)}{note}."
            )
        config = {**_CONFIG_DEFAULTS, **source}
    elif all(
        hasattr(source, name)
        for name in ("mode", "hidden_size", "num_layers", "batch_first")
    ):
        config = {
            name: getattr(source, name, default)
            for name, default in {
                "mode": None,
                "hidden_size": None,
                **_CONFIG_DEFAULTS,
            }.items()
        }
    else:
        raise TypeError(
            "`module_or_config` must be a torch nn.RNN, nn.LSTM "
            "or nn.GRU or a dict of their arguments, got "
            f"{type(source).__name__}."
        )
    config["mode"] = _torch_mode(config["mode"], config["nonlinearity"])
    for name in ("hidden_size", "num_layers"):
        check_positive_int(name, config[name])
    if config["input_size"] is not None:
        check_positive_int("input_size", config["input_size"])
    for name in ("bias", "batch_first", "bidirectional"):
        check_bool(name, config[name])
    if config["proj_size"] != 0:
        raise ValueError(
            "LSTM's `proj_size` has no jaxrnn counterpart; it "
            f"must be 0, got {config['proj_size']!r}."
        )
    return config


def _torch_mode(mode: Any, nonlinearity: Any) -> str:
    for name, value in (("mode", mode), ("nonlinearity", nonlinearity)):
        if not isinstance(value, str) and not (
            name == "nonlinearity" and value is None
        ):
            raise TypeError(
                f"`{name}` must be a string, got {type(value).__name__}."
            )
    mode = mode.upper()
    if mode == "RNN":
        mode = f"RNN_{(nonlinearity or 'tanh').upper()}"
    if mode not in MODES:
        raise ValueError(
            f"`mode` must be one of {sorted(MODES) + ['RNN']}"
            f" (with nonlinearity 'tanh' or 'relu'), got "
            f"{mode!r}."
        )
    implied = MODES[mode][1]
    if nonlinearity is not None and nonlinearity != implied:
        raise ValueError(
            f"`nonlinearity` must be {implied!r} for mode "
            f"{mode!r}, got {nonlinearity!r}."
        )
    return mode
