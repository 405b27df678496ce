"""Many-to-many forecasting: at every step, the next 16 values of a signal.

Seeded synthetic signals, each a sum of two or three sines of random
period, amplitude and phase, plus noise. Two stacked LSTMs
(``return_sequences=True``) read the signal, and a `TimeDistributed`
`Dense` turns the output at every step t into a forecast of the K values
after it, x[t+1], ..., x[t+K]: each step is a training example that sees
only its past. On held-out signals, the forecast from the end of the
window is scored by mean squared error against naive forecasts (the last
value held; the window's mean) and the noise floor no forecast can beat.

Run (about a minute on two CPU cores):

    python examples/forecast.py --plot forecast.png

Smaller: ``--steps 150 --units 16 --train-size 512``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxrnn
from jaxrnn.layers import Dense, Sequential, TimeDistributed


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--window", type=int, default=64, help="steps the model reads (W)"
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=16,
        help="values forecast at every step (K)",
    )
    parser.add_argument(
        "--train-size", type=int, default=4096, help="training signals"
    )
    parser.add_argument("--test-size", type=int, default=1024)
    parser.add_argument(
        "--noise",
        type=float,
        default=0.1,
        help="standard deviation of the added noise",
    )
    parser.add_argument(
        "--units", type=int, default=64, help="units of each LSTM"
    )
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--plot",
        metavar="PATH",
        help="plot forecasts against the truth to this PNG",
    )
    return parser.parse_args(argv)


# --- Data -------------------------------------------------------------------


def make_signals(
    count: int, length: int, noise: float, rng: np.random.Generator
) -> np.ndarray:
    """(count, length) float32: sums of 2-3 random sines plus Gaussian noise."""
    t = np.arange(length)
    signals = np.zeros((count, length))
    for row in signals:
        for _ in range(rng.integers(2, 4)):
            period = rng.uniform(8, 40)
            row += rng.uniform(0.2, 0.8) * np.sin(
                2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
            )
    signals += rng.normal(0, noise, signals.shape)
    return signals.astype(np.float32)


def inputs_and_targets(signals: np.ndarray, window: int, horizon: int):
    """Splits (N, W + K) signals into model inputs and per-step targets.

    Returns:
      inputs (N, W, 1): the first W values; targets (N, W, K): at step t,
      the K values that follow it, ``targets[:, t, k] = signals[:, t + 1 + k]``.
    """
    steps = np.arange(window)[:, None] + 1 + np.arange(horizon)  # (W, K)
    return signals[:, :window, None], signals[:, steps]


# --- Model and training -------------------------------------------------------


def make_model(units: int, horizon: int) -> Sequential:
    """Two causal LSTMs over the signal, then K forecasts per step."""
    return Sequential(
        [
            jaxrnn.LSTM(units, return_sequences=True),
            jaxrnn.LSTM(units, return_sequences=True),
            TimeDistributed(Dense(horizon)),
        ],
        name="forecaster",
    )


def make_train_step(model: Sequential, optimizer):
    @jax.jit
    def train_step(params, opt_state, inputs, targets):
        def loss_fn(params):
            return jnp.mean((model(params, inputs) - targets) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


def mse(prediction, truth) -> float:
    return float(np.mean((np.asarray(prediction) - np.asarray(truth)) ** 2))


def score(
    forecast: np.ndarray, inputs: np.ndarray, truth: np.ndarray, noise: float
) -> dict[str, float]:
    """Test MSE of the (N, K) forecasts from the window's end and baselines."""
    return {
        "model": mse(forecast, truth),
        "last_value": mse(np.broadcast_to(inputs[:, -1], truth.shape), truth),
        "window_mean": mse(
            np.broadcast_to(inputs.mean(1), truth.shape), truth
        ),
        "noise_floor": noise**2,
    }


def plot_forecasts(path: str, inputs, truth, forecast, count: int = 3) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    window, horizon = inputs.shape[1], truth.shape[1]
    past, ahead = np.arange(window), np.arange(window, window + horizon)
    fig, axes = plt.subplots(
        count, 1, figsize=(8, 2.3 * count), sharex=True, squeeze=False
    )
    for i, ax in enumerate(axes[:, 0]):
        ax.plot(past, inputs[i, :, 0], color="black", label="history")
        ax.plot(ahead, truth[i], color="C2", marker=".", label="truth")
        ax.plot(
            ahead,
            forecast[i],
            color="C3",
            linestyle="--",
            marker=".",
            label="forecast",
        )
        ax.plot(
            ahead,
            np.full(horizon, inputs[i, -1, 0]),
            color="gray",
            linestyle=":",
            label="naive (last value)",
        )
        ax.axvline(window - 0.5, color="gray", linewidth=0.5)
    axes[0, 0].legend(loc="upper left", ncol=4, fontsize="small")
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle("Stacked LSTM forecasts on held-out signals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(model, params, inputs, targets, args, rng: np.random.Generator):
    """Adam with a cosine-decaying step size over random minibatches."""
    optimizer = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adam(
            optax.cosine_decay_schedule(args.lr, args.steps, alpha=0.05)
        ),
    )
    opt_state = optimizer.init(params)
    train_step = make_train_step(model, optimizer)
    for step in range(1, args.steps + 1):
        rows = rng.choice(len(inputs), args.batch, replace=False)
        params, opt_state, loss = train_step(
            params, opt_state, inputs[rows], targets[rows]
        )
        if step % max(1, args.steps // 5) == 0 or step == args.steps:
            print(f"step {step:5d}: training MSE {float(loss):.4f}")
    return params


def report(results: dict[str, float], forecast, inputs, truth) -> None:
    print(
        f"test MSE of the next {truth.shape[1]} values: model "
        f"{results['model']:.4f}, naive last value "
        f"{results['last_value']:.4f}, naive window mean "
        f"{results['window_mean']:.4f}, noise floor "
        f"{results['noise_floor']:.4f}"
    )
    ahead = sorted(
        {1, truth.shape[1] // 4, truth.shape[1] // 2, truth.shape[1]} - {0}
    )
    print(
        "by steps ahead:",
        ", ".join(
            f"{k}: {mse(forecast[:, k - 1], truth[:, k - 1]):.4f} (naive "
            f"{mse(inputs[:, -1, 0], truth[:, k - 1]):.4f})"
            for k in ahead
        ),
    )
    best_naive = min(results["last_value"], results["window_mean"])
    print(f"model / best naive: {results['model'] / best_naive:.2f}")


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    (inputs, targets), (test_inputs, test_targets) = (
        inputs_and_targets(
            make_signals(count, args.window + args.horizon, args.noise, rng),
            args.window,
            args.horizon,
        )
        for count in (args.train_size, args.test_size)
    )

    model = make_model(args.units, args.horizon)
    params = model.init(jax.random.key(args.seed), (None, args.window, 1))
    print(
        f"{args.train_size} training and {args.test_size} test signals; "
        f"{args.horizon} values forecast at each of {args.window} steps; "
        f"model {sum(p.size for p in jax.tree.leaves(params)):,} params"
    )
    started = time.perf_counter()
    params = train(model, params, inputs, targets, args, rng)
    print(
        f"trained {args.steps} steps in {time.perf_counter() - started:.1f} s"
    )

    # The forecast that matters: from the last step, with the whole window
    # read, of the K values after the window.
    forecast = np.asarray(jax.jit(model)(params, test_inputs))[:, -1]  # (N, K)
    truth = test_targets[:, -1]
    results = score(forecast, test_inputs, truth, args.noise)
    report(results, forecast, test_inputs, truth)
    if args.plot:
        plot_forecasts(args.plot, test_inputs, truth, forecast)
        print(f"forecasts written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
