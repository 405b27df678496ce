"""Per-example gradients with `jax.vmap`, and DP-SGD-style training with them.

Write the loss of ONE sequence, unbatched: inputs (T, D), a scalar length
and a label. `jaxrnn.rnn` runs unbatched inputs as they are, so
``jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, 0))`` returns one gradient
per example, each shaped like the params, from a single batched program.
The script checks that this agrees with the ordinary batched call (outputs,
and the mean of the per-example gradients against the gradient of the mean
loss), then trains with differentially-private SGD's recipe: clip every
example's gradient to norm C, sum, add Gaussian noise of scale sigma * C,
average (Abadi et al., 2016). Privacy accounting is out of scope here.

Run (seconds):

    python examples/per_example_grads.py

Smaller: ``--batch 16 --steps 50``.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from jaxrnn.layers import Dense


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--features", type=int, default=4)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument(
        "--clip",
        type=float,
        default=1.0,
        help="per-example gradient norm bound C",
    )
    parser.add_argument(
        "--noise-multiplier",
        type=float,
        default=0.5,
        help="sigma: noise standard deviation in units of C",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_batch(
    rng: np.random.Generator, batch: int, max_length: int, features: int
):
    """Sequences (B, T, D), lengths (B,), labels (B,).

    The label says whether feature 0 sums to more than 0 over the valid
    steps. The padding holds noise too, which only `seq_lengths` keeps out of
    the GRU: each sequence must be read to its own length and no further.
    """
    lengths = rng.integers(3, max_length + 1, batch).astype(np.int32)
    x = rng.normal(size=(batch, max_length, features)).astype(np.float32)
    valid = np.arange(max_length) < lengths[:, None]  # (B, T)
    labels = (np.where(valid, x[..., 0], 0).sum(1) > 0).astype(np.int32)
    return x, lengths, labels


def make_model(units: int):
    return jaxrnn.GRUCell(units), Dense(2)


def init_params(model, key: jax.Array, features: int) -> dict:
    cell, head = model
    k_cell, k_head = jax.random.split(key)
    return {
        "gru": cell.init(k_cell, features),
        "head": head.init(k_head, (None, cell.units)),
    }


@functools.partial(jax.jit, static_argnums=0)
def logits_fn(model, params, x, length):
    """Logits for one sequence (T, D) and scalar length, or for a batch
    (B, T, D) with lengths (B,): the same code serves both."""
    cell, head = model
    h, _ = jaxrnn.rnn(
        cell, params["gru"], x, seq_lengths=length, return_sequences=False
    )
    return head(params["head"], h)


def example_loss(model, params, x, length, label):
    """The loss of one unbatched example."""
    logits = logits_fn(model, params, x, length)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label)


@functools.partial(jax.jit, static_argnums=0)
def per_example_grads(model, params, x, lengths, labels):
    """Every example's loss (B,) and gradient: a pytree like params with a
    leading (B,) axis on every leaf."""
    value_and_grad = jax.value_and_grad(
        lambda p, *example: example_loss(model, p, *example)
    )
    return jax.vmap(value_and_grad, in_axes=(None, 0, 0, 0))(
        params, x, lengths, labels
    )


def batched_loss(model, params, x, lengths, labels):
    logits = logits_fn(model, params, x, lengths)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels
    ).mean()


def max_difference(a, b) -> float:
    return max(
        float(jnp.max(jnp.abs(u - v)))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def check_against_batched(model, params, x, lengths, labels) -> dict:
    """Compares vmapped unbatched calls with the batched ones."""
    vmapped_out = jax.vmap(logits_fn, in_axes=(None, None, 0, 0))(
        model, params, x, lengths
    )
    batched_out = logits_fn(model, params, x, lengths)

    _, grads = per_example_grads(model, params, x, lengths, labels)
    mean_of_grads = jax.tree.map(lambda g: g.mean(0), grads)
    grad_of_mean = jax.jit(
        jax.grad(batched_loss, argnums=1), static_argnums=0
    )(model, params, x, lengths, labels)
    scale = max(
        float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad_of_mean)
    )
    return {
        "outputs": max_difference(vmapped_out, batched_out),
        "mean_gradient": max_difference(mean_of_grads, grad_of_mean),
        "gradient_scale": scale,
        "shapes": jax.tree.map(lambda g: g.shape, grads),
    }


def privatize(grads, key: jax.Array, clip: float, noise_multiplier: float):
    """DP-SGD's aggregate: clip each example to norm `clip`, sum, add
    N(0, (noise_multiplier * clip)^2) noise, divide by the batch size.

    Returns:
      (the noisy mean gradient, the fraction of examples that were clipped).
    """
    leaves, treedef = jax.tree.flatten(grads)
    batch = leaves[0].shape[0]
    norms = jnp.sqrt(
        sum(jnp.sum(g.reshape(batch, -1) ** 2, 1) for g in leaves)
    )
    factor = jnp.minimum(1.0, clip / (norms + 1e-12))  # (B,)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        (
            jnp.tensordot(factor, g, axes=1)
            + noise_multiplier * clip * jax.random.normal(k, g.shape[1:])
        )
        / batch
        for g, k in zip(leaves, keys)
    ]
    return jax.tree.unflatten(treedef, noisy), jnp.mean(norms > clip)


def make_private_update(optimizer, clip: float, noise_multiplier: float):
    """Returns ``update(params, opt_state, key, grads) -> (params, opt_state,
    clipped fraction)`` from per-example `grads`, jitted.

    The per-example gradients come from their own jitted call, the one the
    check above compiled already: two dispatches per step, one compilation
    less.
    """

    @jax.jit
    def update(params, opt_state, key, grads):
        mean_grad, clipped = privatize(grads, key, clip, noise_multiplier)
        updates, opt_state = optimizer.update(mean_grad, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, clipped

    return update


def accuracy(model, params, data) -> float:
    x, lengths, labels = data
    logits = logits_fn(model, params, x, lengths)
    return float(jnp.mean(jnp.argmax(logits, -1) == labels))


def print_check(check: dict, args) -> bool:
    """Prints the comparison; returns whether the two calls agree."""
    print(
        f"per-example gradients for {args.batch} sequences of up to "
        f"{args.max_length} steps: gru/kernel "
        f"{check['shapes']['gru']['kernel']}, head/bias "
        f"{check['shapes']['head']['bias']}"
    )
    print(
        f"outputs, vmapped vs batched: max |difference| {check['outputs']:.1e}"
    )
    print(
        f"mean gradient, vmapped vs batched: max |difference| "
        f"{check['mean_gradient']:.1e} (largest entry "
        f"{check['gradient_scale']:.1e})"
    )
    # The same float32 numbers summed in another order differ by ~1e-7 of
    # their scale; a wrong axis or a missing mask would differ by ~1.
    agree = (
        check["outputs"] < 1e-5
        and check["mean_gradient"] < 1e-5 * check["gradient_scale"]
    )
    print("vmapped and batched calls agree:", agree)
    return agree


def train_private(model, params, args, rng: np.random.Generator):
    """DP-SGD-style training (Adam on the privatized gradient)."""
    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(params)
    update = make_private_update(optimizer, args.clip, args.noise_multiplier)
    key = jax.random.key(args.seed + 1)
    for step in range(1, args.steps + 1):
        key, noise_key = jax.random.split(key)
        batch = make_batch(rng, args.batch, args.max_length, args.features)
        losses, grads = per_example_grads(model, params, *batch)
        params, opt_state, clipped = update(
            params, opt_state, noise_key, grads
        )
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(
                f"step {step:4d}: loss {float(losses.mean()):.3f}, "
                f"{float(clipped):.0%} of examples clipped"
            )
    return params


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    model = make_model(args.units)
    params = init_params(model, jax.random.key(args.seed), args.features)
    check = check_against_batched(
        model,
        params,
        *make_batch(rng, args.batch, args.max_length, args.features),
    )
    agree = print_check(check, args)

    test = make_batch(rng, 1000, args.max_length, args.features)
    print(
        f"DP-SGD (clip {args.clip}, noise multiplier "
        f"{args.noise_multiplier}): test accuracy before "
        f"{accuracy(model, params, test):.1%}"
    )
    started = time.perf_counter()
    params = train_private(model, params, args, rng)
    final = accuracy(model, params, test)
    print(
        f"trained {args.steps} steps in {time.perf_counter() - started:.1f} s"
    )
    print(f"DP-SGD test accuracy after: {final:.1%}")
    return {**check, "agree": agree, "accuracy": final}


if __name__ == "__main__":
    main()
