"""Read the released ``flow.yaml`` as plain data (pure; no class it names is imported).

StepFun reads the file with HyperPyYAML, whose tags build objects: ``!new:pkg.Class`` (a mapping or list
of constructor arguments), ``!name:`` and ``!apply:`` (the same shapes), ``!ref <key>`` and ``!copy <key>``
(the value of another key, ``<a[b]>`` for a nested one; with arithmetic around numbers, its result; with
text around, the text with the values put in), ``!tuple``. Here a tagged node becomes its arguments and a
reference its value, so the sizes can be read without importing anything. Tags that need more
(``!include:``, ``!module:``) and references that lead nowhere are refused with :class:`FlowYamlError`.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

_REFERENCE = re.compile(r"<([A-Za-z_][\w.-]*)((?:\[[^\[\]]+\])*)>")
_ARGUMENT_TAGS = ("!new:", "!name:", "!apply:")


class FlowYamlError(ValueError):
    """The file is not YAML, or uses a HyperPyYAML feature this reader does not follow."""


@dataclass(frozen=True, slots=True)
class _Reference:
    text: str


class _Loader(yaml.SafeLoader):
    """SafeLoader plus HyperPyYAML's tags."""


def _arguments(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {} if value in ("", None) else value


def _reference(loader: yaml.SafeLoader, node: yaml.Node) -> _Reference:
    return _Reference(str(loader.construct_scalar(node)).strip())  # type: ignore[arg-type]


def _tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node, deep=True))  # type: ignore[arg-type]


def _unsupported(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    raise FlowYamlError(f"unsupported HyperPyYAML tag {node.tag} (line {node.start_mark.line + 1})")


for _tag in _ARGUMENT_TAGS:
    _Loader.add_multi_constructor(_tag, _arguments)
_Loader.add_constructor("!ref", _reference)
_Loader.add_constructor("!copy", _reference)
_Loader.add_constructor("!tuple", _tuple)
_Loader.add_multi_constructor("!", _unsupported)


def read_flow_yaml(text: str) -> dict[str, Any]:
    """The document as nested dicts and lists, references resolved; raises :class:`FlowYamlError`."""
    try:
        root = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise FlowYamlError(f"not valid YAML: {err}") from err
    if root is None:
        return {}
    if not isinstance(root, dict):
        raise FlowYamlError(f"the top level is a {type(root).__name__}, not a mapping")
    resolved = _resolve(root, root, ())
    assert isinstance(resolved, dict)
    return resolved


def _resolve(value: Any, root: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(value, _Reference):
        return _follow(value.text, root, seen)
    if isinstance(value, dict):
        return {key: _resolve(item, root, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, root, seen) for item in value]
    if isinstance(value, tuple):
        return tuple(_resolve(item, root, seen) for item in value)
    return value


def _follow(text: str, root: dict[str, Any], seen: tuple[str, ...]) -> Any:
    """HyperPyYAML's ``!ref``: one ``<key>`` is its value; with more around it, arithmetic or a string."""
    if text in seen:
        raise FlowYamlError(f"!ref {text} refers to itself")
    whole = _REFERENCE.fullmatch(text)
    if whole is not None:
        return _lookup(whole, root, (*seen, text))
    values = [_lookup(match, root, (*seen, text)) for match in _REFERENCE.finditer(text)]
    if not values:
        raise FlowYamlError(f"!ref {text!r} names no <key>")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        expression = _REFERENCE.sub(lambda m: f"({values.pop(0)!r})", text)
        try:
            return _arithmetic(ast.parse(expression, mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError):
            values = [_lookup(match, root, (*seen, text)) for match in _REFERENCE.finditer(text)]
    return _REFERENCE.sub(lambda m: str(values.pop(0)), text)


def _lookup(match: re.Match[str], root: dict[str, Any], seen: tuple[str, ...]) -> Any:
    keys = [match.group(1), *re.findall(r"\[([^\[\]]+)\]", match.group(2))]
    node: Any = root
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise FlowYamlError(f"!ref {match.group(0)}: there is no key {key!r}")
        node = node[key]
    return _resolve(node, root, seen)


_OPERATORS: dict[type[ast.AST], Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _arithmetic(node: ast.AST) -> int | float:
    """Evaluate numbers and + - * / // % ** only; anything else is a ValueError."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))  # type: ignore[no-any-return]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.operand))  # type: ignore[no-any-return]
    raise ValueError("not arithmetic")
