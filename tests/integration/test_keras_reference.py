"""The examples/keras_reference scripts against the posts they rebuild.

Two kinds of checks:
  - each script runs as a newcomer runs it and prints the shapes and numbers
    its post prints (strings taken from the post's text), plus the shapes
    that follow from the post's own sizes (batch_size = 3 and so on);
  - each example's model, built in real Keras 3 (JAX backend), has the same
    parameter count and output shapes as jaxrnn's, and with Keras' random
    weights copied into jaxrnn params the same outputs to 1e-5.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import math
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
from integration.scripts import (
    EXAMPLES,
    ROOT,
    finish,
    load_script,
    start_script,
)
from keras_helpers import assert_parity, params_from_keras

import jaxrnn
from jaxrnn import layers

SCRIPTS = EXAMPLES / "keras_reference"
REFERENCE_DIRS = [
    ROOT / "shared" / "reference",
    ROOT.parent / "shared" / "reference",
]


@dataclasses.dataclass(frozen=True)
class Block:
    """What one example of a script prints.

    `header` starts the example's output; the block runs to the next
    block's header. `from_document` strings are copied from the post (and
    checked to be there); `derived` ones follow from the post's sizes. A
    tuple means: one line holds all of its strings.
    """

    header: str
    from_document: tuple[Any, ...] = ()
    derived: tuple[Any, ...] = ()


EXPECTED: dict[str, tuple[str, list[Block]]] = {
    "rnn_layer.py": (
        "000_30a9b041faa6435a.txt",
        [
            Block(
                "single cell: RNN(LSTMCell(4))", ("(None, 4)",), ("-> (3, 4)",)
            ),
            Block(
                "stacked RNN: RNN([LSTMCell(32), LSTMCell(64)])",
                ("(None, 64)",),
                ("-> (3, 64)",),
            ),
            Block(
                "arguments",
                (
                    "[batch_size, timesteps, output_size]",
                    "[batch_size, state_size]",
                ),
                (
                    "-> (3, 6, 4)",
                    "[(3, 4), (3, 4), (3, 4)]",
                    "-> (6, 3, 4)",
                    "reversed input: True",
                    "two halves equal one call: True",
                    "same numbers as the scan: True",
                    "are zeros: True",
                ),
            ),
            Block(
                "masking",
                ("mask_zero",),
                ("(2, 5) -> (2, 4)", "padding ignored: True"),
            ),
        ],
    ),
    "rnn_api_recap.py": (
        "001_f17305df5fde5906.txt",
        [
            Block(
                "single cell: RNN(LSTMCell(4))", ("(None, 4)",), ("-> (2, 4)",)
            ),
            Block(
                "stacked RNN: RNN([LSTMCell(32), LSTMCell(64)])",
                ("(None, 64)",),
                ("-> (2, 64)",),
            ),
            Block(
                "return_state=True",
                (),
                (
                    "[(None, 4), (None, 4), (None, 4)]",
                    "[(2, 4), (2, 4), (2, 4)]",
                ),
            ),
            Block(
                "return_sequences=True",
                ("[batch_size, timesteps, output_size]",),
                ("(None, None, 4)", "-> (2, 7, 4)"),
            ),
            Block("time_major=True", (), ("(7, 2, 5) -> (7, 2, 4)",)),
        ],
    ),
    "rnn_cells_and_states.py": (
        "002_7b8868fcf1b7d639.txt",
        [
            Block(
                "cell under RNN",
                (
                    "[batch_size, hidden_dim]",
                    "[batch_size, seq_length, hidden_dim]",
                ),
                (
                    "[(3, 4), (3, 4)]",
                    "-> (3, 5, 4)",
                    "-> (3, 4)",
                    "changes the output: True",
                ),
            ),
            Block(
                "LSTM(4, return_sequences=True, return_state=True)",
                (),
                ("[(3, 5, 4), (3, 4), (3, 4)]", "same params: True"),
            ),
            Block("multi-layer", (), ("-> (3, 5, 8)",)),
            Block("LSTM + BN + LSTM + FC", (), ("-> (3, 5, 11)",)),
            Block(
                "Bidirectional(LSTM(2",
                ("outputs, f_h, f_c, b_h, b_c",),
                ("[(3, 5, 4), (3, 2), (3, 2), (3, 2), (3, 2)]",),
            ),
            Block(
                "Bidirectional(SimpleRNN(2",
                ("output, f_h, b_h",),
                ("[(3, 5, 4), (3, 2), (3, 2)]",),
            ),
        ],
    ),
    "simple_rnn_time_distributed.py": (
        "003_df89c3a6836c12a5.txt",
        [
            Block(
                "RNNLayer",
                ("TimeDistributed",),
                (
                    "(None, None, 13) -> (None, None, 39)",
                    "(4, 20, 13) -> (4, 20, 39)",
                    "sums to 1: True",
                ),
            ),
            Block(
                "SimpleRNN(128)",
                ("[Batch_size, output_dim]",),
                (
                    "-> (4, 128)",
                    "-> (4, 20, 128)",
                    "((4, 128), (4, 128))",
                    "last hidden state: True",
                ),
            ),
            Block("many to one", (), ("-> (4, 39)",)),
            Block("many to many, TimeDistributed", (), ("-> (4, 20, 39)",)),
            Block(
                "many to many, plain Dense",
                (),
                (
                    "-> (4, 20, 39)",
                    "equals TimeDistributed(Dense) with the same params: True",
                ),
            ),
        ],
    ),
    "keras_rnn_guide.py": (
        "004_be79e135d629fa26.txt",
        [
            Block(
                'Model: "sequential_4"',
                (
                    ("(Embedding)", "(None, None, 64)", "64000"),
                    ("(LSTM)", "(None, 128)", "98816"),
                    ("(Dense)", "(None, 10)", "1290"),
                    "Total params: 164,106",
                    "Trainable params: 164,106",
                    "Non-trainable params: 0",
                ),
                ("[(2, 12, 64), (2, 128), (2, 10)]", "output (2, 10)"),
            ),
            Block(
                'Model: "sequential_6"',
                (
                    ("(Embedding)", "(None, None, 64)", "64000"),
                    ("(GRU)", "(None, None, 256)", "247296"),
                    ("(SimpleRNN)", "(None, 128)", "49280"),
                    ("(Dense)", "(None, 10)", "1290"),
                    "Total params: 361,866",
                    "Trainable params: 361,866",
                    "Non-trainable params: 0",
                ),
                (
                    "[(2, 12, 64), (2, 12, 256), (2, 128), (2, 10)]",
                    "output (2, 10)",
                ),
            ),
        ],
    ),
}


# ---------------------------------------------------------------- script runs


SCRIPT_TIMEOUT_S = 180


class ScriptRuns:
    """Script processes, started at most once each; outputs kept."""

    def __init__(self):
        self.running: dict[str, subprocess.Popen[str]] = {}
        self.outputs: dict[str, str] = {}

    def start(self, name: str) -> None:
        if name not in self.running:
            self.running[name] = start_script(SCRIPTS / name)

    def output(self, name: str) -> str:
        """The stdout of `name`, waiting for it to end; fails the test
        unless it exits with 0 within SCRIPT_TIMEOUT_S."""
        if name not in self.outputs:
            self.start(name)
            self.outputs[name] = finish(
                self.running[name], timeout=SCRIPT_TIMEOUT_S
            )
        return self.outputs[name]

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.fixture(scope="module", autouse=True)
def script_runs(request):
    """Starts the selected scripts in the background as the module starts:
    they run (each paying JAX's start-up and its own compilations) while the
    Keras tests run in this process, and the script tests, last in the
    module, collect their outputs. Under xdist a worker runs only some tests,
    so each script starts when its test asks for it."""
    runs = ScriptRuns()
    if "PYTEST_XDIST_WORKER" not in os.environ:
        for item in request.session.items:
            if (
                getattr(item, "module", None) is request.module
                and getattr(item, "originalname", "")
                == "test_script_prints_the_documents_shapes"
            ):
                runs.start(item.callspec.params["script"])
    yield runs
    runs.stop()


# ---------------------------------------------------------------- Keras


@pytest.fixture
def fast_keras_build(monkeypatch):
    """Builds Keras weights as zeros: `_randomize` overwrites every one, and
    Keras' own random draws run eagerly, one JAX compilation per shape (an
    orthogonal QR about a second), which was most of this module's time."""

    def zeros(self, shape, dtype=None):
        return keras.ops.zeros(shape, dtype=dtype)

    for initializer in (
        keras.initializers.Orthogonal,
        keras.initializers.VarianceScaling,
        keras.initializers.RandomUniform,
    ):
        monkeypatch.setattr(initializer, "__call__", zeros)


def _randomize(keras_obj, seed: int) -> None:
    """Seeded random weights at a scale that keeps the gates unsaturated;
    batch-norm variances stay positive."""
    rng = np.random.default_rng(seed)
    values = []
    for variable in keras_obj.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.name:
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 2 and "embeddings" not in variable.name:
            value = rng.standard_normal(shape) / math.sqrt(shape[0])
        else:
            value = 0.5 * rng.standard_normal(shape)
        values.append(value.astype(np.float32))
    keras_obj.set_weights(values)


_NAMED_WEIGHTS = {
    layers.Embedding: ("embeddings",),
    layers.Dense: ("kernel", "bias"),
    layers.BatchNormalization: (
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
    ),
}


def _layer_params(layer, template, weights):
    """jaxrnn params for `layer` from one Keras layer's ``get_weights()``."""
    weights = [jnp.asarray(w) for w in weights]
    if isinstance(layer, layers.TimeDistributed):
        return _layer_params(layer.layer, template, weights)
    if type(layer) in _NAMED_WEIGHTS:
        names = [n for n in _NAMED_WEIGHTS[type(layer)] if n in template]
        assert len(names) == len(weights), (names, [w.shape for w in weights])
        params = dict(zip(names, weights))
        for name, value in params.items():
            assert value.shape == template[name].shape, (name, value.shape)
        return params
    return params_from_keras(template, weights)  # recurrent layers


def _params_from_keras(ours, keras_obj, input_shape):
    """Copies a Keras layer's or Sequential's weights into jaxrnn params."""
    template = jax.eval_shape(
        lambda: ours.init(jax.random.key(0), input_shape)
    )
    if isinstance(ours, layers.Sequential):
        return [
            _layer_params(layer, t, k.get_weights())
            for layer, t, k in zip(ours.layers, template, keras_obj.layers)
        ]
    return _layer_params(ours, template, keras_obj.get_weights())


def _count(params) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def _shapes(value) -> list[tuple]:
    """[shape, ...] from one shape tuple, one tensor, or a list of either."""
    one_shape = isinstance(value, tuple) and all(
        d is None or isinstance(d, int) for d in value
    )
    items = (
        value
        if isinstance(value, (list, tuple)) and not one_shape
        else [value]
    )
    return [tuple(getattr(item, "shape", item)) for item in items]


@dataclasses.dataclass(frozen=True)
class Case:
    """One example: jaxrnn's model, Keras' (a layer, or a list of layers for a
    Sequential), a symbolic input shape and a concrete input."""

    name: str
    ours: Any
    theirs: Callable[[], Any]
    input_shape: tuple
    x: Callable[[np.random.Generator], np.ndarray]
    initial_state: bool = False
    training: bool = False

    def __str__(self):
        return self.name


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape).astype(np.float32)


def _ids(*shape, vocabulary=1000, padded=False):
    def make(rng):
        ids = rng.integers(1, vocabulary, shape).astype(np.int32)
        if padded:  # right padding of different lengths, for mask_zero
            ids[1:, shape[1] // 2 :] = 0
            ids[-1, 1:] = 0
        return ids

    return make


# Short names keep the table below one example per entry.
K = keras.layers
J = jaxrnn
L = layers

CASES = [
    # 000 / 001: tf.keras.layers.RNN on Input((None, 5)).
    Case(
        "000-001 single cell RNN(LSTMCell(4))",
        J.RNN(J.LSTMCell(4)),
        lambda: K.RNN(K.LSTMCell(4)),
        (None, None, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000-001 stacked RNN([LSTMCell(32), LSTMCell(64)])",
        J.RNN([J.LSTMCell(32), J.LSTMCell(64)]),
        lambda: K.RNN([K.LSTMCell(32), K.LSTMCell(64)]),
        (None, None, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000-001 output shape, return_state",
        J.RNN(J.LSTMCell(4), return_state=True),
        lambda: K.RNN(K.LSTMCell(4), return_state=True),
        (None, None, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000-001 output shape, return_sequences",
        J.RNN(J.LSTMCell(4), return_sequences=True),
        lambda: K.RNN(K.LSTMCell(4), return_sequences=True),
        (None, None, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000 go_backwards",
        J.RNN(J.LSTMCell(4), go_backwards=True),
        lambda: K.RNN(K.LSTMCell(4), go_backwards=True),
        (None, None, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000 unroll",
        J.RNN(J.LSTMCell(4), unroll=True),
        lambda: K.RNN(K.LSTMCell(4), unroll=True),  # needs a known T
        (None, 6, 5),
        _normal(3, 6, 5),
    ),
    Case(
        "000 zero_output_for_mask",
        L.Sequential(
            [
                L.Embedding(100, 5, mask_zero=True),
                J.RNN(
                    J.LSTMCell(4),
                    return_sequences=True,
                    zero_output_for_mask=True,
                ),
            ]
        ),
        lambda: [
            K.Embedding(100, 5, mask_zero=True),
            K.RNN(
                K.LSTMCell(4), return_sequences=True, zero_output_for_mask=True
            ),
        ],
        (None, None),
        _ids(3, 6, vocabulary=100, padded=True),
    ),
    Case(
        "000 masking via Embedding(mask_zero=True)",
        L.Sequential(
            [L.Embedding(100, 5, mask_zero=True), J.RNN(J.LSTMCell(4))]
        ),
        lambda: [K.Embedding(100, 5, mask_zero=True), K.RNN(K.LSTMCell(4))],
        (None, None),
        _ids(3, 6, vocabulary=100, padded=True),
    ),
    # 002: batch_size = 3, seq_length = 5, input_dim = 7.
    Case(
        "002 RNN(LSTMCell(4), return_sequences=True) with initial_state",
        J.RNN(J.LSTMCell(4), return_sequences=True),
        lambda: K.RNN(K.LSTMCell(4), return_sequences=True),
        (None, 5, 7),
        _normal(3, 5, 7),
        initial_state=True,
    ),
    Case(
        "002 LSTM(4, return_sequences=True, return_state=True)",
        J.LSTM(4, return_sequences=True, return_state=True),
        lambda: K.LSTM(
            4, return_sequences=True, return_state=True, name="encoder"
        ),
        (None, 5, 7),
        _normal(3, 5, 7),
    ),
    Case(
        "002 multi-layer RNN([LSTMCell(4), LSTMCell(8)])",
        J.RNN([J.LSTMCell(4), J.LSTMCell(8)], return_sequences=True),
        lambda: K.RNN([K.LSTMCell(4), K.LSTMCell(8)], return_sequences=True),
        (None, 5, 7),
        _normal(3, 5, 7),
    ),
    Case(
        "002 LSTM + BN + LSTM + FC, training=True",
        L.Sequential(
            [
                J.RNN(J.LSTMCell(9), return_sequences=True),
                L.BatchNormalization(),
                J.RNN(J.LSTMCell(9), return_sequences=True),
                L.Dense(11),
            ]
        ),
        lambda: [
            K.RNN(K.LSTMCell(9), return_sequences=True),
            K.BatchNormalization(),
            K.RNN(K.LSTMCell(9), return_sequences=True),
            K.Dense(11),
        ],
        (None, 5, 7),
        _normal(3, 5, 7),
        training=True,
    ),
    Case(
        "002 Bidirectional(LSTM(2)): outputs, f_h, f_c, b_h, b_c",
        J.Bidirectional(J.LSTM(2, return_sequences=True, return_state=True)),
        lambda: K.Bidirectional(
            K.LSTM(2, return_sequences=True, return_state=True)
        ),
        (None, 5, 7),
        _normal(3, 5, 7),
    ),
    Case(
        "002 Bidirectional(SimpleRNN(2)): output, f_h, b_h",
        J.Bidirectional(
            J.SimpleRNN(2, return_sequences=True, return_state=True)
        ),
        lambda: K.Bidirectional(
            K.SimpleRNN(2, return_sequences=True, return_state=True)
        ),
        (None, 5, 7),
        _normal(3, 5, 7),
    ),
    # 003: SimpleRNN(128) and Dense(39) on 13 features (the post gives none).
    Case(
        "003 many to many, SimpleRNN -> TimeDistributed(Dense)",
        L.Sequential(
            [
                J.SimpleRNN(128, return_sequences=True),
                L.TimeDistributed(L.Dense(39, activation="softmax")),
            ]
        ),
        lambda: [
            K.SimpleRNN(128, activation="tanh", return_sequences=True),
            K.TimeDistributed(K.Dense(39, activation="softmax")),
        ],
        (None, None, 13),
        _normal(4, 20, 13),
    ),
    Case(
        "003 many to many, SimpleRNN -> Dense",
        L.Sequential(
            [
                J.SimpleRNN(128, return_sequences=True),
                L.Dense(39, activation="softmax"),
            ]
        ),
        lambda: [
            K.SimpleRNN(128, return_sequences=True),
            K.Dense(39, activation="softmax"),
        ],
        (None, None, 13),
        _normal(4, 20, 13),
    ),
    Case(
        "003 many to one, SimpleRNN -> Dense",
        L.Sequential([J.SimpleRNN(128), L.Dense(39, activation="softmax")]),
        lambda: [K.SimpleRNN(128), K.Dense(39, activation="softmax")],
        (None, None, 13),
        _normal(4, 20, 13),
    ),
    Case(
        "003 SimpleRNN(128, return_state=True): (output, hidden)",
        J.SimpleRNN(128, return_state=True),
        lambda: K.SimpleRNN(128, return_state=True),
        (None, None, 13),
        _normal(4, 20, 13),
    ),
    # 004: the two summaries of the Keras RNN guide.
    Case(
        "004 Embedding -> LSTM -> Dense",
        L.Sequential(
            [
                L.Embedding(1000, 64),
                J.LSTM(128),
                L.Dense(10, activation="softmax"),
            ]
        ),
        lambda: [
            K.Embedding(1000, 64),
            K.LSTM(128),
            K.Dense(10, activation="softmax"),
        ],
        (None, None),
        _ids(2, 12),
    ),
    Case(
        "004 Embedding -> GRU -> SimpleRNN -> Dense",
        L.Sequential(
            [
                L.Embedding(1000, 64),
                J.GRU(256, return_sequences=True),
                J.SimpleRNN(128),
                L.Dense(10, activation="softmax"),
            ]
        ),
        lambda: [
            K.Embedding(1000, 64),
            K.GRU(256, return_sequences=True),
            K.SimpleRNN(128),
            K.Dense(10, activation="softmax"),
        ],
        (None, None),
        _ids(2, 12),
    ),
]


def _keras_input(input_shape):
    dtype = "int32" if len(input_shape) == 2 else "float32"
    return keras.Input(input_shape[1:], batch_size=input_shape[0], dtype=dtype)


def _build_keras(case: Case):
    """The built Keras model and its symbolic output shapes per layer."""
    theirs = case.theirs()
    if isinstance(case.ours, layers.Sequential):
        model = keras.Sequential([_keras_input(case.input_shape), *theirs])
        return model, [tuple(layer.output.shape) for layer in model.layers]
    return theirs, _shapes(theirs(_keras_input(case.input_shape)))


def _check_shapes_and_counts(case: Case, model, keras_shapes) -> None:
    ours = case.ours
    if isinstance(ours, layers.Sequential):
        assert ours.output_shapes(case.input_shape) == keras_shapes
        template = jax.eval_shape(
            lambda: ours.init(jax.random.key(0), case.input_shape)
        )
        assert [_count(p) for p in template] == [
            layer.count_params() for layer in model.layers
        ]
    else:
        assert _shapes(ours.output_shape(case.input_shape)) == keras_shapes
    assert ours.param_count(case.input_shape) == model.count_params()


@pytest.mark.parametrize("case", CASES, ids=str)
def test_example_matches_keras(case, request, fast_keras_build):
    """Symbolic output shapes and parameter counts (per layer in a
    Sequential), then outputs with Keras' random weights copied in. One test
    per example: building a Keras model is the slow part, so it is built once.
    """
    model, keras_shapes = _build_keras(case)
    _check_shapes_and_counts(case, model, keras_shapes)

    seed = CASES.index(case)
    _randomize(model, seed)
    rng = np.random.default_rng(100 + seed)
    x = case.x(rng)
    params = _params_from_keras(case.ours, model, case.input_shape)
    name = request.node.name
    if case.training:
        theirs = model(x, training=True)
        train = jax.jit(functools.partial(case.ours.apply, training=True))
        ours, new_params = train(params, x)
        for i, layer in enumerate(case.ours.layers):
            if isinstance(layer, layers.BatchNormalization):
                keras_bn = model.layers[i]
                assert_parity(
                    f"{name} moving statistics",
                    [
                        new_params[i]["moving_mean"],
                        new_params[i]["moving_variance"],
                    ],
                    [keras_bn.moving_mean, keras_bn.moving_variance],
                )
    elif case.initial_state:
        units = case.ours.cell.units
        state = [
            rng.standard_normal((x.shape[0], units)).astype(np.float32)
            for _ in range(2)
        ]  # [h, c], not zeros
        # The post passes the state positionally: rnn(inputs, initial_state).
        theirs = model(x, state)
        ours = jax.jit(case.ours)(params, x, initial_state=state)
    else:
        theirs = model(x)
        ours = jax.jit(case.ours)(params, x)
    assert_parity(name, ours, theirs)


class KerasRNNLayer(keras.Model):
    """The post's model, as it is written there."""

    def __init__(self, num_hidden=128, num_class=39):
        super().__init__()
        self.RNN1 = keras.layers.SimpleRNN(
            num_hidden, activation="tanh", return_sequences=True
        )
        self.out = keras.layers.Dense(num_class, activation="softmax")
        self.out = keras.layers.TimeDistributed(self.out)

    def call(self, x):
        x = self.RNN1(x)
        out = self.out(x)
        return out


def test_subclassed_model_matches_keras(request, fast_keras_build):
    """003's ``keras.Model`` subclass against the script's `RNNLayer`."""
    script = load_script(
        SCRIPTS / "simple_rnn_time_distributed.py",
        "simple_rnn_time_distributed",
    )
    ours, theirs = script.RNNLayer(), KerasRNNLayer()
    x = (
        np.random.default_rng(7)
        .standard_normal((script.BATCH, script.STEPS, script.FEATURES))
        .astype(np.float32)
    )
    # Built on a concrete batch, as the post uses it: Keras traces a
    # subclassed model's call on symbolic inputs, and on JAX its
    # TimeDistributed then fails for an unknown time size ("'_DimExpr' object
    # cannot be interpreted as an integer"). The Sequential cases above check
    # the symbolic (None, None, 13) -> (None, None, 39).
    assert ours.output_shape(x.shape) == tuple(theirs(x).shape)
    input_shape = (None, None, script.FEATURES)
    template = jax.eval_shape(
        lambda: ours.init(jax.random.key(0), input_shape)
    )
    assert _count(template) == theirs.count_params()
    _randomize(theirs, 7)
    params = {
        "RNN1": _layer_params(
            ours.RNN1, template["RNN1"], theirs.RNN1.get_weights()
        ),
        "out": _layer_params(
            ours.out, template["out"], theirs.out.get_weights()
        ),
    }
    assert_parity(request.node.name, jax.jit(ours)(params, x), theirs(x))


# ---------------------------------------------------------------- scripts
# Last in the module: the scripts have been running since it started.


def _blocks(output: str, blocks: list[Block]) -> dict[str, str]:
    """Splits `output` at the blocks' headers, which come in order."""
    starts, position = [], 0
    for block in blocks:
        found = output.find(block.header, position)
        assert found >= 0, (
            f"{block.header!r} not printed (after char {position})"
        )
        starts.append(found)
        position = found + len(block.header)
    ends = starts[1:] + [len(output)]
    return {b.header: output[s:e] for b, s, e in zip(blocks, starts, ends)}


def _printed(text: str, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(
            all(part in line for part in expected)
            for line in text.splitlines()
        )
    return expected in text


# Each script is a fresh process that imports JAX and Keras and compiles
# its models (10-25 s apiece on two cores): slow, so CI runs them after the
# default run. test_example_matches_keras checks the same models by default.
@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_script_prints_the_documents_shapes(script, script_runs):
    stdout = script_runs.output(script)
    blocks = EXPECTED[script][1]
    texts = _blocks(stdout, blocks)
    for block in blocks:
        for expected in block.from_document + block.derived:
            assert _printed(texts[block.header], expected), (
                f"{script}: {expected!r} not printed under {block.header!r}:\n"
                f"{texts[block.header]}"
            )


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_expected_strings_are_in_the_document(script):
    """Guards the table above: what it calls the post's text is there."""
    document = EXPECTED[script][0]
    paths = [d / document for d in REFERENCE_DIRS if (d / document).exists()]
    if not paths:
        pytest.skip(f"reference document {document} not in this checkout")
    text = paths[0].read_text(encoding="utf-8")
    for block in EXPECTED[script][1]:
        for expected in block.from_document:
            parts = expected if isinstance(expected, tuple) else (expected,)
            for part in parts:
                assert part in text, f"{part!r} is not in {document}"


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_script_imports_only_jaxrnn_jax_numpy(script):
    tree = ast.parse((SCRIPTS / script).read_text(encoding="utf-8"))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    allowed = {"jax", "jaxrnn", "numpy"} | set(sys.stdlib_module_names)
    assert modules <= allowed, modules - allowed


def test_every_script_is_covered():
    assert sorted(p.name for p in SCRIPTS.glob("*.py")) == sorted(EXPECTED)
