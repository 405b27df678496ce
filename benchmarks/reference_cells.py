"""The modern cells beside their reference implementations, on one machine.

jaxrnn's RG-LRU, Griffin block, sLSTM, mLSTM, minGRU and LRU against the
code their authors (or the best-known ports) publish, each the same
computation on the same sizes: recurrentgemma's JAX ``RGLRU`` and
``RecurrentBlock`` (jitted), the ``xlstm`` package's sLSTM and mLSTM cells
and ``flashrnn``'s sLSTM (their plain PyTorch backends, the ones that run
without CUDA), ``minGRU-pytorch`` (its log-space parallel scan) and
``LRU-pytorch`` (its step loop). Times the forward pass and one training
step (loss and gradients), median of interleaved repeats, and prints each
reference's time over jaxrnn's (above 1: jaxrnn is faster). A reference
that is not installed is skipped (``pip install --no-deps recurrentgemma
xlstm flashrnn minGRU-pytorch LRU-pytorch einops``).

Run: python benchmarks/reference_cells.py [--batch 8 --units 64
     --steps 256 1024 --repeats 5]
     python benchmarks/reference_cells.py --smoke   # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax
import jax.numpy as jnp
import numpy as np
from parallel_scan import machine

from jaxrnn import LRUCell, MinGRUCell, MLSTMCell, RGLRUCell, SLSTMCell, rnn
from jaxrnn.layers import GriffinBlock


def _jax_pair(apply):
    """(forward, train) jitted from ``apply(params, x) -> y``."""

    def loss(params, x):
        return jnp.mean(apply(params, x) ** 2)

    forward = jax.jit(apply)
    train = jax.jit(jax.value_and_grad(loss))
    return (
        lambda p, x: jax.block_until_ready(forward(p, x)),
        lambda p, x: jax.block_until_ready(train(p, x)),
    )


def _torch_pair(module_call, parameters):
    import torch

    def forward(x):
        with torch.no_grad():
            return module_call(x)

    def train(x):
        for p in parameters:
            p.grad = None
        loss = (module_call(x) ** 2).mean()
        loss.backward()
        return loss

    return forward, train


def _ours(cell_or_block, params, parallel):
    if isinstance(cell_or_block, GriffinBlock):
        return _jax_pair(cell_or_block.__call__), params
    return (
        _jax_pair(lambda p, x: rnn(cell_or_block, p, x, parallel=parallel)[0]),
        params,
    )


def case_rg_lru(h, key):
    from recurrentgemma.jax import layers  # pyright: ignore[reportMissingImports]

    cell = RGLRUCell(h, num_heads=4)
    params = cell.init(key, h)
    module = layers.RGLRU(width=h, num_heads=4)
    variables = module.init(key, jnp.ones((1, 2, h)), jnp.zeros((1, 2), int))

    def theirs(v, x):
        positions = jnp.broadcast_to(
            jnp.arange(1, x.shape[1] + 1), x.shape[:2]
        )
        return module.apply(v, x, positions)[0]

    fwd, train = _jax_pair(theirs)
    return (
        "recurrentgemma RGLRU (JAX)",
        _ours(cell, params, True),
        (
            lambda x: fwd(variables, x),
            lambda x: train(variables, x),
        ),
    )


def case_griffin(h, key):
    from recurrentgemma.jax import modules  # pyright: ignore[reportMissingImports]

    block = GriffinBlock(h, num_heads=4)
    params = block.init(key, (None, None, h))
    module = modules.RecurrentBlock(width=h, num_heads=4)
    variables = module.init(key, jnp.ones((1, 2, h)), jnp.zeros((1, 2), int))

    def theirs(v, x):
        positions = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])
        with jax.numpy_dtype_promotion("standard"):
            return module.apply(v, x, positions)[0]

    fwd, train = _jax_pair(theirs)
    return (
        "recurrentgemma RecurrentBlock (JAX)",
        _ours(block, params, True),
        (
            lambda x: fwd(variables, x),
            lambda x: train(variables, x),
        ),
    )


def case_slstm(h, key, reference="xlstm"):
    import torch

    from jaxrnn.interop import to_xlstm

    cell = SLSTMCell(h, num_heads=4)
    params = cell.init(key, h)
    params = dict(
        params,
        recurrent_kernel=0.1 * jax.random.normal(key, (4, h // 4, h)),
    )
    module, kernel = to_xlstm(cell, params)
    kernel.requires_grad_(True)
    if reference == "xlstm":

        def call(x):
            return module(x @ kernel)[0]

        label = "xlstm sLSTMCell (PyTorch, vanilla)"
        parameters = [kernel, *module.parameters()]
    else:
        from flashrnn.flashrnn.flashrnn import (  # pyright: ignore[reportMissingImports]
            FlashRNNConfig,
            flashrnn,
        )

        dh = h // 4
        recurrent = torch.tensor(
            np.asarray(params["recurrent_kernel"]).reshape(4, dh, 4, dh),
            requires_grad=True,
        )
        bias = torch.tensor(
            np.asarray(params["bias"]).reshape(4, 4, dh), requires_grad=True
        )

        def call(x):
            config = FlashRNNConfig(
                backend="vanilla",
                function="slstm",
                num_heads=4,
                head_dim=dh,
                hidden_dim=h,
                recurrent_shape="HPGD",
                bias_shape="GHD",
                dtype="float32",
                batch_size=x.shape[0],
            )
            wx = (x @ kernel).reshape(*x.shape[:2], 4, 4, dh)
            return flashrnn(
                wx, recurrent, bias, function="slstm", config=config
            )[0]

        label = "flashrnn sLSTM (PyTorch, vanilla)"
        parameters = [kernel, recurrent, bias]
    return label, _ours(cell, params, False), _torch_pair(call, parameters)


def case_flashrnn_slstm(h, key):
    return case_slstm(h, key, reference="flashrnn")


def case_mlstm(h, key):
    from jaxrnn.interop import to_xlstm

    cell = MLSTMCell(h, num_heads=4)
    params = cell.init(key, h)
    state = {"module": None, "steps": 0}
    _, projections = to_xlstm(cell, params, context_length=2)
    for p in projections.values():
        p.requires_grad_(True)

    def call(x):
        if state["steps"] != x.shape[1]:  # xlstm sizes its mask by T
            state["module"], _ = to_xlstm(
                cell, params, context_length=x.shape[1]
            )
            state["steps"] = x.shape[1]
        q, k, v = (x @ projections[name] for name in "qkv")
        return state["module"](q, k, v)

    return (
        "xlstm mLSTMCell (PyTorch, parallel)",
        _ours(cell, params, True),
        _torch_pair(call, list(projections.values())),
    )


def case_min_gru(h, key):
    import torch
    from minGRU_pytorch import minGRU  # pyright: ignore[reportMissingImports]

    torch.manual_seed(0)
    module = minGRU(h, expansion_factor=1.0)
    cell = MinGRUCell(h, use_bias=False, log_space=True)
    params = cell.init(key, h)
    return (
        "minGRU-pytorch (log-space parallel)",
        _ours(cell, params, True),
        _torch_pair(module, list(module.parameters())),
    )


def case_lru(h, key):
    import torch
    from LRU_pytorch import LRU  # pyright: ignore[reportMissingImports]

    torch.manual_seed(0)
    module = LRU(h, h, h)
    cell = LRUCell(h)
    params = cell.init(key, h)
    return (
        "LRU-pytorch (step loop)",
        _ours(cell, params, True),
        _torch_pair(module, list(module.parameters())),
    )


CASES = {
    "rg_lru": ("recurrentgemma", case_rg_lru),
    "griffin": ("recurrentgemma", case_griffin),
    "slstm": ("xlstm", case_slstm),
    "slstm_flashrnn": ("flashrnn", case_flashrnn_slstm),
    "mlstm": ("xlstm", case_mlstm),
    "min_gru": ("minGRU_pytorch", case_min_gru),
    "lru": ("LRU_pytorch", case_lru),
}


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def bench(name, steps, args):
    import torch

    label, (ours, params), theirs = CASES[name][1](
        args.units, jax.random.key(0)
    )
    x = np.random.default_rng(0).standard_normal(
        (args.batch, steps, args.units), np.float32
    )
    jx = jnp.asarray(x)
    tx = torch.tensor(x)
    is_jax = label.endswith("(JAX)")
    their_x = jx if is_jax else tx
    row = {"cell": name, "steps": steps, "reference": label}
    for kind, mine, ref in (
        ("fwd", ours[0], theirs[0]),
        ("train", ours[1], theirs[1]),
    ):
        _seconds(mine, params, jx)  # compiles
        _seconds(ref, their_x)  # compiles or warms up
        mine_t, ref_t = [], []
        for _ in range(args.repeats):  # interleaved
            mine_t.append(_seconds(mine, params, jx))
            ref_t.append(_seconds(ref, their_x))
        row[f"ours_{kind}"] = statistics.median(mine_t)
        row[f"ref_{kind}"] = statistics.median(ref_t)
    return row


def table(rows) -> str:
    lines = [
        "| cell | T | reference | fwd jaxrnn | fwd ref | ref/jaxrnn "
        "| train jaxrnn | train ref | ref/jaxrnn |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['steps']} | {r['reference']} "
            f"| {r['ours_fwd'] * 1e3:.2f} ms | {r['ref_fwd'] * 1e3:.2f} ms "
            f"| {r['ref_fwd'] / r['ours_fwd']:.1f}x "
            f"| {r['ours_train'] * 1e3:.2f} ms | {r['ref_train'] * 1e3:.2f} ms "
            f"| {r['ref_train'] / r['ours_train']:.1f}x |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--steps", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", nargs="+", default=list(CASES))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch, args.units, args.steps, args.repeats = 2, 16, [16], 1
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # as many as XLA uses
    rows, skipped = [], []
    for name in args.cells:
        package = CASES[name][0]
        if importlib.util.find_spec(package) is None:
            skipped.append(f"{name} ({package} not installed)")
            continue
        for steps in args.steps:
            rows.append(bench(name, steps, args))
            print(table(rows[-1:]).splitlines()[-1], flush=True)

    print(
        f"\n{machine()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); batch {args.batch}, "
        f"units {args.units}, median of {args.repeats}\n"
    )
    print(table(rows))
    if skipped:
        print("\nskipped: " + ", ".join(skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main())
