"""Keras' normalization layers, by their old module path.

`BatchNormalization` lives in `jaxrnn.layers.batch_normalization`,
`LayerNormalization` in `jaxrnn.layers.layer_normalization`, and what they
share in `jaxrnn.layers._normalize`; this module keeps
``jaxrnn.layers.normalization.BatchNormalization`` importable.
"""

from jaxrnn.layers.batch_normalization import BatchNormalization
from jaxrnn.layers.layer_normalization import LayerNormalization

__all__ = ["BatchNormalization", "LayerNormalization"]
