"""docs/architecture.md stays true: its table of rows is the registry's, and imports follow its layers."""

import ast
from pathlib import Path

from goldmine.estimators import registry

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "goldmine"

#: the layers of docs/architecture.md: a module's layer is that of its longest listed prefix
LAYERS = {
    "goldmine.checks": 0, "goldmine.executor": 0, "goldmine.folders": 0, "goldmine.locking": 0,
    "goldmine.losses": 0,
    "goldmine.estimators.registry": 0,
    "goldmine.simulators": 1,
    "goldmine.physics.morphing": 1, "goldmine.physics.kinematics": 1, "goldmine.physics.events": 1,
    "goldmine.physics.process": 1, "goldmine.physics.lhe": 1, "goldmine.physics.root": 1, "goldmine.physics.nuisance": 1,
    "goldmine.physics.limits": 4, "goldmine.physics.pooled_toys": 4, "goldmine.physics.histfactory": 4, "goldmine.physics.fisher": 4, "goldmine.physics": 4,
    "goldmine.mining": 2, "goldmine.data": 2, "goldmine.memory": 2, "goldmine.training": 2, "goldmine.nn": 2,
    "goldmine.embeddings": 2,
    "goldmine.estimators": 3, "goldmine.evaluate": 3, "goldmine.gold_check": 3,
    "goldmine.inference": 4,
    "goldmine.workflow": 5, "goldmine.plots": 5, "goldmine.sequential": 5,
    "goldmine.study": 6, "goldmine.physics.study": 6, "goldmine.pipeline": 6, "goldmine.cli": 6, "goldmine.__main__": 6, "goldmine.demo": 6, "goldmine": 6,
}
#: below a layer, yet never imported: estimators and inference meet only in the surrogate protocol
FORBIDDEN = {"goldmine.inference": "goldmine.estimators", "goldmine.evaluate": "goldmine.estimators",
             "goldmine.gold_check": "goldmine.estimators"}


def layer(module: str) -> int:
    prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[prefix]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def goldmine_imports(path: Path) -> set[str]:
    """The goldmine modules that `path` imports, at the top or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import data` imports the module goldmine.data
                sub = f"{target}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                found.add(sub if is_module else target)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m == "goldmine" or m.startswith("goldmine.")}


def test_the_rows_table_is_the_registry():
    table = registry.rows_table()
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert table in text, f"paste this table into docs/architecture.md:\n{table}"


def test_imports_follow_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        for target in goldmine_imports(path):
            if layer(target) > layer(here) or layer(here) == 0:  # the foundations import nothing of goldmine
                wrong.append(f"{here} (layer {layer(here)}) imports {target} (layer {layer(target)})")
            for low, never in FORBIDDEN.items():
                if (here == low or here.startswith(low + ".")) and (target == never or target.startswith(never + ".")) \
                        and target != "goldmine.estimators.registry":
                    wrong.append(f"{here} imports {target}")
    assert not wrong, "imports against docs/architecture.md's layers:\n" + "\n".join(wrong)


def test_every_module_has_a_layer():
    """A new module gets its layer here and in docs/architecture.md's table, not the front ends' by default."""
    unplaced = [module_name(p) for p in PACKAGE.rglob("*.py")
                if module_name(p) != "goldmine" and not any(module_name(p) == q or module_name(p).startswith(q + ".")
                                                            for q in LAYERS if q != "goldmine")]
    assert not unplaced, f"give these modules a layer in docs/architecture.md and LAYERS: {unplaced}"
