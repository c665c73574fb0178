"""The package's modules form layers: no import circle, at module level or inside functions, and
the torch-free modules the Snakefile uses stay torch-free."""

from __future__ import annotations

import ast
import subprocess
import sys

from milr.io import PACKAGE_DIR, _milr_imports

MODULES = sorted(p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__main__")


def imports_of(name: str) -> set[str]:
    tree = ast.parse((PACKAGE_DIR / f"{name}.py").read_text())
    return _milr_imports(ast.walk(tree)) - {name, "__init__"}


def test_no_import_circle():
    graph = {name: imports_of(name) for name in MODULES}
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in graph[name]:
            assert state.get(dep) != "open", "import circle: " + " -> ".join([*path, dep])
            if dep not in state:
                visit(dep, [*path, dep])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])


def test_the_workflow_side_never_imports_torch(root):
    """config, plan, names, settings, io, gpu: what the Snakefile imports, from any env."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import milr.config, milr.plan, milr.names, milr.settings, milr.io, milr.gpu;"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code, str(root / "workflow")], capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
