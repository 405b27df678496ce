"""Keras-shaped layers: ``init(key, input_shape) -> params`` and a pure call."""

from jaxrnn.layers.bidirectional import Bidirectional
from jaxrnn.layers.conv_lstm import ConvLSTM1D, ConvLSTM2D, ConvLSTM3D
from jaxrnn.layers.convolutional import Conv1D
from jaxrnn.layers.core import Dense, Dropout, Embedding, TimeDistributed
from jaxrnn.layers.masking import Masking
from jaxrnn.layers.normalization import BatchNormalization, LayerNormalization
from jaxrnn.layers.pooling import (
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
)
from jaxrnn.layers.recurrent import GRU, LSTM, RNN, SimpleRNN, count_params
from jaxrnn.layers.sequential import Sequential, summary

__all__ = [
    "BatchNormalization",
    "Bidirectional",
    "Conv1D",
    "ConvLSTM1D",
    "ConvLSTM2D",
    "ConvLSTM3D",
    "Dense",
    "Dropout",
    "Embedding",
    "GRU",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "LSTM",
    "LayerNormalization",
    "Masking",
    "MaxPooling1D",
    "RNN",
    "Sequential",
    "SimpleRNN",
    "TimeDistributed",
    "count_params",
    "summary",
]
