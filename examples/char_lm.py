r"""A character-level LSTM language model trained on Python's own source code.

The text is the source of a fixed list of standard-library modules, so every
machine with Python has it and nothing is downloaded. Training is truncated
backpropagation through time over parallel streams, Karpathy's char-rnn
layout: the text is cut into B contiguous streams, each step reads the next
T characters of every stream, and the LSTM carry flows from one step into the
next (gradients stop at the step boundary). Then:

- the validation loss and perplexity are compared with a unigram model (the
  character frequencies alone), which the LSTM must beat by far;
- text is sampled by feeding the cell one character at a time, threading its
  carry (`jaxrnn.rnn` with ``initial_carry`` for the prompt, then the cell);
- ``--checkpoint-dir`` saves params, optimizer state, step, carry and PRNG
  key with orbax-checkpoint; ``--resume`` continues exactly where the saved
  run stopped (bit for bit on CPU: the data position follows from the step).

Run (two to three minutes on two CPU cores; validation loss about
half the unigram baseline's):

    python examples/char_lm.py --plot char_lm_loss.png

A smaller setting (seconds; about 70% of the baseline), then resumed to 600
steps:

    python examples/char_lm.py --steps 300 --hidden 64 --batch 16 \
        --seq-len 32 --lr 1e-2 --checkpoint-dir /tmp/char_lm
    python examples/char_lm.py --steps 600 --hidden 64 --batch 16 \
        --seq-len 32 --lr 1e-2 --checkpoint-dir /tmp/char_lm --resume
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from tqdm import tqdm

import jaxrnn
from jaxrnn.layers import Dense, Embedding

# A fixed list, read in this order: the corpus is the same on every run
# of one Python version (372,340 characters on CPython 3.11.7).
CORPUS_MODULES = (
    "argparse",
    "difflib",
    "dataclasses",
    "functools",
    "statistics",
    "textwrap",
    "string",
    "shlex",
)

# What must match between a checkpoint and the run resuming from it (the
# optimizer's --lr and --clip may change: Adam's state does not depend on them).
MODEL_AND_DATA_FLAGS = (
    "hidden",
    "embed",
    "batch",
    "seq_len",
    "dropout",
    "val_fraction",
    "seed",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps",
        type=int,
        default=1500,
        help="total training steps (a resumed run counts "
        "the steps already done)",
    )
    parser.add_argument("--hidden", type=int, default=256, help="LSTM units H")
    parser.add_argument(
        "--embed", type=int, default=32, help="character embedding size E"
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="parallel text streams B"
    )
    parser.add_argument(
        "--seq-len",
        type=int,
        default=64,
        help="characters per step and stream (BPTT length T)",
    )
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--clip", type=float, default=1.0, help="global gradient norm clip"
    )
    parser.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="LSTM input dropout (one mask per sequence)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="the end of the text held out for validation",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sample-length",
        type=int,
        default=300,
        help="characters to sample after training (0: none)",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--prompt", default="def ")
    parser.add_argument(
        "--plot", metavar="PATH", help="write the loss curve to this PNG"
    )
    parser.add_argument(
        "--checkpoint-dir", metavar="DIR", help="save checkpoints here (orbax)"
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=500,
        help="steps between checkpoints (and one at the end)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the latest checkpoint in --checkpoint-dir",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar"
    )
    args = parser.parse_args(argv)
    if args.resume and not args.checkpoint_dir:
        parser.error("--resume needs --checkpoint-dir")
    return args


# --- Data -------------------------------------------------------------------


def load_corpus(modules: Sequence[str] = CORPUS_MODULES) -> str:
    """The concatenated source of `modules`, a text every Python install has."""
    return "\n\n".join(
        inspect.getsource(importlib.import_module(name)) for name in modules
    )


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted; ids are indices into `chars`."""

    chars: str

    @classmethod
    def of(cls, text: str) -> Vocabulary:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Raises ValueError for characters outside the vocabulary."""
        unknown = sorted(set(text) - set(self.chars))
        if unknown:
            raise ValueError(f"Characters outside the vocabulary: {unknown}.")
        index = {char: i for i, char in enumerate(self.chars)}
        return np.array([index[char] for char in text], np.int32)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.chars[i] for i in ids)


def to_streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """Cuts `ids` into `batch` contiguous rows, (B, L), dropping the rest."""
    length = len(ids) // batch
    return ids[: batch * length].reshape(batch, length)


# --- Model ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CharLSTM:
    """Embedding -> LSTM -> Dense over the vocabulary (logits).

    Params: ``{'embedding', 'lstm', 'head'}``, each the layer's own dict.
    The carry is the LSTM cell's ``(h, c)``.
    """

    vocab_size: int
    embed: int = 32
    hidden: int = 256
    dropout: float = 0.0

    @property
    def embedding(self) -> Embedding:
        return Embedding(self.vocab_size, self.embed)

    @property
    def cell(self) -> jaxrnn.LSTMCell:
        return jaxrnn.LSTMCell(self.hidden, dropout=self.dropout)

    @property
    def head(self) -> Dense:
        return Dense(self.vocab_size)

    def init(self, key: jax.Array) -> dict[str, Any]:
        k_embed, k_lstm, k_head = jax.random.split(key, 3)
        return {
            "embedding": self.embedding.init(k_embed),
            "lstm": self.cell.init(k_lstm, self.embed),
            "head": self.head.init(k_head, (None, self.hidden)),
        }

    def __call__(self, params, ids, carry, *, key=None, training=False):
        """Runs (B, T) or unbatched (T,) ids from `carry`.

        Returns:
          (logits (B, T, V) or (T, V), final carry).
        """
        x = self.embedding(params["embedding"], ids)
        hs, carry = jaxrnn.rnn(
            self.cell,
            params["lstm"],
            x,
            initial_carry=carry,
            key=key,
            training=training,
        )
        return self.head(params["head"], hs), carry


def cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean negative log-likelihood in nats per character."""
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, targets
    ).mean()


# --- Training ---------------------------------------------------------------


def make_optimizer(lr: float, clip: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(lr))


def init_state(model: CharLSTM, optimizer, batch: int, seed: int) -> dict:
    """The whole training state, a pytree of arrays that orbax can save.

    The PRNG key is kept as raw key data (uint32), an ordinary array to a
    checkpoint; the train step wraps it back into a key.
    """
    init_key, train_key = jax.random.split(jax.random.key(seed))
    params = model.init(init_key)
    return {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "opt_state": optimizer.init(params),
        "carry": model.cell.initial_carry((batch,)),
        "key": jax.random.key_data(train_key),
    }


def make_train_step(model: CharLSTM, optimizer, seq_len: int):
    """Returns ``train_step(state, streams) -> (state, loss)``, jitted.

    Step s reads window ``s % windows`` of every stream (targets: the same
    window shifted by one character), so the step alone fixes the data and a
    resumed run reads what the uninterrupted one would have read.
    """

    @jax.jit
    def train_step(state, streams):
        windows = (streams.shape[1] - 1) // seq_len
        window = state["step"] % windows
        chunk = jax.lax.dynamic_slice_in_dim(
            streams, window * seq_len, seq_len + 1, axis=1
        )
        inputs, targets = chunk[:, :-1], chunk[:, 1:]
        # Each epoch restarts the streams from their beginnings, so the
        # carry left at the end of the previous epoch no longer applies.
        carry = jaxrnn.reset_carry(
            state["carry"], jnp.full((streams.shape[0],), window == 0)
        )
        key, dropout_key = jax.random.split(
            jax.random.wrap_key_data(state["key"])
        )

        def loss_fn(params):
            logits, new_carry = model(
                params, inputs, carry, key=dropout_key, training=True
            )
            return cross_entropy(logits, targets), new_carry

        (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state["params"]
        )
        updates, opt_state = optimizer.update(
            grads, state["opt_state"], state["params"]
        )
        return {
            "step": state["step"] + 1,
            "params": optax.apply_updates(state["params"], updates),
            "opt_state": opt_state,
            # Truncated BPTT: the carry goes on, its gradient does not.
            "carry": jax.lax.stop_gradient(new_carry),
            "key": jax.random.key_data(key),
        }, loss

    return train_step


def train(
    train_step,
    state: dict,
    streams: jax.Array,
    steps: int,
    losses: list[float],
    *,
    on_step=None,
    progress: bool = True,
) -> dict:
    """Runs `train_step` until ``state['step'] == steps``.

    Args:
      losses: each step's loss is appended here (a resumed run passes the
        list it restored, so the curve covers the whole run).
      on_step: called as ``on_step(state)`` after each step (checkpoints).

    Returns:
      The final state.
    """
    start = int(state["step"])
    with tqdm(
        total=steps,
        initial=start,
        disable=not progress,
        desc="training",
        unit="step",
    ) as bar:
        for _ in range(start, steps):
            state, loss = train_step(state, streams)
            losses.append(float(loss))
            bar.update()
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            if on_step is not None:
                on_step(state)
    return state


# --- Checkpoints ------------------------------------------------------------


def save_checkpoint(
    manager: ocp.CheckpointManager, state: dict, history: dict
) -> None:
    """Saves the state (arrays) and the history (JSON: flags, losses)."""
    manager.save(
        int(state["step"]),
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            history=ocp.args.JsonSave(history),
        ),
    )


def restore_checkpoint(
    manager: ocp.CheckpointManager,
    like_state: dict,
    setting: dict,
    step: int | None = None,
) -> tuple[dict, dict]:
    """Restores a checkpoint (the latest by default) into `like_state`'s
    structure, after checking it was written with the same `setting`.

    Raises:
      FileNotFoundError: the directory holds no checkpoint.
      ValueError: the checkpoint's model or data setting differs.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        raise FileNotFoundError(
            f"No checkpoint in {manager.directory} to resume from."
        )
    # The history first: a checkpoint of another model size would otherwise
    # fail deep inside the array restore with a bare shape mismatch.
    history = manager.restore(
        step, args=ocp.args.Composite(history=ocp.args.JsonRestore())
    ).history
    check_same_setting(history["setting"], setting)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like_state)
    state = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    ).state
    return state, history


def check_same_setting(saved: dict, current: dict) -> None:
    """Raises ValueError if the run would resume with another model or data."""
    changed = {
        name: (saved.get(name), current[name])
        for name in MODEL_AND_DATA_FLAGS
        if saved.get(name) != current[name]
    }
    if changed:
        detail = ", ".join(
            f"--{name.replace('_', '-')} was {old}, now {new}"
            for name, (old, new) in changed.items()
        )
        raise ValueError(
            f"The checkpoint was written with another setting: {detail}."
        )


# --- Evaluation and sampling --------------------------------------------------


@functools.partial(jax.jit, static_argnums=0)
def evaluate(model: CharLSTM, params, streams: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats/char) predicting each stream from its start."""
    carry = model.cell.initial_carry((streams.shape[0],))
    logits, _ = model(params, streams[:, :-1], carry)
    return cross_entropy(logits, streams[:, 1:])


def unigram_cross_entropy(
    train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int
) -> tuple[float, float]:
    """The baseline that knows only character frequencies.

    Returns:
      (entropy of the training distribution, cross-entropy of validation
      under it), in nats; add-one smoothing keeps rare characters finite.
    """
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    probs = counts / counts.sum()
    entropy = float(-(probs * np.log(probs)).sum())
    return entropy, float(-np.log(probs[val_ids]).mean())


@functools.partial(jax.jit, static_argnums=(0, 4))
def sample(
    model: CharLSTM,
    params,
    prompt_ids: jax.Array,
    key: jax.Array,
    length: int,
    temperature: jax.Array,
) -> jax.Array:
    """Continues `prompt_ids` (T,) by `length` sampled ids, one at a time.

    The prompt runs through `jaxrnn.rnn` unbatched from the cell's zero
    carry; each new character then advances the cell by a single step from
    the carry the previous one left.
    """
    logits, carry = model(params, prompt_ids, model.cell.initial_carry(()))

    def step(state, step_key):
        carry, logits = state
        next_id = jax.random.categorical(step_key, logits / temperature)
        x = model.embedding(params["embedding"], next_id)  # (E,)
        carry, h = model.cell(params["lstm"], carry, x)
        return (carry, model.head(params["head"], h)), next_id

    _, ids = jax.lax.scan(
        step, (carry, logits[-1]), jax.random.split(key, length)
    )
    return ids


def plot_losses(
    path: str, losses: Sequence[float], unigram: float, val_loss: float
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(losses) + 1)
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, alpha=0.3, color="C0", label="training loss")
    ax.plot(
        steps[window - 1 :],
        smooth,
        color="C0",
        label=f"training loss, mean of {window}",
    )
    ax.axhline(
        unigram,
        color="C3",
        linestyle="--",
        label=f"unigram baseline {unigram:.2f}",
    )
    ax.scatter(
        [len(losses)],
        [val_loss],
        color="C2",
        zorder=3,
        label=f"validation {val_loss:.2f}",
    )
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats / character)")
    ax.set_title("Character LSTM on Python standard-library source")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- Main -------------------------------------------------------------------


def load_data(args) -> tuple[Vocabulary, np.ndarray, np.ndarray]:
    """Returns (vocabulary, training ids, validation ids): the text's end is
    held out."""
    text = load_corpus()
    vocab = Vocabulary.of(text)  # of the whole text: validation has ids too
    ids = vocab.encode(text)
    split = int(len(ids) * (1 - args.val_fraction))
    print(
        f"corpus: {len(text):,} characters of {len(CORPUS_MODULES)} "
        f"standard-library modules, vocabulary {len(vocab)}; "
        f"{split:,} for training, {len(ids) - split:,} for validation"
    )
    return vocab, ids[:split], ids[split:]


def open_checkpoints(args) -> ocp.CheckpointManager | None:
    """The checkpoint manager for --checkpoint-dir, or None without one.

    Raises:
      FileExistsError: the directory holds checkpoints but --resume is off
        (a new run would collide with the saved steps).
    """
    if not args.checkpoint_dir:
        return None
    manager = ocp.CheckpointManager(
        os.path.abspath(args.checkpoint_dir),
        options=ocp.CheckpointManagerOptions(max_to_keep=2),
    )
    if not args.resume and manager.latest_step() is not None:
        manager.close()
        raise FileExistsError(
            f"{args.checkpoint_dir} holds checkpoints up to step "
            f"{manager.latest_step()}; pass --resume to continue that run, "
            "or give another directory."
        )
    return manager


def main(argv: Sequence[str] | None = None) -> dict:
    """Trains, evaluates and samples; returns the final state and figures."""
    args = parse_args(argv)
    setting = {name: getattr(args, name) for name in MODEL_AND_DATA_FLAGS}
    vocab, train_ids, val_ids = load_data(args)
    model = CharLSTM(len(vocab), args.embed, args.hidden, args.dropout)
    optimizer = make_optimizer(args.lr, args.clip)
    state = init_state(model, optimizer, args.batch, args.seed)
    history = {"setting": setting, "losses": []}
    print(
        f"model: Embedding({len(vocab)}, {args.embed}) -> "
        f"LSTM({args.hidden}) -> Dense({len(vocab)}), "
        f"{sum(p.size for p in jax.tree.leaves(state['params'])):,} params"
    )

    manager = open_checkpoints(args)
    if args.resume:
        state, history = restore_checkpoint(manager, state, setting)
        print(
            f"resumed at step {int(state['step'])} from {args.checkpoint_dir}"
        )

    def save_now(state):
        step = int(state["step"])
        if step % args.save_every == 0 or step == args.steps:
            save_checkpoint(manager, state, history)

    started = time.perf_counter()
    state = train(
        make_train_step(model, optimizer, args.seq_len),
        state,
        jnp.asarray(to_streams(train_ids, args.batch)),
        args.steps,
        history["losses"],
        on_step=None if manager is None else save_now,
        progress=not args.no_progress,
    )
    if manager is not None:
        manager.wait_until_finished()  # orbax writes in the background
        manager.close()
    seconds = time.perf_counter() - started
    return report(
        args,
        model,
        vocab,
        state,
        history["losses"],
        train_ids,
        val_ids,
        seconds,
    )


def report(
    args, model, vocab, state, losses, train_ids, val_ids, seconds
) -> dict:
    """Prints validation figures and a sample; returns them with the state."""
    val_streams = to_streams(val_ids, args.batch)
    # The unigram model scores the same characters the LSTM predicts.
    entropy, unigram = unigram_cross_entropy(
        train_ids, val_streams[:, 1:].ravel(), len(vocab)
    )
    val_loss = float(
        evaluate(model, state["params"], jnp.asarray(val_streams))
    )
    if losses:
        tail = losses[-min(50, len(losses)) :]
        print(
            f"trained to step {int(state['step'])} in {seconds:.1f} s; "
            f"training loss (mean of last {len(tail)}) "
            f"{sum(tail) / len(tail):.3f}"
        )
    print(
        f"unigram baseline: entropy {entropy:.3f} nats/char, on validation "
        f"{unigram:.3f} (perplexity {math.exp(unigram):.2f})"
    )
    print(
        f"validation: loss {val_loss:.3f} nats/char, perplexity "
        f"{math.exp(val_loss):.2f}, {val_loss / unigram:.0%} of the "
        f"unigram baseline"
    )
    print("below the unigram baseline:", val_loss < unigram)
    if args.plot:
        plot_losses(args.plot, losses, unigram, val_loss)
        print(f"loss curve written to {args.plot}")
    text = ""
    if args.sample_length > 0:
        # The run's own key: a resumed run samples what an unbroken one would.
        key = jax.random.wrap_key_data(state["key"])
        ids = sample(
            model,
            state["params"],
            jnp.asarray(vocab.encode(args.prompt)),
            key,
            args.sample_length,
            jnp.float32(args.temperature),
        )
        text = args.prompt + vocab.decode(np.asarray(ids).tolist())
        print(
            f"sample (temperature {args.temperature}):\n{'-' * 60}\n"
            f"{text}\n{'-' * 60}"
        )
    return {
        "state": state,
        "val_loss": val_loss,
        "unigram": unigram,
        "losses": losses,
        "sample": text,
    }


if __name__ == "__main__":
    main()
