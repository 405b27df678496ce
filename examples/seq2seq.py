r"""Sequence to sequence: an LSTM encoder-decoder learns "123+45" -> "168".

The structure of Keras' character-level ``lstm_seq2seq`` example
(keras-io, examples/nlp/lstm_seq2seq.py), written as plain functions over
jaxrnn layers:

- the encoder, ``LSTM(return_state=True)``, reads the question and keeps
  only its final states [h, c];
- the decoder, ``LSTM(return_sequences=True, return_state=True)`` started
  from those states (``initial_state``), then a ``Dense`` over the
  characters, is trained with teacher forcing: it reads the answer shifted
  right behind a start token and predicts the answer followed by an end
  token;
- at inference, greedy decoding calls the decoder on one step at a time
  (a `lax.scan` over steps), feeding back its own most likely character and
  threading the [h, c] it returned, as Keras' inference models do; the
  answer is read up to the end token.

Characters enter through ``Embedding`` layers where Keras one-hot encodes
them (the same model class: a one-hot vector times a matrix); the
encoder's ``Embedding(mask_zero=True)`` masks the padding (id 0), so [h, c]
are the states after the question's characters alone. By default the
encoder reads the question backwards (``go_backwards=True``), the reversal
Keras' ``addition_rnn`` applies to its questions (Sutskever et al., 2014):
it learns faster here (``--no-reverse``: 94.8% instead of 99.7%).

The data is generated: two numbers of one to ``--digits`` digits (each
below 10**n for n drawn from 1..digits, so short numbers are common, as in
Keras' ``addition_rnn``). The held-out questions are disjoint from the
training ones; a question counts as right only when the whole answer,
end token included, is right (exact match). The end checks the greedy loop
against the teacher-forced decoder fed its own answers.

Run (about a minute on two CPU cores, two when other jobs share them;
99.7% exact match on 2000 held-out questions, and 99.7% with seeds 1 and 2
too):

    python examples/seq2seq.py --plot seq2seq_curve.png

Smaller (half a minute; about 11% exact match, 68% of the characters):
``--digits 2 --train-size 4000 --test-size 500 --units 64 --batch 32
--epochs 4``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

import jaxrnn
from jaxrnn.layers import Dense, Embedding

# Id 0 pads (the encoder's Embedding masks it); "\t" starts and "\n" ends
# an answer, Keras' lstm_seq2seq's start and end characters.
PAD, START, END = 0, 1, 2
CHARS = "\0\t\n+0123456789"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--digits",
        type=int,
        default=3,
        help="most digits of each number added",
    )
    parser.add_argument(
        "--train-size",
        type=int,
        default=50_000,
        help="distinct training questions",
    )
    parser.add_argument(
        "--test-size",
        type=int,
        default=2000,
        help="held-out questions, none seen in training",
    )
    parser.add_argument(
        "--units", type=int, default=128, help="units H of each LSTM"
    )
    parser.add_argument(
        "--embed", type=int, default=16, help="character embedding size E"
    )
    parser.add_argument(
        "--no-reverse",
        action="store_true",
        help="the encoder reads the questions forwards, as "
        "in Keras' lstm_seq2seq (learns slower)",
    )
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot", metavar="PATH", help="write the learning curve to this PNG"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar"
    )
    args = parser.parse_args(argv)
    if args.digits < 1:
        parser.error(f"--digits must be at least 1, got {args.digits}")
    # Distinct pairs grow rare as the sample fills; half the questions keeps
    # the sampler quick.
    if args.train_size + args.test_size > (10**args.digits) ** 2 // 2:
        parser.error(
            f"--train-size + --test-size must be at most half the "
            f"{(10**args.digits) ** 2:,} questions of "
            f"{args.digits} digits, got "
            f"{args.train_size + args.test_size:,}"
        )
    return args


# --- Data -------------------------------------------------------------------


def encode(text: str, length: int) -> np.ndarray:
    """The ids of `text`, padded with PAD to `length`."""
    ids = [CHARS.index(char) for char in text]
    return np.array(ids + [PAD] * (length - len(ids)), np.int32)


def decode(ids: Sequence[int]) -> str:
    """The characters of `ids` up to the first END (or PAD), exclusive."""
    text = []
    for i in ids:
        if i in (END, PAD):
            break
        text.append(CHARS[i])
    return "".join(text)


class Questions(NamedTuple):
    """Encoded additions, a pytree: ``encoder_ids`` (N, Tq) the questions,
    ``decoder_ids`` (N, Ta) START + answer (teacher forcing's inputs),
    ``target_ids`` (N, Ta) answer + END; all padded with PAD."""

    encoder_ids: np.ndarray
    decoder_ids: np.ndarray
    target_ids: np.ndarray


def sample_pairs(
    count: int, digits: int, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """`count` distinct pairs (a, b), each number below 10**n for n drawn
    uniformly from 1..digits."""
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < count:
        lengths = rng.integers(1, digits + 1, (2, count))
        numbers = rng.integers(0, 10**lengths)
        pairs.update(zip(numbers[0].tolist(), numbers[1].tolist()))
    # Sets iterate in hash order; sorting and a seeded shuffle keep the
    # split the same for one seed.
    pairs_list = sorted(pairs)
    rng.shuffle(pairs_list)
    return pairs_list[:count]


def encode_pairs(pairs: Sequence[tuple[int, int]], digits: int) -> Questions:
    question_length, answer_length = 2 * digits + 1, digits + 2
    questions = [f"{a}+{b}" for a, b in pairs]
    answers = [str(a + b) for a, b in pairs]
    return Questions(
        np.stack([encode(q, question_length) for q in questions]),
        np.stack([encode("\t" + a, answer_length) for a in answers]),
        np.stack([encode(a + "\n", answer_length) for a in answers]),
    )


def make_data(args, rng: np.random.Generator) -> tuple[Questions, Questions]:
    """(training, held-out) questions, disjoint."""
    pairs = sample_pairs(args.train_size + args.test_size, args.digits, rng)
    return (
        encode_pairs(pairs[: args.train_size], args.digits),
        encode_pairs(pairs[args.train_size :], args.digits),
    )


# --- Model ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seq2Seq:
    """Keras' lstm_seq2seq: an encoder LSTM whose final [h, c] start a
    decoder LSTM, and a Dense over the characters (logits).

    With `reverse` the encoder reads each question backwards
    (``go_backwards=True``), as Keras' addition_rnn example reverses its
    questions (Sutskever et al., 2014). The padding then comes first and is
    masked, so the states are still those after the question's first
    character.

    Params: ``{'encoder_embedding', 'encoder', 'decoder_embedding',
    'decoder', 'head'}``, each the layer's own dict.
    """

    vocab_size: int
    units: int = 128
    embed: int = 16
    reverse: bool = True

    @property
    def encoder_embedding(self) -> Embedding:
        return Embedding(self.vocab_size, self.embed, mask_zero=True)

    @property
    def encoder(self) -> jaxrnn.LSTM:
        return jaxrnn.LSTM(
            self.units, return_state=True, go_backwards=self.reverse
        )

    @property
    def decoder_embedding(self) -> Embedding:
        return Embedding(self.vocab_size, self.embed)

    @property
    def decoder(self) -> jaxrnn.LSTM:
        return jaxrnn.LSTM(
            self.units, return_sequences=True, return_state=True
        )

    @property
    def head(self) -> Dense:
        return Dense(self.vocab_size)

    def init(self, key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, 5)
        sequence = (None, None, self.embed)
        return {
            "encoder_embedding": self.encoder_embedding.init(keys[0]),
            "encoder": self.encoder.init(keys[1], sequence),
            "decoder_embedding": self.decoder_embedding.init(keys[2]),
            "decoder": self.decoder.init(keys[3], sequence),
            "head": self.head.init(keys[4], (None, None, self.units)),
        }

    def encode(self, params, encoder_ids: jax.Array) -> list[jax.Array]:
        """(B, Tq) question ids -> the encoder's final states [h, c], (B, H)
        each, after the whole question: the padding is masked."""
        x = self.encoder_embedding(params["encoder_embedding"], encoder_ids)
        mask = self.encoder_embedding.compute_mask(encoder_ids, None)
        _, h, c = self.encoder(params["encoder"], x, mask=mask)
        return [h, c]

    def decode(
        self, params, decoder_ids: jax.Array, states: list[jax.Array]
    ) -> tuple[jax.Array, list[jax.Array]]:
        """Runs the decoder over (B, T) ids from `states` [h, c].

        Returns:
          (logits (B, T, V), the final states [h, c]).
        """
        x = self.decoder_embedding(params["decoder_embedding"], decoder_ids)
        outputs, h, c = self.decoder(
            params["decoder"], x, initial_state=states
        )
        return self.head(params["head"], outputs), [h, c]

    def __call__(self, params, encoder_ids, decoder_ids) -> jax.Array:
        """Teacher forcing: (B, Tq), (B, Ta) ids -> logits (B, Ta, V)."""
        logits, _ = self.decode(
            params, decoder_ids, self.encode(params, encoder_ids)
        )
        return logits


@functools.partial(jax.jit, static_argnums=(0, 3))
def greedy_decode(
    model: Seq2Seq, params, encoder_ids: jax.Array, steps: int
) -> tuple[jax.Array, jax.Array]:
    """Answers (B, Tq) questions one character at a time.

    Each step runs the decoder on a single step (B, 1) from the states the
    previous step returned and feeds its most likely character back in.
    Decoding runs all `steps` (under jit the length is fixed); `decode`
    reads the answer up to the first END.

    Returns:
      (ids (B, steps), logits (B, steps, V)).
    """
    batch = encoder_ids.shape[0]

    def step(carry, _):
        states, previous = carry
        logits, states = model.decode(params, previous[:, None], states)
        next_id = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
        return (states, next_id), (next_id, logits[:, 0])

    start = jnp.full((batch,), START, jnp.int32)
    _, (ids, logits) = jax.lax.scan(
        step, (model.encode(params, encoder_ids), start), None, length=steps
    )
    return ids.T, logits.swapaxes(0, 1)  # (T, B) -> (B, T)


def exact_match(predicted: np.ndarray, target_ids: np.ndarray) -> np.ndarray:
    """(N,) bool: every character of the answer and its END right.

    What follows END is never read, so it does not count.
    """
    counted = target_ids != PAD
    return np.all((predicted == target_ids) | ~counted, axis=1)


def masked_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean NLL over the answer characters and END, not over the padding."""
    weights = (targets != PAD).astype(logits.dtype)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(nll * weights) / jnp.sum(weights)


# --- Training ---------------------------------------------------------------


def make_train_step(model: Seq2Seq, optimizer):
    @jax.jit
    def train_step(params, opt_state, batch: Questions):
        def loss_fn(params):
            logits = model(params, batch.encoder_ids, batch.decoder_ids)
            return masked_cross_entropy(logits, batch.target_ids)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def evaluate(model: Seq2Seq, params, questions: Questions) -> dict[str, Any]:
    """Greedy answers to `questions` and their exact-match accuracy.

    Returns:
      {'ids': (N, Ta) greedy answers, 'logits': (N, Ta, V), 'right': (N,)
      exact matches, 'accuracy': their mean, 'char_accuracy': the share of
      answer characters and ENDs right}.
    """
    ids, logits = greedy_decode(
        model,
        params,
        jnp.asarray(questions.encoder_ids),
        questions.target_ids.shape[1],
    )
    ids = np.asarray(ids)
    right = exact_match(ids, questions.target_ids)
    counted = questions.target_ids != PAD
    return {
        "ids": ids,
        "logits": np.asarray(logits),
        "right": right,
        "accuracy": float(right.mean()),
        "char_accuracy": float((ids == questions.target_ids)[counted].mean()),
    }


def train(
    model,
    params,
    train_set: Questions,
    test_set: Questions,
    args,
    rng: np.random.Generator,
):
    """Adam with a cosine-decaying step size; the held-out exact match is
    measured after every epoch for the learning curve.

    Returns:
      (params, losses per step, held-out accuracy per epoch).
    """
    steps_per_epoch = len(train_set.encoder_ids) // args.batch
    total = steps_per_epoch * args.epochs
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adam(optax.cosine_decay_schedule(args.lr, total, alpha=0.05)),
    )
    opt_state = optimizer.init(params)
    train_step = make_train_step(model, optimizer)
    losses, accuracies = [], []
    with tqdm(
        total=total, disable=args.no_progress, desc="training", unit="step"
    ) as bar:
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(train_set.encoder_ids))
            for step in range(steps_per_epoch):
                rows = order[step * args.batch : (step + 1) * args.batch]
                batch = jax.tree.map(
                    lambda ids: jnp.asarray(ids[rows]), train_set
                )
                params, opt_state, loss = train_step(params, opt_state, batch)
                losses.append(float(loss))
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            accuracies.append(evaluate(model, params, test_set)["accuracy"])
            tail = losses[-steps_per_epoch:]
            bar.write(
                f"epoch {epoch:3d}: training loss "
                f"{sum(tail) / len(tail):.4f}, held-out exact match "
                f"{accuracies[-1]:.1%}"
            )
    return params, losses, accuracies


def check_greedy_against_teacher_forcing(
    model: Seq2Seq, params, questions: Questions, greedy: dict
) -> tuple[bool, float]:
    """Feeds the greedy answers back as teacher-forcing inputs: the one-step
    decoding loop and the whole-sequence decoder must give the same logits,
    hence the same argmax at every step.

    Args:
      greedy: `evaluate`'s result for `questions`.

    Returns:
      (whether every argmax equals the greedy answer, the largest |logit
      difference|).
    """
    ids = greedy["ids"]
    fed = np.concatenate(
        [np.full((len(ids), 1), START, np.int32), ids[:, :-1]], axis=1
    )
    logits = np.asarray(
        jax.jit(model)(
            params, jnp.asarray(questions.encoder_ids), jnp.asarray(fed)
        )
    )
    return (
        bool(np.array_equal(logits.argmax(-1), ids)),
        float(np.max(np.abs(logits - greedy["logits"]))),
    )


def plot_curve(
    path: str, losses: Sequence[float], accuracies: Sequence[float]
) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    steps_per_epoch = len(losses) // len(accuracies)
    fig, loss_ax = plt.subplots(figsize=(7, 4))
    loss_ax.plot(
        np.arange(1, len(losses) + 1),
        losses,
        color="C0",
        alpha=0.6,
        label="training loss (teacher forcing)",
    )
    loss_ax.set_yscale("log")
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("cross-entropy (nats / character)")
    acc_ax = loss_ax.twinx()
    acc_ax.plot(
        steps_per_epoch * np.arange(1, len(accuracies) + 1),
        100 * np.asarray(accuracies),
        color="C3",
        marker=".",
        label="held-out exact match (greedy)",
    )
    acc_ax.set_ylabel("exact match (%)")
    acc_ax.set_ylim(0, 100)
    handles = (
        loss_ax.get_legend_handles_labels()[0]
        + acc_ax.get_legend_handles_labels()[0]
    )
    # Below the axes: the two curves cross the whole plot between them.
    loss_ax.legend(
        handles,
        [h.get_label() for h in handles],
        ncol=2,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.15),
    )
    loss_ax.set_title("LSTM encoder-decoder learning to add")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --- Main -------------------------------------------------------------------


def report(questions: Questions, result: dict, count: int = 8) -> None:
    print(
        f"held-out exact match: {result['accuracy']:.1%} of "
        f"{len(questions.encoder_ids)} questions (characters right: "
        f"{result['char_accuracy']:.1%})"
    )
    for i in range(min(count, len(questions.encoder_ids))):
        question = decode(questions.encoder_ids[i])
        answer = decode(result["ids"][i])
        mark = (
            "right"
            if result["right"][i]
            else (f"wrong, {decode(questions.target_ids[i])}")
        )
        print(
            f"  {question:>{questions.encoder_ids.shape[1]}} -> {answer}"
            f"  ({mark})"
        )


def main(argv: Sequence[str] | None = None) -> dict:
    """Trains, decodes the held-out questions greedily; returns the figures."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    train_set, test_set = make_data(args, rng)
    model = Seq2Seq(len(CHARS), args.units, args.embed, not args.no_reverse)
    params = model.init(jax.random.key(args.seed))
    print(
        f"adding numbers of 1 to {args.digits} digits: "
        f"{len(train_set.encoder_ids):,} training and "
        f"{len(test_set.encoder_ids):,} held-out questions (disjoint), e.g. "
        f"{decode(train_set.encoder_ids[0])!r} -> "
        f"{decode(train_set.target_ids[0])!r}"
    )
    print(
        f"model: Embedding({len(CHARS)}, {args.embed}) -> "
        f"LSTM({args.units}, return_state"
        f"{'' if args.no_reverse else ', go_backwards'}) => [h, c] => "
        f"Embedding({len(CHARS)}, {args.embed}) -> LSTM({args.units}, "
        f"return_sequences, return_state) -> Dense({len(CHARS)}), "
        f"{sum(p.size for p in jax.tree.leaves(params)):,} params"
    )

    started = time.perf_counter()
    params, losses, accuracies = train(
        model, params, train_set, test_set, args, rng
    )
    seconds = time.perf_counter() - started
    print(
        f"trained {args.epochs} epochs ({len(losses)} steps of "
        f"{args.batch}) in {seconds:.1f} s, compilation and the per-epoch "
        "evaluation included"
    )

    result = evaluate(model, params, test_set)
    report(test_set, result)
    same, difference = check_greedy_against_teacher_forcing(
        model, params, test_set, result
    )
    print(
        f"greedy decoding equals teacher forcing on its own outputs: {same} "
        f"(max |logit difference| {difference:.1e})"
    )
    if args.plot:
        plot_curve(args.plot, losses, accuracies)
        print(f"learning curve written to {args.plot}")
    return {
        "params": params,
        "accuracy": result["accuracy"],
        "char_accuracy": result["char_accuracy"],
        "losses": losses,
        "accuracies": accuracies,
        "seconds": seconds,
        "greedy_equals_teacher_forcing": same,
    }


if __name__ == "__main__":
    main()
