"""Builds, checks and times the rows of one workload.

Each peer gives up to two rows, forward (the full output sequence) and training
step (`value_and_grad` of the loss w.r.t. params and inputs; torch:
``loss.backward()`` with inputs requiring grad). Before any timing a row is
compared with jaxrnn on the same weights: outputs, loss, input gradients,
and the peer's parameter gradients carried back into jaxrnn's layout by the
vjp of the layout conversion. A row off by more than TOLERANCE is FAILED and
not timed. The rows of a workload are then timed round-robin, so that their
ratios share the machine's state.
"""

from __future__ import annotations

import dataclasses
import math
import random
import resource
import time
import traceback
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import peers
from workloads import Data, Workload, loss, masked_outputs

TOLERANCE = 1e-4
# With TF32 matmuls (run.py --precision default on a GPU) every library
# rounds each product to about 1e-3, and a whole sequence of them differs
# from jaxrnn's by more than float32's 1e-4.
TF32_TOLERANCE = 2e-2
MODES = ("forward", "train")


@dataclasses.dataclass
class Row:
    """One peer in one mode on one workload, and what was measured."""

    workload: Workload
    peer: str
    mode: str
    key: str = ""  # the peer's name in peers.PEERS
    group: str = ""
    status: str = "ok"  # ok, FAILED or skipped
    reason: str = ""
    note: str = ""
    comparable: bool = True
    errors: dict = dataclasses.field(default_factory=dict)
    first_call_s: float = math.nan
    times_s: list = dataclasses.field(default_factory=list)
    faults: list = dataclasses.field(default_factory=list)
    calls_per_sample: int = 1
    temp_bytes: int | None = None
    remat_temp_bytes: int | None = None
    call: Callable[[], Any] | None = dataclasses.field(
        default=None, repr=False
    )

    def as_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("call")
        out["workload"] = dataclasses.asdict(self.workload)
        out["label"] = self.workload.label
        out["flops"] = self.workload.flops(self.mode)
        return out


def _max_abs(tree) -> float:
    return max(float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree.leaves(tree))


def _relative(got, want) -> float:
    """max |got - want| over all leaves, over max |want|."""
    diff = jax.tree.map(
        lambda a, b: jnp.asarray(a) - jnp.asarray(b), got, want
    )
    return _max_abs(diff) / max(_max_abs(want), 1e-30)


def expected(impl, workload: Workload, data: Data, cache: dict) -> dict:
    """jaxrnn's results for the peer's oracle maths: {"forward": outputs,
    "train": (loss, (param grads, input grads))}."""
    if impl.oracle not in cache:
        forward = peers.oracle(impl.oracle, workload)
        args = (data.params, data.inputs, data.lengths)
        train = jax.value_and_grad(
            lambda p, x, lengths: loss(forward(p, x, lengths), lengths), (0, 1)
        )
        cache[impl.oracle] = {
            "forward": jax.jit(forward)(*args),
            "train": jax.jit(train)(*args),
        }
    return cache[impl.oracle]


def check(mode: str, impl, data: Data, got, want: dict) -> dict:
    """The check's figures: max abs error of the outputs at valid steps;
    relative errors (over the largest entry) of the loss and gradients, the
    peer's param gradients pulled back into jaxrnn's layout by the vjp of
    its conversion."""
    if mode == "forward":
        diff = masked_outputs(jnp.asarray(got), data.lengths) - masked_outputs(
            want["forward"], data.lengths
        )
        return {"outputs": float(jnp.max(jnp.abs(diff)))}
    value, (peer_grads, input_grads) = got
    want_value, (want_params, want_inputs) = want["train"]
    _, pullback = jax.vjp(impl.convert, data.params)
    (param_grads,) = pullback(peer_grads)
    return {
        "loss": _relative(value, want_value),
        "grad_inputs": _relative(input_grads, want_inputs),
        "grad_params": _relative(param_grads, want_params),
    }


def _jax_rows(impl: peers.JaxPeer, workload, data) -> tuple[list[Row], dict]:
    """Compiles and runs both modes once: (rows, {mode: result})."""
    args = (impl.convert(data.params), data.inputs, data.lengths)
    train = jax.value_and_grad(
        lambda pp, x, lengths: loss(impl.forward(pp, x, lengths), lengths),
        (0, 1),
    )
    rows, results = [], {}
    for mode, fn in (("forward", impl.forward), ("train", train)):
        if mode not in impl.modes:
            continue
        row = _new_row(impl, workload, mode)
        start = time.perf_counter()
        compiled = jax.jit(fn).lower(*args).compile()
        results[mode] = jax.block_until_ready(compiled(*args))
        row.first_call_s = time.perf_counter() - start
        if mode == "train":
            row.temp_bytes = compiled.memory_analysis().temp_size_in_bytes
        row.call = lambda compiled=compiled: jax.block_until_ready(
            compiled(*args)
        )
        rows.append(row)
    return rows, results


def jaxrnn_remat_temp_bytes(workload: Workload, data: Data) -> int:
    """Peak temp memory of jaxrnn's training step with remat=True."""
    forward = peers.jaxrnn_forward(workload, remat=True)
    train = jax.value_and_grad(
        lambda p, x, lengths: loss(forward(p, x, lengths), lengths), (0, 1)
    )
    compiled = (
        jax.jit(train).lower(data.params, data.inputs, data.lengths).compile()
    )
    return compiled.memory_analysis().temp_size_in_bytes


def torch_device(torch) -> tuple[str, Callable[[], None]]:
    """(device, wait): where the torch rows run, the GPU when JAX runs on
    one (and torch sees it), else the CPU; and what a timed call runs last
    to wait for its kernels (CUDA runs asynchronously)."""
    if jax.default_backend() == "gpu" and torch.cuda.is_available():
        return "cuda", torch.cuda.synchronize
    return "cpu", lambda: None


def _torch_rows(
    impl: peers.TorchPeer, workload, data
) -> tuple[list[Row], dict]:
    import torch

    device, wait = torch_device(torch)
    state = {
        k: torch.from_numpy(np.array(v)).to(device)
        for k, v in impl.convert(data.params).items()
    }
    impl.module.to(device)
    impl.module.load_state_dict(state, strict=True)
    x = torch.from_numpy(np.array(data.inputs)).to(device)
    x_grad = x.clone().requires_grad_(True)
    lengths = mask = None
    if data.lengths is not None:
        # pack_padded_sequence takes its lengths on the CPU.
        lengths = torch.from_numpy(np.array(data.lengths)).long()
        mask = torch.arange(workload.steps)[None, :] < lengths[:, None]
        mask = mask.float()[..., None].to(device)

    def forward():
        with torch.no_grad():
            ys = impl.forward(impl.module, x, lengths)
        wait()
        return ys

    def train():
        impl.module.zero_grad(set_to_none=True)
        x_grad.grad = None
        ys = impl.forward(impl.module, x_grad, lengths)
        value = (ys if mask is None else ys * mask).square().mean()
        value.backward()
        wait()
        return value

    rows, results = [], {}
    for mode, fn in (("forward", forward), ("train", train)):
        row = _new_row(impl, workload, mode)
        start = time.perf_counter()
        results[mode] = fn()
        row.first_call_s = time.perf_counter() - start
        row.call = fn
        rows.append(row)
    grads = {
        name: jnp.asarray(p.grad.cpu().numpy())
        for name, p in impl.module.named_parameters()
    }
    results = {
        "forward": results["forward"].cpu().numpy(),
        "train": (
            float(results["train"].detach()),
            (grads, jnp.asarray(x_grad.grad.cpu().numpy())),
        ),
    }
    return rows, results


def _new_row(impl, workload, mode) -> Row:
    return Row(
        workload,
        impl.label,
        mode,
        group=impl.group,
        note=impl.note,
        comparable=impl.comparable,
    )


def build_rows(
    name: str,
    workload: Workload,
    data: Data,
    cache: dict,
    log: Callable[[str], None],
    tolerance: float = TOLERANCE,
) -> list[Row]:
    """Both rows of peer `name`, compiled, run once and checked (to
    `tolerance`); a skipped or broken peer gives rows that say why (none
    where not applicable)."""
    try:
        impl = peers.PEERS[name](workload)
    except peers.NotApplicable:
        return []
    except peers.Unsupported as reason:
        log(f"  skip {name}: {reason}")
        return [
            Row(
                workload,
                name,
                mode,
                key=name,
                status="skipped",
                reason=str(reason),
            )
            for mode in MODES
        ]
    try:
        make = _torch_rows if isinstance(impl, peers.TorchPeer) else _jax_rows
        rows, results = make(impl, workload, data)
        for row in rows:
            row.key = name
        if impl.label == "jaxrnn" and impl.oracle not in cache:
            cache[impl.oracle] = results  # jaxrnn itself: no second compile
        want = expected(impl, workload, data, cache)
        for row in rows:
            row.errors = check(row.mode, impl, data, results[row.mode], want)
    except Exception as error:  # a broken peer fails its rows, not the run
        log(traceback.format_exc())
        return [
            Row(
                workload,
                impl.label,
                mode,
                key=name,
                group=impl.group,
                status="FAILED",
                reason=f"{type(error).__name__}: {error}",
            )
            for mode in getattr(impl, "modes", MODES)
        ]
    for row in rows:
        worst = max(row.errors.values())
        if not worst <= tolerance:  # also catches NaN
            row.status, row.call = "FAILED", None
            row.reason = f"differs from jaxrnn by {worst:.1e}: {row.errors}"
        if row.peer == "jaxrnn" and row.mode == "train" and row.status == "ok":
            row.remat_temp_bytes = jaxrnn_remat_temp_bytes(workload, data)
    return rows


# A repetition of a call shorter than this runs the call back to back until
# it lasts about this long and records the mean: single calls of 1-2 ms
# (B=1) varied 20-40 % from one repetition to the next.
MIN_SAMPLE_S = 0.02
MAX_CALLS_PER_SAMPLE = 64


def _measure(call, calls: int = 1) -> tuple[float, float]:
    """(seconds per call, minor page faults per call) over `calls` calls."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return elapsed / calls, faults / calls


def time_rows(
    rows: list[Row], repeats: int, budget_s: float, seed: int = 0
) -> None:
    """Round-robin repetitions over the live rows, in a fresh random order
    each round; a repetition of a row whose call is shorter than
    MIN_SAMPLE_S is the mean of that many back-to-back calls. A row whose
    warm repetition times `repeats` exceeds `budget_s` gets fewer
    repetitions (at least 3, or `repeats` if smaller)."""
    live = [row for row in rows if row.status == "ok"]
    planned = {}
    for row in live:
        elapsed, _ = _measure(row.call)  # warm-up, untimed
        row.calls_per_sample = min(
            MAX_CALLS_PER_SAMPLE,
            max(1, math.ceil(MIN_SAMPLE_S / max(elapsed, 1e-9))),
        )
        affordable = int(budget_s / max(elapsed * row.calls_per_sample, 1e-9))
        planned[id(row)] = min(repeats, max(affordable, min(3, repeats)))
    order = random.Random(seed)
    for rep in range(max(planned.values(), default=0)):
        # A fixed order would always run the same row right after torch,
        # whose OpenMP workers spin on for milliseconds after a call and
        # slowed that row (jaxrnn, first) 1-4x at B=1 on 2 cores. Idling
        # between calls is no cure here: it slowed every row (the VM parks
        # idle cores).
        order.shuffle(live)
        for row in live:
            if rep < planned[id(row)]:
                elapsed, faults = _measure(row.call, row.calls_per_sample)
                row.times_s.append(elapsed)
                row.faults.append(faults)
    for row in live:
        row.call = None  # free the compiled programs and buffers


def matmul_peak_gflops(size: int, tries: int) -> dict:
    """Best GFLOP/s of a jitted float32 (size x size) @ (size x size)
    `jnp.dot` (the physical limit the rows are measured against), and of
    torch.mm for comparison when torch is present (on the device the torch
    rows use)."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(size, size)).astype(np.float32)
    b = rng.normal(size=(size, size)).astype(np.float32)
    flops = 2.0 * size**3
    dot = jax.jit(jnp.dot)
    a_jax, b_jax = jnp.asarray(a), jnp.asarray(b)
    jax.block_until_ready(dot(a_jax, b_jax))
    best = min(
        _measure(lambda: jax.block_until_ready(dot(a_jax, b_jax)))[0]
        for _ in range(tries)
    )
    out = {"size": size, "tries": tries, "jax_gflops": flops / best / 1e9}
    try:
        import torch
    except ImportError:
        return out
    device, wait = torch_device(torch)
    a_torch = torch.from_numpy(a).to(device)
    b_torch = torch.from_numpy(b).to(device)

    def product():
        torch.mm(a_torch, b_torch)
        wait()

    product()
    best = min(_measure(product)[0] for _ in range(tries))
    out["torch_gflops"] = flops / best / 1e9
    return out
