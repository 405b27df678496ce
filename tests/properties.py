"""How many examples the property tests draw.

The default run draws few (3 in test_rnn.py, 5 in test_fused.py, whose
hand-written backward pass has the most options), to stay within minutes
on two cores; CI runs the property tests again with
``JAXRNN_THOROUGH=1 python -m pytest -m "slow or property"``, drawing many
(conftest.py marks every hypothesis test ``property``).
"""

import os

THOROUGH = os.environ.get("JAXRNN_THOROUGH", "") not in ("", "0")


def examples(quick: int, thorough: int) -> int:
    """`thorough` under JAXRNN_THOROUGH=1, else `quick`."""
    return thorough if THOROUGH else quick
