"""Type aliases shared by the package (and by code that calls it).

Params and carries are pytrees whose structure the cell decides; the
aliases name the role an argument plays rather than a structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

# A pytree of arrays: what `cell.init` / `layer.init` return.
Params = Any
# A pytree of floating arrays with leading batch axes: a cell's state.
Carry = Any
# A shape with unknown sizes as None, as Keras writes input shapes.
Shape = Sequence[Any]
# A new-style typed PRNG key (`jax.random.key`) or a legacy uint32 key.
PRNGKey = jax.Array
