"""`SLSTMCell` and `MLSTMCell` params from and to the ``xlstm`` package
(NX-AI's PyTorch xLSTM: ``xlstm.blocks.slstm.cell.sLSTMCell`` and
``xlstm.blocks.mlstm.cell.mLSTMCell``).

xlstm's cells take their inputs already projected (the sLSTM the gates'
pre-activations, the mLSTM q, k and v); its layers make those projections
(head-wise, after a convolution). jaxrnn's cells own their input
projection, so the converters take it, or give it, beside the module:
``x @ kernel`` is what xlstm's sLSTMCell reads, ``x @ q_kernel`` (and k, v)
what its mLSTMCell reads.

The sLSTM's weights are read through the module's own conversion to its
backend-independent layout (``_recurrent_kernel_int2ext``,
``_bias_int2ext``): the raw ``_recurrent_kernel_``/``_bias_`` parameters
are laid out differently by its vanilla and CUDA backends, and the biases
of the two have the same shape.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxrnn.cells.mlstm import MLSTMCell
from jaxrnn.cells.slstm import SLSTMCell


def _numpy(tensor: Any) -> np.ndarray:
    import torch

    return tensor.detach().to(torch.float32).cpu().numpy()


def _kernel(name: str, kernel: Any, rows: int | None, cols: int) -> Any:
    if hasattr(kernel, "detach"):  # a torch tensor, maybe one with grad
        kernel = _numpy(kernel)
    kernel = jnp.asarray(np.asarray(kernel, np.float32))
    if (
        kernel.ndim != 2
        or kernel.shape[1] != cols
        or (rows is not None and kernel.shape[0] != rows)
    ):
        want = f"({'D' if rows is None else rows}, {cols})"
        raise ValueError(
            f"`{name}` must have shape {want}, got {kernel.shape}."
        )
    return kernel


def from_xlstm(
    module: Any, projections: Any
) -> tuple[SLSTMCell | MLSTMCell, dict[str, Any]]:
    """A jaxrnn cell and its params from an xlstm ``sLSTMCell`` (either
    backend) or ``mLSTMCell``.

    Args:
      module: the xlstm cell module; its config's sizes and heads are read.
      projections: the input projection xlstm's cell is fed through: for an
        sLSTM the (D, 4H) kernel making its ``[i, f, z, o]`` input, for an
        mLSTM a dict of the (D, H) ``q``, ``k`` and ``v`` kernels.

    Returns:
      ``(cell, params)``, float32 params.

    Raises:
      TypeError: not an xlstm sLSTM or mLSTM cell.
      ValueError: a variant jaxrnn does not compute (the sLSTM's plain
        ``lstm`` function, a gradient clip) or projections of the wrong
        shape.
    """
    from xlstm.blocks.mlstm.cell import mLSTMCell  # pyright: ignore[reportMissingImports]
    from xlstm.blocks.slstm.cell import sLSTMCellBase  # pyright: ignore[reportMissingImports]

    if isinstance(module, sLSTMCellBase):
        return _from_slstm(module, projections)
    if isinstance(module, mLSTMCell):
        return _from_mlstm(module, projections)
    raise TypeError(
        "from_xlstm takes an xlstm sLSTMCell or mLSTMCell, got "
        f"{type(module).__name__}."
    )


def _from_slstm(module, kernel):
    config = module.config
    if config.function != "slstm":
        raise ValueError(
            f"xlstm sLSTMCell(function={config.function!r}) is not the "
            "sLSTM; SLSTMCell computes function='slstm'."
        )
    if config.gradient_recurrent_cut or config.gradient_recurrent_clipval:
        raise ValueError(
            "xlstm's recurrent gradient cut/clip (a CUDA-backend option) "
            "changes the gradients; SLSTMCell has no such option."
        )
    cell = SLSTMCell(int(config.hidden_size), num_heads=int(config.num_heads))
    nh, dh = cell.num_heads, cell.head_size
    recurrent = _numpy(
        module._recurrent_kernel_int2ext(module._recurrent_kernel)
    )
    bias = _numpy(module._bias_int2ext(module._bias))  # (NH, 4, DH)
    params = {
        "kernel": _kernel("projections", kernel, None, 4 * cell.units),
        "recurrent_kernel": jnp.asarray(recurrent.reshape(nh, dh, 4 * dh)),
        "bias": jnp.asarray(bias.transpose(1, 0, 2).reshape(-1)),
    }
    cell.check_params(params, params["kernel"].shape[0])
    return cell, params


def _from_mlstm(module, projections):
    config = module.config
    cell = MLSTMCell(
        int(config.embedding_dim), num_heads=int(config.num_heads)
    )
    if not isinstance(projections, dict) or set(projections) != set("qkv"):
        raise ValueError(
            "An mLSTM's projections are a dict of the 'q', 'k' and 'v' "
            f"kernels, got {type(projections).__name__}"
            + (
                f" with keys {sorted(projections)}"
                if isinstance(projections, dict)
                else ""
            )
            + "."
        )
    params = {
        f"{name}_kernel": _kernel(
            f"projections[{name!r}]", projections[name], None, cell.units
        )
        for name in "qkv"
    }
    for gate in ("igate", "fgate"):
        linear = getattr(module, gate)
        params[f"{gate}_kernel"] = jnp.asarray(_numpy(linear.weight).T)
        params[f"{gate}_bias"] = jnp.asarray(_numpy(linear.bias))
    params["outnorm_scale"] = jnp.asarray(_numpy(module.outnorm.weight_proxy))
    cell.check_params(params, params["q_kernel"].shape[0])
    return cell, params


def to_xlstm(
    cell: SLSTMCell | MLSTMCell,
    params: dict[str, Any],
    *,
    backend: str = "vanilla",
    context_length: int = 1,
) -> tuple[Any, Any]:
    """xlstm's ``(module, projections)`` computing what `cell` does with
    `params`: an ``sLSTMCell`` (float32, xlstm's default output layout
    (B, NH, T, DH)) and its (D, 4H) input kernel, or an ``mLSTMCell`` and
    its ``{'q', 'k', 'v'}`` kernels, as torch tensors.

    Args:
      cell: an `SLSTMCell` or `MLSTMCell`.
      params: its params.
      backend: the sLSTM module's backend, ``"vanilla"`` (plain PyTorch) or
        ``"cuda"`` (built without compiling its kernel, so that its
        ``state_dict`` has the CUDA layout a CUDA model loads); the two
        store the same weights in different layouts.
      context_length: the mLSTM module's longest sequence (xlstm sizes a
        causal mask by it); unused for an sLSTM.

    Raises:
      TypeError: another cell.
      ValueError: params of the wrong shapes.
      ImportError: xlstm or torch is not installed.
    """
    import torch

    def tensor(a):
        return torch.tensor(np.asarray(a, np.float32))

    if isinstance(cell, SLSTMCell):
        from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig  # pyright: ignore[reportMissingImports]

        if backend not in ("vanilla", "cuda"):
            raise ValueError(
                f"`backend` must be 'vanilla' or 'cuda', got {backend!r}."
            )
        input_dim = int(np.shape(params["kernel"])[0])
        cell.check_params(params, input_dim)
        nh, dh = cell.num_heads, cell.head_size
        module = sLSTMCell(
            sLSTMCellConfig(
                hidden_size=cell.units,
                num_heads=nh,
                backend=backend,
                dtype="float32",
                enable_automatic_mixed_precision=False,
            ),
            skip_backend_init=True,
        )
        recurrent = np.asarray(params["recurrent_kernel"], np.float32)
        bias = np.asarray(params["bias"], np.float32).reshape(4, nh, dh)
        with torch.no_grad():
            module._recurrent_kernel_.copy_(
                module._recurrent_kernel_ext2int(
                    tensor(recurrent.reshape(nh, dh, 4, dh))
                )
            )
            module._bias_.copy_(
                module._bias_ext2int(tensor(bias.transpose(1, 0, 2)))
            )
        return module, tensor(params["kernel"])
    if isinstance(cell, MLSTMCell):
        from xlstm.blocks.mlstm.cell import mLSTMCell, mLSTMCellConfig  # pyright: ignore[reportMissingImports]

        input_dim = int(np.shape(params["q_kernel"])[0])
        cell.check_params(params, input_dim)
        module = mLSTMCell(
            mLSTMCellConfig(
                context_length=context_length,
                embedding_dim=cell.units,
                num_heads=cell.num_heads,
            )
        )
        with torch.no_grad():
            for gate in ("igate", "fgate"):
                linear = getattr(module, gate)
                linear.weight.copy_(tensor(params[f"{gate}_kernel"]).T)
                linear.bias.copy_(tensor(params[f"{gate}_bias"]))
            scale = tensor(params["outnorm_scale"])
            outnorm: Any = module.outnorm
            outnorm.weight.copy_(
                scale - 1.0 if outnorm.residual_weight else scale
            )
        return module, {
            name: tensor(params[f"{name}_kernel"]) for name in "qkv"
        }
    raise TypeError(
        f"to_xlstm takes an SLSTMCell or MLSTMCell, got {type(cell).__name__}."
    )
