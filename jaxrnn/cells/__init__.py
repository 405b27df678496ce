"""Recurrent cells: pure steps over explicit params."""

from jaxrnn.cells._base import DropoutMasks
from jaxrnn.cells.conv_lstm import (
    ConvLSTM1DCell,
    ConvLSTM2DCell,
    ConvLSTM3DCell,
    ConvLSTMCell,
)
from jaxrnn.cells.gru import GRUCell
from jaxrnn.cells.lru import LRUCell
from jaxrnn.cells.lstm import LSTMCell
from jaxrnn.cells.min_rnn import MinGRUCell, MinLSTMCell
from jaxrnn.cells.mlstm import MLSTMCell
from jaxrnn.cells.rg_lru import RGLRUCell
from jaxrnn.cells.simple import SimpleRNNCell
from jaxrnn.cells.slstm import SLSTMCell
from jaxrnn.cells.stacked import StackedCells

__all__ = [
    "ConvLSTM1DCell",
    "ConvLSTM2DCell",
    "ConvLSTM3DCell",
    "ConvLSTMCell",
    "DropoutMasks",
    "GRUCell",
    "LRUCell",
    "LSTMCell",
    "MLSTMCell",
    "MinGRUCell",
    "MinLSTMCell",
    "RGLRUCell",
    "SLSTMCell",
    "SimpleRNNCell",
    "StackedCells",
]
