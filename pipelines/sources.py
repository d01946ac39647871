"""Pipeline sources: a `@dsl.pipeline` function named in routes.yaml, compiled into a package.

`source:` names the function as `path/to/file.py:function`, a file relative to the routes file's
folder, or as `package.module:function`: a module beside routes.yaml when its first part is
there (`pipelines/`, `training.py`), else an installed module (kfp-trigger's own examples, a
team's pip-installed library). No PYTHONPATH is needed.

A team's own Python compiles in a process of its own (`python -P` this file), with the routes
file's folder as the only home of the names it defines: teams' repositories often have packages
named like kfp-trigger's (`pipelines/`, `events/`, `functions/`), and in a process of its own
neither can shadow the other. An installed module compiles in this process. As a script this
file imports nothing of kfp-trigger: it is run by path, never as part of its package.

    python -P sources.py OUT ROUTES_DIR REFERENCE   (OUT gets {"package": text} or {"error": text})
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

COMPILE_TIMEOUT = 300.0  # seconds for one team source: importing kfp and the team's code, compiling


def compile_function(pipeline: Any) -> str:
    """The package text of a `@dsl.pipeline` function (the KFP compiler's YAML)."""
    from kfp import compiler

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return path.read_text()


def module_name(module: str) -> str:
    """`pipelines/train.py` → `pipelines.train`; a dotted name as it is."""
    return module.removesuffix(".py").replace("/", ".") if module.endswith(".py") else module


def beside(routes_dir: Path, module: str) -> bool:
    """Whether `module` (a reference's part before `:`) is the team's, beside routes.yaml."""
    if module.endswith(".py"):
        return True
    first = module.split(".", 1)[0]
    return (routes_dir / first).is_dir() or (routes_dir / f"{first}.py").is_file()


def compile_source(reference: str, routes_dir: Path) -> str:
    """Compile the pipeline `reference` names (see the module's docstring) and return its text.

    Raises:
        ImportError: the module or its function cannot be found.
        RuntimeError: the team's source failed in its own process; the message is its error.
    """
    module, _, function = reference.rpartition(":")
    if not beside(routes_dir, module):
        return compile_function(getattr(importlib.import_module(module), function))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "compiled.json"
        command = [sys.executable, "-P", __file__, str(out), str(routes_dir.resolve()), reference]
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        if not out.exists():
            raise RuntimeError(f"the compiler exited {done.returncode}: {done.stderr.strip()[-500:]}")
        answer = json.loads(out.read_text())
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return str(answer["package"])


def _import_beside(routes_dir: Path, module: str) -> Any:
    """Import `module` with the routes file's folder as the home of its first part: that part is
    loaded from there (a package, a folder without `__init__.py`, or a module), whatever else of
    the same name is installed, and the folder leads sys.path for everything else it imports."""
    sys.path.insert(0, str(routes_dir))
    first = module.split(".", 1)[0]
    spec = importlib.machinery.PathFinder.find_spec(first, [str(routes_dir)])
    if spec is None:
        raise ImportError(f"no module {first!r} in {routes_dir}")
    top = importlib.util.module_from_spec(spec)
    sys.modules[first] = top
    if spec.loader is not None:
        spec.loader.exec_module(top)
    return importlib.import_module(module)


def main(argv: list[str]) -> int:
    """The team's side: compile one reference, write the package (or the error) to OUT."""
    out, routes_dir, reference = Path(argv[1]), Path(argv[2]), argv[3]
    module, _, function = reference.rpartition(":")
    try:
        path = routes_dir / module
        if module.endswith(".py") and not path.is_file():
            raise FileNotFoundError(f"no file {module} beside the routes file")
        pipeline = getattr(_import_beside(routes_dir, module_name(module)), function)
        answer = {"package": compile_function(pipeline)}
    except Exception as exc:  # the team's code may raise anything: it is reported, not raised
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    out.write_text(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
