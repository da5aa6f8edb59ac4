"""The one-way dependency rule of DESIGN.md, checked on the source with `ast` (nothing is imported):

    cli/train -> training -> tasks -> models, data, metrics -> ops -> kernels and the compiled _C

models, data and metrics stand side by side (none imports another) on the shared ground floor
(vlengine/batch.py and the small private top-level helpers such as vlengine/_toolkit.py), which
anyone may import and which imports no layer. Nothing imports a layer above its own, and the
Triton kernels import nothing from vlengine.ops (the reference stays an independent oracle).
Every import counts: module level, inside functions (lazy), under `if TYPE_CHECKING:`, and
`importlib.import_module` with a written-out name (for an f-string, its constant start).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "vlengine"
# kernels/ ships inside the package as vlengine.kernels (setup.py's package_dir)
SOURCE_TREES = {PACKAGE: os.path.join(ROOT, "vlengine"), f"{PACKAGE}.kernels": os.path.join(ROOT, "kernels")}

# Layer of each top-level part of the package: a module may import its own layer's part and lower
# layers only. Parts sharing a rank are peers and may not import each other.
GROUND = 0
LAYERS = {
    "vlengine.kernels": 1, "vlengine._C": 1, "vlengine._C_cuda": 1,
    "vlengine.ops": 2,
    "vlengine.models": 3, "vlengine.data": 3, "vlengine.metrics": 3,
    "vlengine.tasks": 4,
    "vlengine.training": 5,
    "vlengine.cli": 6, "vlengine.info": 6,
}
# The ground floor: the root package (its version string), the shared batch contract, and small
# self-contained helpers (the atomic-write helper and the device-peak table, arriving from other
# branches of issue 11). Top-level modules named with a leading underscore (vlengine/_toolkit.py,
# vlengine/_config.py, ...) belong here too. The ground floor itself imports no layer.
GROUND_FLOOR = {"vlengine", "vlengine.batch", "vlengine.atomic", "vlengine.hardware"}

@dataclass(frozen=True)
class Import:
    module: str       # the importing module, e.g. vlengine.models.vlbert
    target: str       # the imported module, e.g. vlengine.batch
    line: int
    path: str


def _module_files() -> dict[str, str]:
    """{module name: file} for every .py under the source trees (the vlengine/kernels link is kernels/)."""
    files = {}
    for base, top in SOURCE_TREES.items():
        for folder, dirs, names in os.walk(top):
            rel = os.path.relpath(folder, top)
            if base == PACKAGE and rel.split(os.sep)[0] == "kernels":
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            parts = [] if rel == "." else rel.split(os.sep)
            for name in names:
                if not name.endswith(".py"):
                    continue
                stem = name[:-3]
                module = ".".join([base, *parts] + ([] if stem == "__init__" else [stem]))
                files[module] = os.path.join(folder, name)
    return files


MODULES = _module_files()
PACKAGES = {m for m, f in MODULES.items() if os.path.basename(f) == "__init__.py"}


def _exists(module: str) -> bool:
    return module in MODULES or module in ("vlengine._C", "vlengine._C_cuda")


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _leading_text(arg: ast.expr) -> str | None:
    """The string a call passes, or the constant start of an f-string; None when not written out."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def _imports(module: str, path: str) -> list[Import]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    package = module if module in PACKAGES else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, path) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from pkg import name` imports the submodule pkg.name when there is one
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append(Import(module, sub if _exists(sub) else source, node.lineno, path))
        elif isinstance(node, ast.Call) and _called_name(node.func) == "import_module" and node.args:
            name = _leading_text(node.args[0])
            if name:  # importlib.import_module("vlengine.x") / (f"vlengine.ops.{name}"): the named part
                found.append(Import(module, name.rstrip("."), node.lineno, path))
    return [i for i in found if i.target == PACKAGE or i.target.startswith(PACKAGE + ".")]


ALL_IMPORTS = [i for m, p in sorted(MODULES.items()) for i in _imports(m, p)]


def part_of(module: str) -> str:
    """The top-level part a module belongs to: vlengine.models.heads.mlm -> vlengine.models."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer_of(module: str) -> int:
    part = part_of(module)
    if part in GROUND_FLOOR or (part.startswith("vlengine._") and part not in LAYERS):
        return GROUND
    if part not in LAYERS:
        raise KeyError(f"{part} has no layer: add it to LAYERS (or GROUND_FLOOR) in {__file__}")
    return LAYERS[part]


def violation(imp: Import) -> str | None:
    """Why an import breaks the rule, or None."""
    src, dst = part_of(imp.module), part_of(imp.target)
    if src == dst:
        return None
    if src == "vlengine.kernels" and dst == "vlengine.ops":
        return "the Triton kernels import vlengine.ops (the reference must stay an independent oracle)"
    low, high = layer_of(imp.target), layer_of(imp.module)
    if low == GROUND:
        return None
    if high == GROUND:
        return f"the ground floor {src} imports the layer {dst}"
    if low > high:
        return f"{src} (layer {high}) imports {dst}, a layer above it ({low})"
    if low == high:
        return f"{src} and {dst} stand side by side: neither may import the other"
    return None


def _where(imp: Import) -> str:
    return f"{os.path.relpath(imp.path, ROOT)}:{imp.line}: {imp.module} imports {imp.target}"


def test_sources_are_found():
    for module in ("vlengine.batch", "vlengine.models.vlbert", "vlengine.data.masking.roi", "vlengine.tasks.vlbert",
                   "vlengine.training.loop", "vlengine.ops", "vlengine.kernels.mask_pixels"):
        assert module in MODULES, module
    assert not any(m.startswith("vlengine.kernels.") and "/vlengine/kernels/" in p for m, p in MODULES.items())
    assert len(ALL_IMPORTS) > 100
    edges = {(i.module, i.target) for i in ALL_IMPORTS}
    # the scanner sees imports inside functions, relative ones, and import_module calls
    assert ("vlengine.training.recipes", "vlengine.tasks.vlbert") in edges          # lazy, in a function
    assert ("vlengine.models.vlbert", "vlengine.models.validation") in edges        # from . import validation


def test_every_part_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_dependencies_point_one_way():
    broken = {}
    for imp in ALL_IMPORTS:
        why = violation(imp)
        if why is not None:
            broken.setdefault(_where(imp), why)
    assert not broken, "dependency rule broken:\n" + "\n".join(f"  {w}  ({why})" for w, why in broken.items())


def test_package_imports_resolve():
    """Every import of a vlengine module names one that exists (a moved module leaves no stale import)."""
    missing = [_where(i) for i in ALL_IMPORTS if not _exists(i.target) and i.target != PACKAGE]
    assert not missing, "imports of modules that do not exist:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("imp, expected", [
    (Import("vlengine.models.vlbert", "vlengine.data.text", 1, "x"), "side by side"),
    (Import("vlengine.data.masking.presets", "vlengine.ops", 1, "x"), None),
    (Import("vlengine.ops.mask_pixels", "vlengine.models", 1, "x"), "a layer above"),
    (Import("vlengine.kernels.mask_pixels", "vlengine.ops.reference.masked_cells", 1, "x"), "independent oracle"),
    (Import("vlengine.batch", "vlengine.data", 1, "x"), "ground floor"),
    (Import("vlengine.tasks.vlbert", "vlengine.batch", 1, "x"), None),
    (Import("vlengine.kernels.mask_pixels", "vlengine._toolkit", 1, "x"), None),
    (Import("vlengine.training.loop", "vlengine.tasks.output", 1, "x"), None),
    (Import("vlengine.tasks.terms", "vlengine.training.loop", 1, "x"), "a layer above"),
])
def test_rule_judges_known_cases(imp, expected):
    """The checker itself: it flags what the rule forbids and passes what it allows."""
    why = violation(imp)
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why
