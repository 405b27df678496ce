"""The recurrent layers are classes written out in source: their signatures,
fields and docstrings, and the drift a test must catch between a layer and
its cell (a cell argument added, renamed or given another default)."""

import dataclasses
import inspect
import textwrap

import pytest

import jaxrnn
from jaxrnn.layers._docs import RECURRENT_FLAGS, args_entries, compose_doc
from jaxrnn.layers.rnn import RecurrentFlags

# The layers and the cells whose arguments they take, less those a layer
# fixes (rank) or binds to its inputs at each call (spatial_shape).
CELL_LAYERS = {
    "SimpleRNN": (jaxrnn.SimpleRNNCell, ()),
    "LSTM": (jaxrnn.LSTMCell, ()),
    "GRU": (jaxrnn.GRUCell, ()),
    "ConvLSTM1D": (jaxrnn.ConvLSTM1DCell, ("rank", "spatial_shape")),
    "ConvLSTM2D": (jaxrnn.ConvLSTM2DCell, ("rank", "spatial_shape")),
    "ConvLSTM3D": (jaxrnn.ConvLSTM3DCell, ("rank", "spatial_shape")),
}

_FLAGS = (
    "*, return_sequences: 'bool' = False, return_state: 'bool' = False, "
    "go_backwards: 'bool' = False, stateful: 'bool' = False, "
    "unroll: 'bool' = False, time_major: 'bool' = False, "
    "zero_output_for_mask: 'bool' = False, remat: 'bool' = False"
)
_KERAS_CELL = (
    "use_bias: 'bool' = True, "
    "kernel_initializer: 'InitializerLike' = 'glorot_uniform', "
    "recurrent_initializer: 'InitializerLike' = 'orthogonal', "
    "bias_initializer: 'InitializerLike' = 'zeros', "
    "dropout: 'float' = 0.0, recurrent_dropout: 'float' = 0.0, "
    "dtype: 'Any' = None, param_dtype: 'Any' = 'float32', "
    "precision: 'Any' = None"
)
_GATES = (
    "units: 'int', activation: 'ActivationLike' = 'tanh', "
    "recurrent_activation: 'ActivationLike' = 'sigmoid'"
)
_CONV = (
    "filters: 'int', kernel_size: 'int | tuple[int, ...]', "
    "strides: 'int | tuple[int, ...]' = 1, padding: 'str' = 'valid', "
    "data_format: 'str | None' = None, "
    "dilation_rate: 'int | tuple[int, ...]' = 1, "
    "activation: 'ActivationLike' = 'tanh', "
    "recurrent_activation: 'ActivationLike' = 'sigmoid'"
)
# The signatures as they were when the layers were made by
# dataclasses.make_dataclass (recorded before they became classes).
SIGNATURES = {
    "SimpleRNN": (
        f"(units: 'int', activation: 'ActivationLike' = 'tanh', {_FLAGS}, "
        f"{_KERAS_CELL}) -> None"
    ),
    "LSTM": (
        f"({_GATES}, {_FLAGS}, {_KERAS_CELL}, "
        "unit_forget_bias: 'bool' = True, "
        "use_cudnn: 'bool | str' = 'auto') -> None"
    ),
    "GRU": (
        f"({_GATES}, {_FLAGS}, {_KERAS_CELL}, "
        "reset_after: 'bool' = True) -> None"
    ),
    "ConvLSTM1D": (
        f"({_CONV}, {_FLAGS}, {_KERAS_CELL}, "
        "unit_forget_bias: 'bool' = True) -> None"
    ),
    "RNN": f"(cell: 'Any', {_FLAGS}) -> None",
}
SIGNATURES["ConvLSTM2D"] = SIGNATURES["ConvLSTM3D"] = SIGNATURES["ConvLSTM1D"]


def _describe(field):
    """What a caller sees of a field: name, annotation, default, keyword."""
    return (
        field.name,
        field.type,
        field.default,
        field.default_factory,
        field.kw_only,
    )


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_is_unchanged(name):
    layer = getattr(jaxrnn, name)
    assert str(inspect.signature(layer)) == SIGNATURES[name]


@pytest.mark.parametrize("name", sorted(CELL_LAYERS))
def test_fields_are_the_flags_then_the_cells_arguments(name):
    """A cell argument added, renamed, reordered or given another default
    fails here until the layer follows."""
    cell_type, skip = CELL_LAYERS[name]
    layer = getattr(jaxrnn, name)
    layer_fields = [
        f
        for f in dataclasses.fields(layer)
        if f.name not in layer.layer_fields
    ]
    cell_fields = [
        f
        for f in dataclasses.fields(cell_type)
        if f.init and f.name not in skip
    ]
    flags = dataclasses.fields(RecurrentFlags)
    assert [_describe(f) for f in layer_fields] == [
        _describe(f) for f in flags + tuple(cell_fields)
    ]
    # The layer's own fields (LSTM's use_cudnn) come last.
    names = [f.name for f in dataclasses.fields(layer)]
    assert names[len(names) - len(layer.layer_fields) :] == list(
        layer.layer_fields
    )


@pytest.mark.parametrize("name", sorted(CELL_LAYERS))
def test_layers_are_written_out_in_source(name):
    """Classes an IDE and a type checker read: their source says
    ``class LSTM`` with its fields (not a make_dataclass call)."""
    layer = getattr(jaxrnn, name)
    source = inspect.getsource(layer)
    assert source.startswith(
        f"@dataclasses.dataclass(frozen=True)\nclass {name}"
    )
    assert layer.__dataclass_params__.frozen


@pytest.mark.parametrize("name", sorted(CELL_LAYERS))
def test_docstring_lists_every_argument_once(name):
    layer = getattr(jaxrnn, name)
    assert "{" not in "".join(args_entries(layer.__doc__))  # all filled in
    documented = [e.split(":")[0] for e in args_entries(layer.__doc__)]
    assert sorted(documented) == sorted(
        f.name for f in dataclasses.fields(layer)
    )


@pytest.mark.parametrize("name", [*sorted(CELL_LAYERS), "RNN"])
def test_docstring_ends_its_args_with_the_flags_written_once(name):
    flags = args_entries(
        "Flags.\n\nArgs:\n" + textwrap.indent(RECURRENT_FLAGS, "  ")
    )
    entries = args_entries(getattr(jaxrnn, name).__doc__)
    assert entries[-len(flags) :] == flags


@pytest.mark.parametrize(
    "layer,cell",
    [
        (
            jaxrnn.LSTM(4, dropout=0.25, unit_forget_bias=False),
            jaxrnn.LSTMCell(4, dropout=0.25, unit_forget_bias=False),
        ),
        (
            jaxrnn.GRU(3, "relu", reset_after=False, use_bias=False),
            jaxrnn.GRUCell(3, "relu", reset_after=False, use_bias=False),
        ),
        (
            jaxrnn.SimpleRNN(2, precision="highest"),
            jaxrnn.SimpleRNNCell(2, precision="highest"),
        ),
        (
            jaxrnn.ConvLSTM2D(2, 3, padding="SAME", return_sequences=True),
            jaxrnn.ConvLSTM2DCell(2, 3, padding="same"),
        ),
    ],
)
def test_layer_builds_its_cell_from_its_fields(layer, cell):
    assert layer.cell == cell


def test_layers_are_frozen_hashable_and_compare_by_fields():
    layer = jaxrnn.LSTM(4, return_sequences=True)
    assert layer == jaxrnn.LSTM(4, return_sequences=True)
    assert hash(layer) == hash(jaxrnn.LSTM(4, return_sequences=True))
    assert layer != jaxrnn.LSTM(4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.units = 5  # type: ignore[misc]
    assert dataclasses.replace(layer, units=5).cell.units == 5


def test_compose_doc_refuses_an_unknown_placeholder():
    with pytest.raises(ValueError, match="NOPE"):
        compose_doc("Summary.\n\n    {NOPE}\n")
