"""Docstrings of the layers built from a cell: the cell's arguments and the
recurrent flags, written once and composed, so ``help(LSTM)`` and the API
pages list every argument a layer takes."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable

# The `RNN` flags every recurrent layer takes, as Google-style Args entries.
RECURRENT_FLAGS = """\
return_sequences: return the whole output sequence, else the last output.
return_state: also return the final states.
go_backwards: process the sequence in reverse (outputs in processing
  order, as Keras).
stateful: take `initial_state` and always return the final states, so
  the caller threads them into the next batch.
unroll: a Python loop over the steps instead of `lax.scan`.
time_major: inputs and outputs are `(T, B, ...)`.
zero_output_for_mask: masked steps output zeros.
remat: recompute activations in the backward pass (less memory)."""


def args_entries(doc: str | None, skip: tuple[str, ...] = ()) -> list[str]:
    """The entries of a Google-style ``Args:`` section, one string each
    (continuation lines kept, dedented to the entry), minus those in `skip`.

    Raises:
      ValueError: `doc` has no ``Args:`` section, so a layer's docstring
        would silently lose its arguments.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    try:
        start = lines.index("Args:") + 1
    except ValueError:
        raise ValueError("the docstring has no 'Args:' section") from None
    body = []
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break  # the next section or paragraph
        if not line.strip():
            break
        body.append(line)
    if not body:
        raise ValueError("the docstring's 'Args:' section is empty")
    indent = min(len(s) - len(s.lstrip()) for s in body)
    entries = _entries(line[indent:] for line in body)
    return [e for e in entries if e.split(":", 1)[0] not in skip]


def _entries(lines: Iterable[str]) -> list[str]:
    """Google-style entries: a line that starts flush begins one, an
    indented line continues the last."""
    entries: list[str] = []
    for text in lines:
        if text.startswith(" ") and entries:
            entries[-1] += "\n" + text
        else:
            entries.append(text)
    return entries


def with_recurrent_flags(doc: str | None) -> str | None:
    """`doc` with its ``{RECURRENT_FLAGS}`` line replaced by the flags'
    Args entries, at that line's indentation (None under ``python -OO``)."""
    if doc is None or sys.flags.optimize >= 2:
        return None
    line = next(
        text
        for text in doc.splitlines()
        if text.strip() == "{RECURRENT_FLAGS}"
    )
    prefix = line[: len(line) - len(line.lstrip())]
    return doc.replace(line, _indent(RECURRENT_FLAGS, prefix))


def _indent(text: str, prefix: str) -> str:
    return "\n".join(
        prefix + line if line else line for line in text.splitlines()
    )


def cell_layer_doc(
    summary: str,
    cell_type: type,
    details: str,
    example: str,
    skip: tuple[str, ...] = (),
) -> str | None:
    """A layer's docstring: `summary`, then ``Args:`` with `cell_type`'s
    arguments (minus `skip`) and the recurrent flags, then `details` and
    `example` (each dedented text, `example` without its title); None
    when docstrings are stripped (``python -OO``)."""
    if sys.flags.optimize >= 2:
        return None  # dataclasses fill a stripped __doc__ with a signature
    entries = args_entries(cell_type.__doc__, skip) + _entries(
        RECURRENT_FLAGS.splitlines()
    )
    args = "Args:\n" + "\n".join(_indent(e, "  ") for e in entries)
    parts = [
        inspect.cleandoc(summary),
        args,
        inspect.cleandoc(details),
        "Example:\n" + _indent(inspect.cleandoc(example), "  "),
    ]
    return "\n\n".join(p for p in parts if p.strip())
