"""gpunet: neural networks you can read down to the CUDA kernels; NumPy on the CPU, CuPy on NVIDIA GPUs.

    import gpunet as gn
    net = gn.nn.Sequential(gn.nn.Linear(64, 50), gn.nn.Sigmoid(), gn.nn.Linear(50, 10))

Names are imported on first use (PEP 562), so ``import gpunet`` and the ``gpunet`` command start fast.
"""
import importlib as _importlib

__version__ = "0.1.0"

_SUBMODULES = ("autograd", "backend", "cli", "config", "data", "models", "nn", "ops", "optim", "random", "runner",
               "testing", "train")
_NAMES = {
    "backend": ("Device", "DeviceError", "set_device"),
    "backend.cuda_settings": ("backends", "get_float32_matmul_precision", "set_float32_matmul_precision"),
    "autograd": ("DeviceMismatchError", "Function", "Tensor", "enable_grad", "grad", "is_grad_enabled", "no_grad",
                 "set_grad_enabled"),
    "random": ("manual_seed",),
    "ops": ("abs", "arange", "argmax", "argmin", "cat", "chunk", "clamp", "empty", "exp", "eye", "flatten", "full",
            "full_like", "linspace", "log", "log_softmax", "logsumexp", "matmul", "max", "mean", "min", "ones",
            "ones_like", "permute", "pow", "rand", "rand_like", "randint", "randn", "randn_like", "relu", "reshape",
            "sigmoid", "softmax", "split", "sqrt", "squeeze", "stack", "std", "sum", "tanh", "tensor", "transpose",
            "unsqueeze", "var", "where", "zeros", "zeros_like"),
}
_HOME = {name: module for module, names in _NAMES.items() for name in names}
_DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "int32": "int32", "int64": "int64",
           "bool": "bool", "float": "float32", "double": "float64", "long": "int64"}


__all__ = sorted({*_SUBMODULES, *_HOME, *_DTYPES, "device", "get_device"}
                 - {"cli", "config", "data", "models", "runner", "train"})


def __getattr__(name):
    if name in _DTYPES:
        import numpy

        value = numpy.dtype(_DTYPES[name])
    elif name in _HOME:
        value = getattr(_importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_SUBMODULES, *_HOME, *_DTYPES})


def device(spec):
    """A Device from a string such as 'cpu' or 'cuda:0'."""
    from .backend import parse_device

    return parse_device(spec)


def get_device():
    """The device new tensors are created on."""
    from .backend import current

    return current().device
