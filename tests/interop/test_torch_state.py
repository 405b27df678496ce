"""PyTorch state dicts: parity with nn.RNN, nn.LSTM and nn.GRU, round trips,
initial states and every rejected input."""

import itertools
import pathlib
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from keras_helpers import assert_parity  # noqa: E402

import jaxrnn  # noqa: E402
import jaxrnn.interop  # noqa: E402
from jaxrnn.interop import (  # noqa: E402
    TorchStack,
    call_like_torch,
    from_torch,
    layer_from_torch,
    to_torch,
)

B, T, D, H = 3, 6, 4, 5
MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def _module(
    mode,
    num_layers=1,
    bidirectional=False,
    bias=True,
    batch_first=False,
    seed=0,
):
    """A torch module with torch's random init (distinct gates and biases)."""
    torch.manual_seed(seed)
    kwargs = dict(
        input_size=D,
        hidden_size=H,
        num_layers=num_layers,
        bias=bias,
        batch_first=batch_first,
        bidirectional=bidirectional,
    )
    if mode.startswith("RNN"):
        return torch.nn.RNN(nonlinearity=mode[4:].lower(), **kwargs)
    return getattr(torch.nn, mode)(**kwargs)


def _inputs(batch_first, seed=1):
    rng = np.random.default_rng(seed)
    shape = (B, T, D) if batch_first else (T, B, D)
    return rng.standard_normal(shape).astype(np.float32)


def _initial_state(module, seed=2):
    rng = np.random.default_rng(seed)
    shape = (module.num_layers * (2 if module.bidirectional else 1), B, H)
    states = [
        rng.standard_normal(shape).astype(np.float32)
        for _ in range(2 if module.mode == "LSTM" else 1)
    ]
    return states[0] if len(states) == 1 else tuple(states)


def _run_torch(module, x, initial_state=None):
    """(output, h_n) or (output, (h_n, c_n)) as NumPy arrays."""
    hx = (
        None
        if initial_state is None
        else jax.tree.map(torch.from_numpy, initial_state)
    )
    with torch.no_grad():
        outputs = module(torch.from_numpy(x), hx)
    return jax.tree.map(lambda t: t.numpy(), outputs)


def _leaves(tree):
    return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


# Every mode, layer count and direction (16 structures); (bias, batch_first)
# runs through its four values so that each mode and each (num_layers,
# bidirectional) meets all four: every pair of options is covered in 16 cases
# instead of 64.
_FLAGS = list(itertools.product([True, False], [True, False]))
CASES = [
    (
        mode,
        num_layers,
        bidirectional,
        *_FLAGS[(i + 2 * (num_layers - 1) + bidirectional) % 4],
    )
    for i, mode in enumerate(MODES)
    for num_layers, bidirectional in itertools.product([1, 2], [False, True])
]
IDS = [
    f"{m}-L{n}-{'bi' if bi else 'uni'}-{'bias' if b else 'nobias'}-"
    f"{'bf' if bf else 'tm'}"
    for m, n, bi, b, bf in CASES
]
# The tests below share CASES, hence JAX's compiled scans.
over_cases = pytest.mark.parametrize(
    "mode, num_layers, bidirectional, bias, batch_first", CASES, ids=IDS
)


@over_cases
def test_outputs_and_final_states_match_torch(
    mode, num_layers, bidirectional, bias, batch_first
):
    module = _module(mode, num_layers, bidirectional, bias, batch_first)
    x = _inputs(batch_first)
    theirs = _run_torch(module, x)
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)
    ours = call_like_torch(layer, params, jnp.asarray(x))
    name = f"torch {mode}[L{num_layers}-{bidirectional}-{bias}-{batch_first}]"
    assert_parity(name, _leaves(ours), _leaves(theirs))
    if not isinstance(layer, TorchStack):
        # The layer's own Keras-style call returns torch's output too.
        assert_parity(name, layer(params, jnp.asarray(x)), theirs[0])


@over_cases
def test_initial_state_matches_torch(
    mode, num_layers, bidirectional, bias, batch_first
):
    module = _module(
        mode, num_layers, bidirectional, bias, batch_first, seed=3
    )
    x, state = _inputs(batch_first), _initial_state(module)
    theirs = _run_torch(module, x, state)
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)
    ours = call_like_torch(
        layer, params, jnp.asarray(x), jax.tree.map(jnp.asarray, state)
    )
    assert_parity(
        f"torch {mode} initial state[L{num_layers}-{bidirectional}]",
        _leaves(ours),
        _leaves(theirs),
    )


def test_unbatched_inputs_match_torch():
    mode = "LSTM"  # states as a pair: the most to get wrong
    module = _module(mode, 2, True, seed=4)
    x = _inputs(False)[:, 0]  # (T, D)
    state = jax.tree.map(lambda s: s[:, 0], _initial_state(module))
    theirs = _run_torch(module, x, state)
    layer = layer_from_torch(module)
    ours = call_like_torch(
        layer, from_torch(module.state_dict(), layer), jnp.asarray(x), state
    )
    assert_parity(f"torch {mode} unbatched", _leaves(ours), _leaves(theirs))


def _random_params(layer, seed):
    """Random params for every array: init's zero biases would hide a lost
    bias or a swapped GRU bias row."""
    shapes = jax.eval_shape(
        lambda: layer.init(jax.random.key(0), (None, None, D))
    )
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda p: jnp.asarray(0.5 * rng.standard_normal(p.shape), p.dtype),
        shapes,
    )


@over_cases
def test_to_torch_round_trip(
    mode, num_layers, bidirectional, bias, batch_first
):
    module = _module(
        mode, num_layers, bidirectional, bias, batch_first, seed=5
    )
    layer = layer_from_torch(module)
    params = _random_params(layer, 6)
    state = to_torch(params, layer)
    assert list(state) == list(module.state_dict())  # torch's order
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = _inputs(batch_first)
    assert_parity(
        f"torch {mode} round trip",
        _leaves(call_like_torch(layer, params, jnp.asarray(x))),
        _leaves(_run_torch(module, x)),
    )
    back = from_torch(state, layer)
    for ours, theirs in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("mode", ["LSTM", "RNN_TANH"])
def test_to_torch_puts_the_summed_bias_in_bias_ih(mode):
    module = _module(mode, seed=7)
    layer = layer_from_torch(module)
    state = to_torch(from_torch(module.state_dict(), layer), layer)
    torch_state = module.state_dict()
    np.testing.assert_allclose(
        state["bias_ih_l0"],
        (torch_state["bias_ih_l0"] + torch_state["bias_hh_l0"]).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(state["bias_hh_l0"], 0)


def test_from_torch_reorders_gru_gates_to_keras():
    module = _module("GRU", seed=8)
    params = from_torch(module.state_dict(), layer_from_torch(module))
    w_r, w_z, w_n = np.split(module.weight_ih_l0.detach().numpy(), 3)
    np.testing.assert_array_equal(
        params["kernel"], np.concatenate([w_z, w_r, w_n]).T
    )
    b_r, b_z, b_n = np.split(module.bias_hh_l0.detach().numpy(), 3)
    np.testing.assert_array_equal(
        params["bias"][1], np.concatenate([b_z, b_r, b_n])
    )


def test_from_torch_accepts_numpy_arrays():
    module = _module("LSTM", 2, True, seed=9)
    layer = layer_from_torch(module)
    from_tensors = from_torch(module.state_dict(), layer)
    from_arrays = from_torch(
        {k: v.numpy() for k, v in module.state_dict().items()}, layer
    )
    for a, b in zip(
        jax.tree.leaves(from_tensors), jax.tree.leaves(from_arrays)
    ):
        np.testing.assert_array_equal(a, b)


# Which structure stands for which module.


@pytest.mark.parametrize(
    "num_layers, bidirectional, kind",
    [
        (1, False, jaxrnn.LSTM),
        (2, False, jaxrnn.RNN),
        (1, True, jaxrnn.Bidirectional),
        (3, True, TorchStack),
    ],
)
def test_layer_from_torch_structure(num_layers, bidirectional, kind):
    layer = layer_from_torch(
        _module("LSTM", num_layers, bidirectional, batch_first=True)
    )
    assert type(layer) is kind
    params = jax.eval_shape(
        lambda: layer.init(jax.random.key(0), (None, None, D))
    )
    expected = {
        jaxrnn.LSTM: dict,
        jaxrnn.RNN: list,
        jaxrnn.Bidirectional: dict,
        TorchStack: list,
    }[kind]
    assert type(params) is expected
    inner = layer.layers[0] if kind is TorchStack else layer
    inner = inner.layer if isinstance(inner, jaxrnn.Bidirectional) else inner
    assert inner.time_major is False and inner.return_sequences is True


@pytest.mark.parametrize(
    "config, cell_type, activation",
    [
        (
            {"mode": "RNN", "nonlinearity": "relu"},
            jaxrnn.SimpleRNNCell,
            "relu",
        ),
        ({"mode": "RNN"}, jaxrnn.SimpleRNNCell, "tanh"),
        ({"mode": "rnn_relu"}, jaxrnn.SimpleRNNCell, "relu"),
        ({"mode": "GRU", "bias": False}, jaxrnn.GRUCell, "tanh"),
    ],
)
def test_layer_from_torch_from_a_dict(config, cell_type, activation):
    layer = layer_from_torch({"hidden_size": H, "input_size": D, **config})
    assert type(layer.cell) is cell_type
    assert layer.cell.activation == activation
    assert layer.cell.use_bias == config.get("bias", True)
    assert layer.time_major is True


@pytest.mark.parametrize(
    "config, error, match",
    [
        ({"mode": "LSTM"}, ValueError, "hidden_size"),
        (
            {"mode": "LSTM", "hidden_size": 4, "dropout": 0.1},
            ValueError,
            "dropout",
        ),
        (
            {"mode": "LSTM", "hidden_size": 4, "proj_size": 2},
            ValueError,
            "proj_size",
        ),
        ({"mode": "LSTM", "hidden_size": 0}, ValueError, "hidden_size"),
        (
            {"mode": "LSTM", "hidden_size": 4, "num_layers": 1.0},
            TypeError,
            "num_layers",
        ),
        (
            {"mode": "LSTM", "hidden_size": 4, "batch_first": 1},
            TypeError,
            "batch_first",
        ),
        (
            {"mode": "LSTM", "hidden_size": 4, "input_size": -1},
            ValueError,
            "input_size",
        ),
        ({"mode": "SRU", "hidden_size": 4}, ValueError, "mode"),
        ({"mode": 1, "hidden_size": 4}, TypeError, "mode"),
        (
            {"mode": "LSTM", "hidden_size": 4, "nonlinearity": "tanh"},
            ValueError,
            "nonlinearity",
        ),
        (
            {"mode": "RNN_TANH", "hidden_size": 4, "nonlinearity": "relu"},
            ValueError,
            "nonlinearity",
        ),
        (
            {"mode": "RNN", "hidden_size": 4, "nonlinearity": "gelu"},
            ValueError,
            "mode",
        ),
    ],
)
def test_layer_from_torch_rejects_bad_configs(config, error, match):
    with pytest.raises(error, match=match):
        layer_from_torch(config)


def test_layer_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="module_or_config.*Linear"):
        layer_from_torch(torch.nn.Linear(2, 3))


def test_layer_from_torch_rejects_proj_size_modules():
    with pytest.raises(ValueError, match="proj_size"):
        layer_from_torch(torch.nn.LSTM(D, H, proj_size=2))


# Mismatched state dicts: the message names the layer and the array.


def _state(mode="LSTM", num_layers=1, bidirectional=False, bias=True):
    return dict(_module(mode, num_layers, bidirectional, bias).state_dict())


def test_from_torch_rejects_another_module_type():
    layer = layer_from_torch({"mode": "GRU", "hidden_size": H})
    with pytest.raises(
        ValueError,
        match=r"`weight_ih_l0` must have shape "
        r"\(15, \*\) for GRU\(units=5\), got \(20, 4\); .*"
        r"nn.LSTM with hidden_size=5",
    ):
        from_torch(_state("LSTM"), layer)


def test_from_torch_rejects_another_hidden_size():
    layer = layer_from_torch({"mode": "LSTM", "hidden_size": H + 1})
    with pytest.raises(ValueError, match=r"weight_ih_l0.*LSTM\(units=6\)"):
        from_torch(_state("LSTM"), layer)


def test_from_torch_rejects_a_misshapen_array_deep_in_the_stack():
    state = _state("GRU", 2, True)
    state["weight_hh_l1_reverse"] = state["weight_hh_l1_reverse"][:, :-1]
    layer = layer_from_torch(
        {
            "mode": "GRU",
            "hidden_size": H,
            "num_layers": 2,
            "bidirectional": True,
        }
    )
    with pytest.raises(
        ValueError,
        match=r"`weight_hh_l1_reverse` must have "
        r"shape \(15, 5\) for TorchStack",
    ):
        from_torch(state, layer)


def test_from_torch_rejects_another_input_size_between_directions():
    state = _state("RNN_TANH", 1, True)
    state["weight_ih_l0_reverse"] = torch.zeros(H, D + 1)
    layer = layer_from_torch(
        {"mode": "RNN", "hidden_size": H, "bidirectional": True}
    )
    with pytest.raises(ValueError, match=r"weight_ih_l0_reverse.*\(5, 4\)"):
        from_torch(state, layer)


def test_from_torch_rejects_missing_arrays():
    state = _state("LSTM", 2, True)
    del state["bias_hh_l1_reverse"]
    layer = layer_from_torch(
        {
            "mode": "LSTM",
            "hidden_size": H,
            "num_layers": 2,
            "bidirectional": True,
        }
    )
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l1_reverse'\]"):
        from_torch(state, layer)


@pytest.mark.parametrize(
    "config, match",
    [
        (
            {"bias": False},
            r"unexpected \['bias_ih_l0', 'bias_hh_l0'\].*bias=True"
            r".*bias=False",
        ),
        (
            {"num_layers": 2},
            r"missing \['weight_ih_l1'.*num_layers=1.*"
            r"num_layers=2",
        ),
        ({"bidirectional": True}, r"missing \['weight_ih_l0_reverse'"),
    ],
)
def test_from_torch_rejects_another_configuration(config, match):
    layer = layer_from_torch({"mode": "LSTM", "hidden_size": H, **config})
    with pytest.raises(ValueError, match=match):
        from_torch(_state("LSTM"), layer)


def test_from_torch_rejects_unexpected_arrays():
    state = {**_state("GRU"), "rnn.weight_ih_l0": torch.zeros(1)}
    with pytest.raises(
        ValueError,
        match=r"GRU\(units=5\).*unexpected "
        r"\['rnn.weight_ih_l0'\]",
    ):
        from_torch(state, layer_from_torch({"mode": "GRU", "hidden_size": H}))


def test_from_torch_rejects_integer_arrays():
    state = {**_state("GRU"), "bias_ih_l0": np.zeros(3 * H, np.int32)}
    with pytest.raises(TypeError, match=r"state_dict\['bias_ih_l0'\].*int32"):
        from_torch(state, layer_from_torch({"mode": "GRU", "hidden_size": H}))


def test_from_torch_rejects_a_non_dict():
    with pytest.raises(TypeError, match="state_dict.*list"):
        from_torch([], layer_from_torch({"mode": "GRU", "hidden_size": H}))


@pytest.mark.parametrize(
    "layer, error, match",
    [
        (torch.nn.LSTM(D, H), TypeError, "`layer`.*LSTM"),
        (jaxrnn.GRU(H, reset_after=False), ValueError, "reset_after"),
        (jaxrnn.LSTM(H, activation="relu"), ValueError, "activation"),
        (
            jaxrnn.LSTM(H, recurrent_activation="hard_sigmoid"),
            ValueError,
            "recurrent_activation",
        ),
        (jaxrnn.SimpleRNN(H, activation="gelu"), ValueError, "tanh or relu"),
        (jaxrnn.LSTM(H, go_backwards=True), ValueError, "go_backwards"),
        (
            jaxrnn.RNN([jaxrnn.LSTMCell(H), jaxrnn.LSTMCell(H + 1)]),
            ValueError,
            "mixes",
        ),
        (
            jaxrnn.RNN([jaxrnn.LSTMCell(H), jaxrnn.GRUCell(H)]),
            ValueError,
            "mixes",
        ),
        (
            jaxrnn.Bidirectional(jaxrnn.RNN([jaxrnn.LSTMCell(H)] * 2)),
            ValueError,
            "TorchStack",
        ),
        (
            jaxrnn.Bidirectional(
                jaxrnn.LSTM(H), backward_layer=jaxrnn.GRU(H, go_backwards=True)
            ),
            ValueError,
            "mixes",
        ),
        (jaxrnn.RNN(jaxrnn.StackedCells([jaxrnn.LSTMCell(H)])), None, None),
    ],
    ids=[
        "torch-module",
        "reset-before",
        "lstm-relu",
        "hard-sigmoid",
        "gelu",
        "go-backwards",
        "mixed-units",
        "mixed-cells",
        "bi-stacked",
        "bi-mixed",
        "ok-stacked-one",
    ],
)
def test_from_torch_rejects_layers_without_a_torch_counterpart(
    layer, error, match
):
    state = _state("LSTM")
    if error is None:
        from_torch(state, layer)
        return
    with pytest.raises(error, match=match):
        from_torch(state, layer)


def test_custom_cells_have_no_torch_counterpart():
    class Cell(jaxrnn.SimpleRNNCell):
        pass

    with pytest.raises(TypeError, match="Cell.*counterparts"):
        from_torch(_state("RNN_TANH"), jaxrnn.RNN(Cell(H)))


# to_torch and call_like_torch rejections.


def test_to_torch_rejects_misshapen_params():
    layer = layer_from_torch(
        {
            "mode": "LSTM",
            "hidden_size": H,
            "num_layers": 2,
            "bidirectional": True,
        }
    )
    params = _random_params(layer, 0)
    params[1]["backward"]["recurrent_kernel"] = jnp.zeros((H, 3 * H))
    with pytest.raises(
        ValueError,
        match=r"torch layer 1, reverse.*"
        r"\['recurrent_kernel'\] must have shape \(5, 20\)",
    ):
        to_torch(params, layer)


def test_to_torch_rejects_missing_bias():
    layer = layer_from_torch({"mode": "GRU", "hidden_size": H})
    params = _random_params(layer, 0)
    del params["bias"]
    with pytest.raises(ValueError, match=r"GRUCell.*missing \['bias'\]"):
        to_torch(params, layer)


@pytest.mark.parametrize(
    "config, params, error, match",
    [
        ({"num_layers": 2}, {}, TypeError, "list of 2"),
        (
            {"num_layers": 3, "bidirectional": True},
            [{}, {}],
            TypeError,
            "TorchStack params.*list of 3",
        ),
        ({"bidirectional": True}, [], TypeError, "backward.*forward"),
    ],
)
def test_to_torch_rejects_params_of_another_structure(
    config, params, error, match
):
    layer = layer_from_torch({"mode": "GRU", "hidden_size": H, **config})
    with pytest.raises(error, match=match):
        to_torch(params, layer)


@pytest.mark.parametrize(
    "mode, state, error, match",
    [
        ("LSTM", np.zeros((1, B, H), np.float32), TypeError, r"\(h_0, c_0\)"),
        (
            "GRU",
            (np.zeros((1, B, H), np.float32),) * 2,
            TypeError,
            "h_0 for nn.GRU",
        ),
        (
            "GRU",
            np.zeros((2, B, H), np.float32),
            ValueError,
            r"initial_state h_0.*\(1, 3, 5\)",
        ),
        (
            "LSTM",
            (np.zeros((1, B, H), np.float32), np.zeros((1, B, 1), np.float32)),
            ValueError,
            r"initial_state c_0",
        ),
    ],
)
def test_call_like_torch_rejects_bad_initial_states(mode, state, error, match):
    layer = layer_from_torch({"mode": mode, "hidden_size": H})
    params = _random_params(layer, 0)
    with pytest.raises(error, match=match):
        call_like_torch(layer, params, jnp.zeros((T, B, D)), state)


def test_call_like_torch_rejects_bad_inputs():
    layer = layer_from_torch({"mode": "GRU", "hidden_size": H})
    params = _random_params(layer, 0)
    with pytest.raises(ValueError, match=r"inputs.*\(T, B, D\)"):
        call_like_torch(layer, params, jnp.zeros((1, T, B, D)))


def test_call_like_torch_needs_concatenated_directions():
    layer = jaxrnn.Bidirectional(
        jaxrnn.GRU(H, return_sequences=True), merge_mode="sum"
    )
    params = _random_params(layer, 0)
    with pytest.raises(ValueError, match="merge_mode='concat'"):
        call_like_torch(layer, params, jnp.zeros((B, T, D)))


# TorchStack on its own.


def _bi(**kwargs):
    return jaxrnn.Bidirectional(jaxrnn.GRU(H, return_sequences=True, **kwargs))


@pytest.mark.parametrize(
    "layers, error, match",
    [
        (_bi(), TypeError, "list of layers"),
        ([], ValueError, "at least one"),
        ([_bi(), "gru"], TypeError, "str"),
        (
            [jaxrnn.Bidirectional(jaxrnn.GRU(H))],
            ValueError,
            r"layers\[0\].*return_sequences=True",
        ),
        (
            [_bi(), _bi(return_state=True)],
            ValueError,
            r"layers\[1\].*return_state=False",
        ),
        (
            [
                jaxrnn.Bidirectional(
                    jaxrnn.GRU(H, return_sequences=True), merge_mode="ave"
                )
            ],
            ValueError,
            "concat",
        ),
        ([_bi(), _bi(time_major=True)], ValueError, "time_major"),
        ([_bi(), jaxrnn.GRU(H, return_sequences=True)], ValueError, "mixes"),
        (
            [jaxrnn.RNN([jaxrnn.GRUCell(H)] * 2, return_sequences=True)],
            ValueError,
            "one torch layer",
        ),
    ],
)
def test_torch_stack_rejects(layers, error, match):
    with pytest.raises(error, match=match):
        TorchStack(layers)


def test_torch_stack_of_unidirectional_layers_matches_stacked_cells():
    """Layer by layer and cell by cell compute the same numbers."""
    module = _module("LSTM", 3, seed=10)
    stack = TorchStack(
        [jaxrnn.LSTM(H, return_sequences=True, time_major=True)] * 3
    )
    params = from_torch(module.state_dict(), stack)
    assert_parity(
        "torch LSTM TorchStack",
        _leaves(stack(params, jnp.asarray(_inputs(False)))),
        _leaves(_run_torch(module, _inputs(False))),
    )


def test_torch_stack_init_sizes_each_layer():
    stack = layer_from_torch(
        {
            "mode": "LSTM",
            "hidden_size": H,
            "num_layers": 3,
            "bidirectional": True,
        }
    )
    params = _random_params(stack, 0)
    assert [p["forward"]["kernel"].shape for p in params] == [
        (D, 4 * H),
        (2 * H, 4 * H),
        (2 * H, 4 * H),
    ]
    state = to_torch(params, stack)
    assert state["weight_ih_l2_reverse"].shape == (4 * H, 2 * H)


def test_torch_stack_jits():
    stack = layer_from_torch(
        {
            "mode": "RNN_TANH",
            "hidden_size": H,
            "num_layers": 2,
            "bidirectional": True,
        }
    )
    params = stack.init(jax.random.key(0), (None, None, D))
    x = jnp.asarray(_inputs(False))
    y, h_n = jax.jit(stack)(params, x)
    y_eager, h_eager = stack(params, x)
    np.testing.assert_allclose(y, y_eager, atol=1e-6)
    np.testing.assert_allclose(h_n, h_eager, atol=1e-6)


# The package.


@pytest.mark.parametrize(
    "name",
    [
        "TorchStack",
        "call_like_torch",
        "from_torch",
        "layer_from_torch",
        "to_torch",
    ],
)
def test_public_names_are_exported_with_docstrings(name):
    assert name in jaxrnn.interop.__all__
    assert getattr(jaxrnn.interop, name).__doc__


def test_importing_interop_does_not_import_torch():
    code = (
        "import sys, jaxrnn.interop; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        cwd=pathlib.Path(__file__).parents[2],
    )


# Half precision, whole-model state dicts, non-floating tensors.


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_from_torch_keeps_half_precision(mode, dtype):
    module = _module(mode, 2, True, seed=11).to(getattr(torch, dtype))
    layer = layer_from_torch(module)
    half = from_torch(module.state_dict(), layer)
    full = from_torch(
        {k: v.float() for k, v in module.state_dict().items()}, layer
    )
    for ours, wide in zip(jax.tree.leaves(half), jax.tree.leaves(full)):
        assert ours.dtype == jnp.dtype(dtype)
        # Weights exactly torch's; a summed bias rounded once from float32.
        np.testing.assert_array_equal(ours, wide.astype(dtype))


def test_to_torch_keeps_bfloat16_and_loads_into_torch():
    module = _module("LSTM", seed=12).to(torch.bfloat16)
    layer = layer_from_torch(module)
    state = to_torch(from_torch(module.state_dict(), layer), layer)
    assert {v.dtype for v in state.values()} == {jnp.dtype("bfloat16")}
    module.load_state_dict(
        {
            k: torch.from_numpy(v.astype(np.float32)).bfloat16()
            for k, v in state.items()
        }
    )
    torch_state = module.state_dict()
    np.testing.assert_array_equal(
        state["weight_hh_l0"], torch_state["weight_hh_l0"].float().numpy()
    )


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(13)
        self.lstm = torch.nn.LSTM(D, H, num_layers=2)
        self.norm = torch.nn.BatchNorm1d(H)  # an int64 buffer too
        self.head = torch.nn.Linear(H, 2)


def test_from_torch_reads_a_whole_model_under_a_prefix():
    model = _Model()
    layer = layer_from_torch(model.lstm)
    ours = from_torch(model.state_dict(), layer, prefix="lstm.")
    alone = from_torch(model.lstm.state_dict(), layer)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(alone)):
        np.testing.assert_array_equal(a, b)


def test_from_torch_suggests_the_prefix():
    model = _Model()
    with pytest.raises(
        ValueError,
        match=r"does not fit.*The state dict has "
        r"num_layers=\d.*under 'lstm.': pass prefix='lstm.'",
    ):
        from_torch(model.state_dict(), layer_from_torch(model.lstm))
    # Without its dot, the prefix glues the names: the hint names it whole.
    with pytest.raises(
        ValueError,
        match=r"The names sit under 'lstm.': pass "
        r"prefix='lstm.'",
    ):
        from_torch(
            model.state_dict(), layer_from_torch(model.lstm), prefix="lstm"
        )


def test_from_torch_rejects_a_prefix_matching_nothing():
    model = _Model()
    with pytest.raises(
        ValueError,
        match=r"`prefix` 'rnn.'.*\['head.', "
        r"'lstm.', 'norm.'\]",
    ):
        from_torch(
            model.state_dict(), layer_from_torch(model.lstm), prefix="rnn."
        )


def test_from_torch_rejects_a_prefix_not_a_string():
    with pytest.raises(TypeError, match="`prefix` must be a string"):
        from_torch(
            _state("GRU"),
            layer_from_torch({"mode": "GRU", "hidden_size": H}),
            prefix=0,
        )


@pytest.mark.parametrize("dtype", ["int64", "bool", "complex64"])
def test_from_torch_rejects_non_floating_tensors(dtype):
    state = _state("LSTM")
    state["bias_hh_l0"] = state["bias_hh_l0"].to(getattr(torch, dtype))
    with pytest.raises(
        TypeError,
        match=rf"state_dict\['bias_hh_l0'\] must "
        rf"be a floating tensor, got dtype torch.{dtype}",
    ):
        from_torch(state, layer_from_torch({"mode": "LSTM", "hidden_size": H}))


# A whole PyTorch model: embedding, encoder LSTM (one module down), decoder.

VOCAB, CLASSES = 11, 3


class _Tagger(torch.nn.Module):
    """Tags each token; the LSTM's names read 'encoder.lstm.weight_ih_l0'."""

    def __init__(self, seed=14):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = torch.nn.Embedding(VOCAB, D)
        self.encoder = torch.nn.Module()
        self.encoder.lstm = torch.nn.LSTM(
            D, H, num_layers=2, bidirectional=True, batch_first=True
        )
        self.decoder = torch.nn.Linear(2 * H, CLASSES)

    def forward(self, tokens):
        y, _ = self.encoder.lstm(self.embedding(tokens))
        return self.decoder(y)


def _tokens(seed=15):
    return np.random.default_rng(seed).integers(0, VOCAB, (B, T))


def _tagger_in_jax(state, layer, params, tokens):
    """The same model in JAX: embedding and decoder straight from `state`."""

    def array(name):
        return jnp.asarray(state[name].float().numpy())

    x = array("embedding.weight")[tokens]  # (B, T, D)
    y, _ = call_like_torch(layer, params, x)
    return y @ array("decoder.weight").T + array("decoder.bias")


def test_a_whole_model_matches_torch():
    model = _Tagger()
    layer = layer_from_torch(model.encoder.lstm)
    params = from_torch(model.state_dict(), layer, prefix="encoder.lstm.")
    tokens = _tokens()
    with torch.no_grad():
        theirs = model(torch.from_numpy(tokens)).numpy()
    assert_parity(
        "torch whole model",
        _tagger_in_jax(model.state_dict(), layer, params, tokens),
        theirs,
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_half_precision_model_converts_exactly(dtype):
    """Half weights become float32 params with nothing rounded on the way:
    the model matches torch's own float32 copy of the half weights."""
    model = _Tagger().to(getattr(torch, dtype))
    layer = layer_from_torch(model.encoder.lstm)
    state = model.state_dict()
    params = from_torch(
        state, layer, prefix="encoder.lstm.", dtype=jnp.float32
    )
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    tokens = _tokens()
    with torch.no_grad():
        theirs = model.float()(torch.from_numpy(tokens)).numpy()
    assert_parity(
        f"torch whole model {dtype}",
        _tagger_in_jax(state, layer, params, tokens),
        theirs,
    )


@pytest.mark.parametrize(
    "dtype, atol", [("float16", 4e-3), ("bfloat16", 3e-2)]
)
def test_a_half_precision_model_runs_in_half_precision(dtype, atol):
    """Kept in half precision (the default), the params run on half inputs
    and agree with torch's half-precision run to half precision; states in
    half precision too when h_0 and c_0 are."""
    module = _module("LSTM", 1, True, batch_first=True, seed=17).to(
        getattr(torch, dtype)
    )
    layer = layer_from_torch(module)
    params = from_torch(module.state_dict(), layer)
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(dtype)}
    x, state = _inputs(True), _initial_state(module)
    # Jitted: eager half-precision steps dispatch slowly on CPUs.
    y, (h_n, c_n) = jax.jit(lambda *args: call_like_torch(layer, *args))(
        params,
        jnp.asarray(x, dtype),
        jax.tree.map(lambda s: jnp.asarray(s, dtype), state),
    )
    assert y.dtype == h_n.dtype == c_n.dtype == jnp.dtype(dtype)
    with torch.no_grad():
        theirs = module(
            torch.from_numpy(x).to(getattr(torch, dtype)),
            jax.tree.map(
                lambda s: torch.from_numpy(s).to(getattr(torch, dtype)), state
            ),
        )
    theirs = [t.float().numpy() for t in jax.tree.leaves(theirs)]
    for ours, want in zip(_leaves([y, h_n, c_n]), theirs):
        np.testing.assert_allclose(ours.astype(np.float32), want, atol=atol)


@pytest.mark.parametrize(
    "dtype", [jnp.bfloat16, "float16", torch.float64, np.float32]
)
def test_from_torch_casts_to_the_dtype_asked_for(dtype):
    state = _state("GRU")
    layer = layer_from_torch({"mode": "GRU", "hidden_size": H})
    params = from_torch(state, layer, dtype=dtype)
    # float64 needs jax_enable_x64; without it JAX holds float32.
    want = {"torch.float64": "float32"}.get(str(dtype), dtype)
    assert {a.dtype for a in params.values()} == {jnp.dtype(want)}
    np.testing.assert_array_equal(
        params["recurrent_kernel"],
        np.asarray(from_torch(state, layer)["recurrent_kernel"]).astype(want),
    )


@pytest.mark.parametrize(
    "dtype, got",
    [
        ("int32", "'int32'"),
        ("foo", "'foo'"),
        (3, "3"),
        (torch.int64, "'int64'"),
    ],
)
def test_from_torch_rejects_a_dtype_not_float(dtype, got):
    with pytest.raises(
        TypeError,
        match=r"`dtype` must be a float dtype "
        rf"such as jnp.float32 or 'bfloat16', got {got}\.",
    ):
        from_torch(
            _state("GRU"),
            layer_from_torch({"mode": "GRU", "hidden_size": H}),
            dtype=dtype,
        )


@pytest.mark.parametrize("prefix", ["lstm.", "encoder.", "encoder.lstm", ""])
def test_a_wrong_prefix_suggests_the_right_one(prefix):
    model = _Tagger()
    with pytest.raises(ValueError, match=r"pass prefix='encoder.lstm.'"):
        from_torch(
            model.state_dict(),
            layer_from_torch(model.encoder.lstm),
            prefix=prefix,
        )


def test_two_fitting_modules_are_both_suggested():
    model = _Tagger()
    model.decoder_lstm = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True)
    with pytest.raises(
        ValueError,
        match=r"Several modules fit: pass prefix= "
        r"one of \['decoder_lstm.', 'encoder.lstm.'\]",
    ):
        from_torch(model.state_dict(), layer_from_torch(model.encoder.lstm))


def test_to_torch_loads_into_a_whole_model_under_its_prefix():
    model, other = _Tagger(), _Tagger(seed=16)
    layer = layer_from_torch(model.encoder.lstm)
    params = from_torch(model.state_dict(), layer, prefix="encoder.lstm.")
    other.load_state_dict(
        {
            **other.state_dict(),
            **{
                "encoder.lstm." + name: torch.from_numpy(value)
                for name, value in to_torch(params, layer).items()
            },
        }
    )
    tokens = torch.from_numpy(_tokens())
    with torch.no_grad():
        mixed = other.encoder.lstm(model.embedding(tokens))[0].numpy()
        theirs = model.encoder.lstm(model.embedding(tokens))[0].numpy()
    assert_parity("torch whole model round trip", mixed, theirs)
