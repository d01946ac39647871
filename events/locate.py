"""Where in routes.yaml a problem is: its line and column, from the YAML node marks.

`RoutesError` problems read `path: message`, the path as the loader names places —
`routes[survey-landed].when.storage.bucket`, `pipelines[train].source`, `routes[3].run` (a route
without a usable name by its position). `locate` walks that path through the file's node tree
(`yaml.compose`: the document before any value is converted) to the deepest node it names, so a
problem under a key that is absent points at its parent. `Located` is what `kfp-trigger routes
check` prints (`file:line:column: path: message`) and emits with `--json`.

The node tree also explains a YAML 1.1 surprise: an unquoted `off`, `no`, `yes`, `on`, `1e3` or
`0777` is a boolean or a number, never the name it looks like. A problem that text was expected
where such a plain scalar stands gets the quoted fix (`yaml_hint`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

FILE = "(file)"  # the path of a problem with the whole file (not YAML, cannot be read)
TEXT_EXPECTED = "valid string"  # pydantic's "Input should be a valid string": where a hint helps
_AT = re.compile(r"at line (\d+), column (\d+)")
_TOKEN = re.compile(r"\[([^\]]*)\]|\.?([^.\[\]]+)")
_SCALARS = {  # tags a plain scalar resolves to that a name never has
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "a number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null",
}


@dataclass(frozen=True, slots=True)
class Located:
    """One problem, with where it is (1-based; 0 when the file has no such place)."""

    path: str
    message: str
    line: int
    column: int

    def text(self, file: str) -> str:
        place = f"{file}:{self.line}:{self.column}" if self.line else file
        return f"{place}: {self.path}: {self.message}" if self.path else f"{place}: {self.message}"

    def as_json(self, file: str) -> dict[str, object]:
        return {
            "file": file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


def tree(text: str) -> yaml.Node | None:
    """The file's node tree, or None if it is not YAML (or empty)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def locate(root: yaml.Node | None, problem: str) -> Located:
    """Split a problem into path and message and find the path's node in `root`."""
    path, _, message = problem.partition(": ")
    if not message:
        path, message = "", problem
    if path == FILE:  # the whole file: no path to show; load_routes names where YAML failed
        at = _AT.search(message)
        return Located("", message, int(at[1]) if at else 0, int(at[2]) if at else 0)
    node = root if path else None
    marked: yaml.Node | None = None
    for token in _tokens(path):
        child = _child(node, token) if node is not None else None
        if child is None:
            break
        marked, node = child
    if marked is None or node is None:
        return Located(path, message, 0, 0)
    mark = marked.start_mark
    hint = yaml_hint(node) if TEXT_EXPECTED in message else ""
    return Located(path, message + hint, mark.line + 1, mark.column + 1)


def yaml_hint(node: yaml.Node) -> str:
    """Why a plain scalar is not the text it looks like, with the quoted fix; "" otherwise."""
    if not isinstance(node, yaml.ScalarNode) or node.style is not None or node.tag not in _SCALARS:
        return ""
    return f' (YAML reads {node.value!r} as {_SCALARS[node.tag]}: quote it, "{node.value}", to mean the text)'


def _tokens(path: str) -> list[str]:
    return [match[1] if match[1] is not None else match[2] for match in _TOKEN.finditer(path)]


def _child(node: yaml.Node, token: str) -> tuple[yaml.Node, yaml.Node] | None:
    """The node `token` names under `node`, and the node to point at for it (a mapping's value
    by its key — the value itself when it is a scalar —, a sequence's item by position or by
    its `name`)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == token:
                return (value if isinstance(value, yaml.ScalarNode) else key), value
        return None
    if isinstance(node, yaml.SequenceNode):
        if token.isdigit():
            position = int(token)
            return (node.value[position],) * 2 if position < len(node.value) else None
        for item in node.value:
            if isinstance(item, yaml.MappingNode) and _named(item) == token:
                return item, item
    return None


def _named(item: yaml.MappingNode) -> str | None:
    """The `name` an item of a sequence gives itself, if a plain one."""
    for key, value in item.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "name" and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    return None
