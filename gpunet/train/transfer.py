"""Transfer learning (seed 002): read pretrained weights, freeze layers, replace the head, learning rate per layer.

Weights come from a gpunet checkpoint (``.npz``, its ``model`` state_dict), a plain ``.npz`` of arrays, a PyTorch
state_dict file (``.pt``/``.pth``, read with ``torch.load(weights_only=True)``, which runs no code from the file)
or a ``.safetensors`` file (read here: a JSON header and raw little-endian arrays). Layers are named by module
path, as in ``model.named_modules()`` and the state_dict's keys (``"0"``, ``"features.3"``); a name covers the
module and everything below it.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from ..nn.linear import Linear
from .checkpoint import CheckpointError, load_checkpoint

__all__ = ["TransferError", "check_layer", "freeze", "layer_names", "load_body", "load_weights", "parameter_groups", "replace_head"]


class TransferError(CheckpointError, ValueError):
    """A weights file cannot be read or does not fit the model, or a layer name names no layer of the model."""


# ----- reading weights ------------------------------------------------------------------------------------------
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                       "I8": "i1", "U8": "u1", "BOOL": "?"}


def _read_safetensors(path: str) -> dict:
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise TransferError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    (length,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + length])
    except (ValueError, UnicodeDecodeError):
        raise TransferError(f"{path}: not a safetensors file (its header is not JSON)") from None
    body, arrays = data[8 + length:], {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise TransferError(f"{path}: tensor {name!r} has dtype {entry.get('dtype')!r}, which gpunet does not read "
                                f"(it reads {', '.join(_SAFETENSORS_DTYPES)})")
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if end > len(body) or end - begin != np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)):
            raise TransferError(f"{path}: tensor {name!r} does not fit its byte range (the file is truncated or damaged)")
        arrays[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape).copy()
    return arrays


def _read_torch(path: str) -> dict:
    try:
        import torch
    except ImportError:
        raise TransferError(f"{path} is a PyTorch file; reading it needs PyTorch: pip install torch "
                            "(or save the weights as .safetensors or .npz)") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:  # noqa: BLE001 - torch raises many types; the message names the file and the cause
        raise TransferError(f"{path}: PyTorch could not read it as a weights-only state_dict ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TransferError(f"{path}: expected a state_dict (a dict of tensors, as torch.save(model.state_dict(), "
                            f"path) writes), got a {type(state).__name__} holding other values")
    return {k: v.detach().cpu().numpy() for k, v in state.items()}


def load_weights(path) -> dict:
    """The state_dict (name -> NumPy array) held by ``path``: a gpunet checkpoint, an ``.npz`` of arrays, a
    PyTorch state_dict file (``.pt``, ``.pth``) or a ``.safetensors`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TransferError(f"pretrained weights {path!r}: no such file")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in (".pt", ".pth"):
        return _read_torch(path)
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix != ".npz":
        raise TransferError(f"pretrained weights {path!r}: unknown file type {suffix!r}; gpunet reads .npz (its "
                            "checkpoints, or arrays), .pt/.pth (PyTorch state_dicts) and .safetensors")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if "__checkpoint__" not in archive.files:
                return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise TransferError(f"pretrained weights {path!r}: not a readable .npz file ({exc})") from None
    try:
        return dict(load_checkpoint(path).model)
    except CheckpointError as exc:
        raise TransferError(str(exc)) from None


# ----- naming layers ---------------------------------------------------------------------------------------------
def layer_names(model) -> list[str]:
    """The module paths that own parameters (``"0"``, ``"features.3"``), in model order."""
    return [name for name, module in model.named_modules() if name and module._parameters]


def _covers(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def check_layer(model, name: str, what: str) -> None:
    """Raise TransferError (beginning with ``what``) unless ``name`` names a layer of ``model`` with parameters."""
    if not any(_covers(p, name) for p, _ in model.named_parameters()):
        raise TransferError(f"{what} {name!r} names no layer with parameters; the model's layers are: "
                            f"{', '.join(layer_names(model))}")


def freeze(model, layers) -> list[str]:
    """Stop training the parameters of each named layer (``requires_grad = False``); return their names."""
    for name in layers:
        check_layer(model, name, "freeze: layer")
    frozen = [p for p, _ in model.named_parameters() if any(_covers(p, name) for name in layers)]
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


def replace_head(model, layer: str, out_features: int):
    """Replace the Linear layer at module path ``layer`` with a new Linear(in_features, ``out_features``) on the same
    device and dtype, initialised as a fresh layer; return the new layer."""
    check_layer(model, layer, "replace_head: layer")
    old = model.get_submodule(layer)
    if not isinstance(old, Linear):
        raise TransferError(f"replace_head: layer {layer!r} is a {type(old).__name__}; the head must be a Linear "
                            f"layer (the model's layers are: {', '.join(layer_names(model))})")
    weight = old.weight
    new = Linear(old.in_features, out_features, bias=old.bias is not None).to(weight.device, weight.dtype)
    parent_path, _, child = layer.rpartition(".")
    model.get_submodule(parent_path)._modules[child] = new
    return new


def parameter_groups(model, lr: float | None = None, layer_lr: dict | None = None) -> list[dict]:
    """Optimizer parameter groups: one per entry of ``layer_lr`` (layer name -> learning rate) with its parameters,
    then the remaining parameters with ``lr`` (None: no ``lr`` entry, so the optimizer's own applies). Frozen
    parameters (``requires_grad`` False) are left out, so the optimizer keeps no state for them; empty groups are
    dropped."""
    layer_lr = dict(layer_lr or {})
    for name in layer_lr:
        check_layer(model, name, "layer_lr: layer")
    groups = {name: [] for name in layer_lr}
    rest = []
    for pname, param in model.named_parameters():
        if not param.requires_grad:
            continue
        owner = max((name for name in layer_lr if _covers(pname, name)), key=len, default=None)
        (groups[owner] if owner is not None else rest).append(param)
    result = [{"params": params, "lr": float(layer_lr[name])} for name, params in groups.items() if params]
    if rest:
        result.append({"params": rest} if lr is None else {"params": rest, "lr": float(lr)})
    return result


def load_body(model, weights: dict, head: str, source: str = "the weights") -> list[str]:
    """Copy ``weights`` into every parameter and buffer of ``model`` except those of the layer ``head`` (replaced: it
    keeps its fresh initialisation, and the weights' own head, of any size, is ignored); return the keys loaded.
    Keys missing on either side, or of another shape, are an error naming ``source``."""
    check_layer(model, head, "head: layer")
    own = {k: v for k, v in model.state_dict().items() if not _covers(k, head)}
    body = {k: v for k, v in weights.items() if not _covers(k, head)}
    problems = []
    if set(own) - set(body):
        problems.append("missing: " + ", ".join(k for k in own if k not in body))
    if set(body) - set(own):
        problems.append("not in the model: " + ", ".join(k for k in body if k not in own))
    problems += [f"{k} has shape {tuple(np.shape(body[k]))} there but {tuple(v.shape)} in the model"
                 for k, v in own.items() if k in body and tuple(np.shape(body[k])) != tuple(v.shape)]
    if problems:
        raise TransferError(f"{source} do not fit the model below its head {head!r}: {'; '.join(problems)}. The "
                            f"model's layers are: {', '.join(layer_names(model))}")
    model.load_state_dict(body, strict=False)
    return list(body)
