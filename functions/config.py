"""Load routes.yaml and build its pipelines: the one validator the function and the CLI share.

`kfp-trigger routes check` runs exactly this, so a file that passes the check is a file the
function accepts at cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events.errors import RoutesError
from events.routes import RoutesConfig, Rule, load_routes
from pipelines.backend import CompiledPipeline
from pipelines.catalog import build_catalog, resolve_variants, typed_rules


@dataclass(frozen=True, slots=True)
class LoadedRoutes:
    config: RoutesConfig
    rules: tuple[Rule, ...]  # with parameter types from the compiled pipelines
    catalog: dict[str, CompiledPipeline]


def load(path: Path, packages_dir: Path) -> LoadedRoutes:
    """Validate the routes file and compile every pipeline it names.

    Raises:
        RoutesError: every problem found, each with its place in the file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RoutesError([f"{path}: cannot read ({exc.strerror})"]) from exc
    config = load_routes(text)
    problems: list[str] = []
    catalog = build_catalog(config, path.parent, packages_dir, problems)
    # Pinned versions are looked up beside routes.yaml (packages/, committed) and in the state.
    variants = resolve_variants(config.rules, catalog, [path.parent / "packages", packages_dir], problems)
    rules = typed_rules(variants, catalog, problems)
    if problems:
        raise RoutesError(problems)
    return LoadedRoutes(config, rules, catalog)
