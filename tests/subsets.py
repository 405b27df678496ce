"""Wide parameter matrices: every case in CI, a covering subset by default.

A test parametrized over the product of several axes (cell x flags x
mask) costs its full product, but most of what it proves shows in a
subset in which every pair of values meets at least once. Decorate it
with ``@default_subset(keep)``: ``tests/conftest.py`` marks the cases
``keep(**params)`` rejects `slow`, so the README's command runs the
subset and CI's thorough pass (``-m "slow or property"``) runs the rest.
No case is dropped; test IDs do not change.
"""

from collections.abc import Callable, Sequence
from typing import Any


def default_subset(keep: Callable[..., bool]):
    """Marks a parametrized test: cases `keep` rejects run only in CI's
    thorough pass."""

    def mark(test):
        test.default_subset = keep
        return test

    return mark


def pairwise(*axes: tuple[str, Sequence[Any]]) -> Callable[..., bool]:
    """A `keep` over three axes that meets every pair of values.

    ``pairwise(("a", A), ("b", B), ("c", C))`` keeps, for each (a, b), the
    one c at index ``(i + j) % len(C)``, with ``len(C) <= len(A)`` and
    ``len(C) <= len(B)``: every (a, b), (a, c) and (b, c) pair then runs,
    in ``len(A) * len(B)`` cases instead of ``len(A) * len(B) * len(C)``.
    Values are compared with ``==``, so a dict or tuple value works.
    """
    (a_name, a_values), (b_name, b_values), (c_name, c_values) = axes
    if len(c_values) > min(len(a_values), len(b_values)):
        raise ValueError("pairwise needs the shortest axis last.")

    def index(values, value):
        return next(i for i, v in enumerate(values) if v == value)

    def keep(**params):
        i = index(a_values, params[a_name])
        j = index(b_values, params[b_name])
        k = index(c_values, params[c_name])
        return k == (i + j) % len(c_values)

    return keep


def only(**kept: Sequence[Any]) -> Callable[..., bool]:
    """A `keep` of the cases whose named params take one of the listed
    values: ``only(name=["lstm", "simple"])``. The other values run in CI's
    thorough pass; choose them so that each still runs, by default, in
    another test."""

    def keep(**params):
        return all(params[name] in values for name, values in kept.items())

    return keep
