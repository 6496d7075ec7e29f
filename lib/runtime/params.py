"""Study parameters: the notebook's ``parameters`` cell is the schema, YAML files are the values.

A study notebook declares its parameters in its first code cell, tagged
``parameters``, as annotated literals::

    profile: str = "ci"
    seed: int = 0
    lr: float = 1e-3
    counts: list[int] = [100, 1000]
    checkpoint: str | None = None

The annotation (or, without one, the type of the literal) is the declared type. A
trailing comment that starts with ``check:`` declares value constraints, checked before
anything runs (the cell stays plain Python, so papermill and Jupyter are unaffected; other
comments are free text)::

    epochs: int = 5            # check: min 1; training epochs (seed: 10)
    lr: float = 1e-3           # check: > 0, finite
    dropout: float = 0.1       # check: in [0, 1)
    model: str = "unet"        # check: in {"unet", "fcn"}
    counts: list[int] = [100]  # check: each min 1, nonempty

Constraints are separated by commas and end at ``;`` (free text may follow): ``min x``
(at least x), ``max x`` (at most x), ``> x``, ``< x``, ``in [a, b]`` / ``in (a, b)`` /
``in [a, b)`` (intervals), ``in {"a", "b"}`` (choices), ``finite`` and ``nonempty``
(``>= x``, ``<= x`` and ``!= x`` work too, but an ``=`` in the comment makes papermill's
parameter inspection warn, so prefer ``min``/``max``). For a list, ``each``
applies the constraints to every element. ``None`` always passes (for ``X | None`` types).
A parameter file ``parameters/<study>/<profile>.yaml`` is a flat mapping of some of
those names to values, plus one reserved key, ``_profile``, that describes the
profile (``description``, ``expected_runtime``, ``device``) and is not passed to the
notebook. A second reserved key, ``_sweep``, declares a parameter sweep (see
:mod:`lib.runtime.sweep`); a single run ignores it. Everything is validated before anything
runs: an unknown key lists the valid keys, a wrong type names the key, the expected and the
given type.

A parameter file must mean the same to the runner and to plain papermill (``papermill -f``, which
reads YAML 1.1 with PyYAML's safe loader, dates left as text). The runner's loader reads ``1e-3``
and ``1.0e8`` as numbers where YAML 1.1 reads text, so a value that the two would read differently
is refused, with the spelling both read alike (``1.0e+8``). Also refused, in files and in ``--set``
overrides alike: YAML aliases (``*name``; a few hundred bytes of nested aliases expand to billions of
values), numbers with a leading zero (YAML 1.1 reads ``010`` as the octal 8) and base-60 numbers
(YAML 1.1 reads ``1:30`` as 90).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ParameterError",
    "ParamSpec",
    "ProfileInfo",
    "parameters_cell",
    "parse_parameters",
    "load_parameter_file",
    "parse_override",
    "validate",
    "PROFILE_KEY",
    "STRICT_PROFILES",
    "Constraint",
    "parse_constraints",
    "SWEEP_KEY",
    "MAX_SWEEP_POINTS",
    "load_sweep_block",
]

#: Reserved key of a parameter file holding the profile's description.
PROFILE_KEY = "_profile"
#: Reserved key of a parameter file declaring a sweep: ``{grid: {name: [values, ...]}, metrics: [names]}``.
SWEEP_KEY = "_sweep"
#: The most points a sweep's grid may have (the product of its lists' lengths, checked before expanding).
MAX_SWEEP_POINTS = 1000
_PROFILE_FIELDS = {"description": str, "expected_runtime": str, "device": str, "cell_timeout": int, "mem_mb": int,
                  "smoke": dict, "synthetic_fallback": bool}
#: Profiles whose runs may never fall back to synthetic data (``_profile.synthetic_fallback`` defaults to False).
STRICT_PROFILES = frozenset({"paper"})
_PROFILE_DEVICES = ("cpu", "gpu")


_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"


class _PapermillLoader(yaml.SafeLoader):
    """How papermill reads a parameter file (``papermill -f``): PyYAML's YAML 1.1 safe loader without dates."""

    yaml_implicit_resolvers = {
        k: [r for r in v if r[0] != _TIMESTAMP] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


class _Refused(yaml.YAMLError):
    """A YAML construct parameter values may not use; ``where`` is the key path (``""``: the whole value)."""

    def __init__(self, where: str, line: int, explanation: str) -> None:
        super().__init__(explanation)
        self.where, self.line, self.explanation = where, line, explanation


class _Loader(_PapermillLoader):
    """The runner's loader: papermill's, plus ``1e-3`` (no dot) read as a float, duplicate keys and aliases refused."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                "", event.start_mark.line + 1,
                f"the alias *{event.anchor} repeats a value anchored elsewhere; YAML anchors and aliases are not "
                "allowed in parameter values (a few hundred bytes of nested aliases expand to billions of values): "
                "write the values out",
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key {_short(key)} (line {seen[key] + 1} and line {key_node.start_mark.line + 1}); "
                    "keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")


def _ambiguous_number(text: str, tag: str) -> str | None:
    """Why a plain scalar read as ``tag`` is a YAML 1.1 surprise (``None``: it is not)."""
    if tag not in (_INT, _FLOAT):
        return None
    if ":" in text:
        value = yaml.load(text, Loader=_PapermillLoader)  # noqa: S506 - a SafeLoader subclass
        return (f"`{text}` is a YAML 1.1 base-60 (sexagesimal) number, read as {value!r}; write {value!r} for "
                f"the number, or quote it ('{text}') for text")
    if tag == _INT and _LEADING_ZERO.fullmatch(text):
        sign, digits = (text[0], text[1:]) if text[0] in "+-" else ("", text)
        decimal = sign.replace("+", "") + (digits.replace("_", "").lstrip("0") or "0")
        value = yaml.load(text, Loader=_PapermillLoader)  # noqa: S506 - a SafeLoader subclass
        return (f"`{text}` has a leading zero, which YAML 1.1 reads as the octal number {value!r}; write "
                f"{decimal} for the decimal number, or quote it ('{text}') for text")
    return None


def _check_numbers(node: Any) -> None:
    """Refuse octal-looking and base-60 plain scalars anywhere in a composed YAML document (each node once)."""
    stack: list[tuple[Any, str]] = [(node, "")]
    seen: set[int] = set()
    while stack:
        item, where = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, yaml.ScalarNode):
            why = _ambiguous_number(item.value, item.tag) if item.style is None else None
            if why:
                raise _Refused(where, item.start_mark.line + 1, why)
        elif isinstance(item, yaml.SequenceNode):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item.value))))
        elif isinstance(item, yaml.MappingNode):
            for key_node, value_node in reversed(item.value):
                name = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.append((value_node, f"{where}.{name}" if where else str(name)))
                stack.append((key_node, where))


def _yaml_load(text: str) -> Any:
    """``text`` read by the runner's loader (see the module docstring); :class:`_Refused` for what it refuses."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_numbers(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _papermill_difference(ours: Any, theirs: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first key path at which two loads of one document differ (type-strict), with both values; or None.

    Each pair of containers is compared once, so values shared within a document cost nothing more.
    """
    stack, seen = [(ours, theirs, where)], set()
    while stack:
        a, b, path = stack.pop()
        if isinstance(a, (dict, list)):
            if (id(a), id(b)) in seen:
                continue
            seen.add((id(a), id(b)))
        if type(a) is not type(b):
            return path, a, b
        if isinstance(a, dict):
            if list(a) != list(b):
                return path, a, b
            stack.extend((a[k], b[k], f"{path}.{k}" if path else str(k)) for k in reversed(list(a)))
        elif isinstance(a, list):
            if len(a) != len(b):
                return path, a, b
            stack.extend((x, y, f"{path}[{i}]") for i, (x, y) in reversed(list(enumerate(zip(a, b)))))
        elif a != b and not (isinstance(a, float) and math.isnan(a) and math.isnan(b)):
            return path, a, b
    return None


def _yaml11_float(text: str) -> str:
    """A spelling of the float ``text`` that YAML 1.1 reads as a float too (``1.0e8`` -> ``1.0e+8``)."""
    m = re.fullmatch(r"([-+]?)([0-9_]*)(?:\.([0-9_]*))?(?:[eE]([-+]?)([0-9]+))?", text.strip())
    if m is None:
        return repr(float(text))
    sign, whole, frac, esign, exp = m.groups()
    out = f"{sign}{whole or '0'}.{frac or '0'}"
    return out + (f"e{esign or '+'}{exp}" if exp is not None else "")


class ParameterError(ValueError):
    """A parameter file, override or parameters cell is invalid (the message says how to fix it)."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: its name, default value and declared type."""

    name: str
    default: Any
    type_text: str
    check: Callable[[Any], Any] = field(repr=False, compare=False)
    #: the constraint text of the trailing comment (``""``: none) and its checks
    constraint_text: str = ""
    constraints: tuple[Constraint, ...] = field(default=(), repr=False, compare=False)

    def coerce(self, value: Any, *, source: str) -> Any:
        """Validate ``value`` against the declared type and constraints; ints are widened to float for a float."""
        try:
            out = self.check(value)
        except _TypeMismatch as err:
            raise ParameterError(
                f"{source}: parameter {self.name!r} expects {self.type_text}, got {_describe(value)}"
                + (f" ({err})" if str(err) else "")
            ) from None
        for c in self.constraints:
            c.check(self.name, out, source=source)
        return out


@dataclass(frozen=True)
class Constraint:
    """One value constraint of a parameter (from the trailing comment of its line in the parameters cell)."""

    text: str
    test: Callable[[Any], bool] = field(repr=False, compare=False)
    each: bool = False

    def check(self, name: str, value: Any, *, source: str) -> None:
        """Raise :class:`ParameterError` naming key, constraint and value when ``value`` violates it."""
        if value is None:
            return
        items = list(enumerate(value)) if self.each and isinstance(value, list) else [(None, value)]
        for i, item in items:
            try:
                ok = bool(self.test(item))
            except TypeError:
                ok = False
            if not ok:
                which = f" element {i}" if i is not None else ""
                raise ParameterError(
                    f"{source}: parameter {name!r}{which} must satisfy `{self.text}`, got {_short(item)}; "
                    "give a value that does (the constraint is declared in the chapter's parameters cell)"
                )


_COMPARE = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
            "<": lambda a, b: a < b, "!=": lambda a, b: a != b, "==": lambda a, b: a == b}


def _finite(v: Any) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at ``sep`` where it is not inside brackets or quotes."""
    parts, depth, quote, cur = [], 0, None, ""
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def parse_constraints(text: str, *, name: str = "?") -> tuple[Constraint, ...]:
    """Parse the constraint comment of one parameter (see the module docstring for the syntax)."""
    text = text.strip()
    if not text.startswith("check:"):
        return ()
    text = _split_top(text[len("check:"):], sep=";")[0] if text[len("check:"):].strip() else ""
    out: list[Constraint] = []
    for part in _split_top(text):
        each = part.startswith("each ")
        body = part[5:].strip() if each else part
        if body == "finite":
            out.append(Constraint(part, _finite, each))
            continue
        if body == "nonempty":
            out.append(Constraint(part, lambda v: len(v) > 0, each))
            continue
        m = re.fullmatch(r"(>=|<=|!=|==|>|<|min\b|max\b)\s*(.+)", body)
        if m:
            op = {"min": ">=", "max": "<="}.get(m.group(1), m.group(1))
            bound = _literal(m.group(2), part, name)
            out.append(Constraint(part, lambda v, op=op, b=bound: _number(v) and _COMPARE[op](v, b), each))
            continue
        m = re.fullmatch(r"in\s*([\[(])\s*(.+?)\s*,\s*(.+?)\s*([\])])", body)
        if m:
            lo, hi = _literal(m.group(2), part, name), _literal(m.group(3), part, name)
            lo_ok = (lambda v, lo=lo: v >= lo) if m.group(1) == "[" else (lambda v, lo=lo: v > lo)
            hi_ok = (lambda v, hi=hi: v <= hi) if m.group(4) == "]" else (lambda v, hi=hi: v < hi)
            out.append(Constraint(part, lambda v, a=lo_ok, b=hi_ok: _number(v) and a(v) and b(v), each))
            continue
        m = re.fullmatch(r"in\s*(\{.*\})", body)
        if m:
            choices = _literal(m.group(1), part, name)
            if not isinstance(choices, (set, frozenset)):
                raise ParameterError(f"parameter {name!r}: constraint `{part}` must list choices as {{a, b}}")
            out.append(Constraint(part, lambda v, c=frozenset(choices): v in c, each))
            continue
        raise ParameterError(
            f"parameter {name!r}: cannot read the constraint `{part}` in the parameters cell; use min x, max x, "
            "> x, < x, in [a, b], in {\"a\", \"b\"}, finite or nonempty (comma-separated after `check:`, "
            "free text after `;`)"
        )
    return tuple(out)


def _literal(text: str, part: str, name: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        raise ParameterError(f"parameter {name!r}: constraint `{part}`: {text.strip()!r} is not a literal") from None


def _trailing_comment(source: str, lineno: int, end_lineno: int) -> str:
    """The comment at the end of the last line of a statement (``""`` when none)."""
    import io
    import tokenize

    lines = source.splitlines()
    snippet = "\n".join(lines[lineno - 1 : end_lineno]) + "\n"
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(snippet).readline) if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError):
        return ""
    last = end_lineno - lineno + 1
    comments = [t.string for t in toks if t.start[0] == last]
    return comments[-1][1:].strip() if comments else ""


@dataclass(frozen=True)
class ProfileInfo:
    """The ``_profile`` block of a parameter file."""

    description: str = ""
    expected_runtime: str = "unknown"
    device: str = "cpu"
    cell_timeout: int | None = None  #: per-cell execution limit in seconds (None: the runner's default)
    mem_mb: int | None = None  #: memory a run needs, MB (for workflow schedulers; None: their default)
    #: loop-length overrides (epochs, steps, subjects) that make a full-size run short: ``--smoke``
    smoke: dict[str, Any] = field(default_factory=dict)
    #: may a chapter fall back to synthetic data when a dataset is absent? (None: no for ``paper``, else yes)
    synthetic_fallback: bool | None = None

    def allows_synthetic_fallback(self, profile: str) -> bool:
        """``synthetic_fallback`` when set, else False for the strict profiles (:data:`STRICT_PROFILES`)."""
        if self.synthetic_fallback is not None:
            return self.synthetic_fallback
        return profile not in STRICT_PROFILES


class _TypeMismatch(Exception):
    pass


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 3, 50, 50, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdeque = 6


def _short(value: Any, limit: int = 60) -> str:
    """A bounded ``repr`` of any value (nested and long values are cut), for error messages."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {_short(value)}"


def _checker_from_annotation(node: ast.expr | None, default: Any) -> tuple[Callable[[Any], Any], str]:
    """Build a checker and a human-readable type name from an annotation AST."""
    if node is None:
        if default is None:
            return (lambda v: v), "any value"
        return _checker_for_type(type(default), None)
    if isinstance(node, ast.Constant) and node.value is None:
        return _checker_none, "None"
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _checker_from_annotation(ast.parse(node.value, mode="eval").body, default)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, ltxt = _checker_from_annotation(node.left, default)
        right, rtxt = _checker_from_annotation(node.right, default)
        return _union(left, right), f"{ltxt} | {rtxt}"
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        outer = node.value.id
        inner = node.slice
        if outer == "Optional":
            check, txt = _checker_from_annotation(inner, default)
            return _union(check, _checker_none), f"{txt} | None"
        if outer in ("list", "List", "tuple", "Tuple"):
            elem = inner.elts[0] if isinstance(inner, ast.Tuple) else inner
            check, txt = _checker_from_annotation(elem, None)
            return _checker_for_type(list, check)[0], f"list[{txt}]"
        if outer in ("dict", "Dict"):
            return _checker_for_type(dict, None)[0], "dict"
    if isinstance(node, ast.Name):
        mapping = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "tuple": list}
        if node.id in mapping:
            return _checker_for_type(mapping[node.id], None)
        if node.id == "Any":
            return (lambda v: v), "any value"
    raise ParameterError(
        f"unsupported parameter annotation {ast.unparse(node)!r}; use int, float, str, bool, "
        "list[...], dict, or a union with None"
    )


def _checker_none(v: Any) -> Any:
    if v is not None:
        raise _TypeMismatch("")
    return v


def _union(a: Callable[[Any], Any], b: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        try:
            return a(v)
        except _TypeMismatch:
            return b(v)

    return check


def _checker_for_type(tp: type, elem: Callable[[Any], Any] | None) -> tuple[Callable[[Any], Any], str]:
    def check(v: Any) -> Any:
        if tp is float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise _TypeMismatch("")
            if v != v:  # NaN is never a meaningful setting; it would only fail later inside a cell
                raise _TypeMismatch("NaN is not a number a run can use")
            return float(v)
        if tp is int:
            if isinstance(v, bool) or not isinstance(v, int):
                raise _TypeMismatch("")
            return v
        if tp is list:
            if not isinstance(v, (list, tuple)):
                raise _TypeMismatch("")
            if elem is None:
                return list(v)
            out = []
            for i, item in enumerate(v):
                try:
                    out.append(elem(item))
                except _TypeMismatch:
                    raise _TypeMismatch(f"element {i} is {_describe(item)}") from None
            return out
        if not isinstance(v, tp):
            raise _TypeMismatch("")
        return v

    return check, tp.__name__


def parameters_cell(notebook: Any) -> str:
    """Source of the code cell tagged ``parameters`` in a notebook (nbformat node)."""
    cells = [
        c for c in notebook.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not cells:
        raise ParameterError("the notebook has no code cell tagged 'parameters'; add `:tags: [parameters]` to one")
    if len(cells) > 1:
        raise ParameterError("the notebook has more than one cell tagged 'parameters'; keep exactly one")
    return cells[0].source


def parse_parameters(source: str) -> dict[str, ParamSpec]:
    """Parse a parameters cell into ``{name: ParamSpec}``.

    Only assignments of literals (optionally annotated) and comments are allowed,
    so that the schema can be read without executing code.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise ParameterError(f"the parameters cell is not valid Python: {err}") from None
    specs: dict[str, ParamSpec] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name, annotation, value_node = stmt.target.id, stmt.annotation, stmt.value
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, annotation, value_node = stmt.targets[0].id, None, stmt.value
        else:
            raise ParameterError(
                f"line {stmt.lineno} of the parameters cell is not a simple `name: type = literal` assignment"
            )
        if value_node is None:
            raise ParameterError(f"parameter {name!r} has no default value")
        try:
            default = ast.literal_eval(value_node)
        except ValueError:
            raise ParameterError(
                f"the default of parameter {name!r} must be a literal, got {ast.unparse(value_node)!r}"
            ) from None
        check, text = _checker_from_annotation(annotation, default)
        ctext = _trailing_comment(source, stmt.lineno, stmt.end_lineno or stmt.lineno)
        constraints = parse_constraints(ctext, name=name)
        ctext = ", ".join(c.text for c in constraints)
        spec = ParamSpec(name, default, text, check, ctext, constraints)
        spec.coerce(default, source="parameters cell default")
        specs[name] = spec
    return specs


def _read_text(path: Path) -> Any:
    """A parameter file's YAML content (errors name the file and the fix)."""
    if not path.is_file():
        raise ParameterError(f"parameter file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParameterError(
            f"parameter file {path} is not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r}); "
            "save it as UTF-8"
        ) from None
    except OSError as err:
        raise ParameterError(f"cannot read parameter file {path}: {err.strerror or err}") from None
    return text


def _yaml_text(path: Path) -> Any:
    """A parameter file read by the runner's loader, refused where papermill would read it otherwise."""
    text = _read_text(path)
    try:
        data = _yaml_load(text)
    except _Refused as err:
        key = f"{err.where} (line {err.line})" if err.where else f"line {err.line}"
        raise ParameterError(f"parameter file {path}: {key}: {err.explanation}") from None
    except yaml.YAMLError as err:
        raise ParameterError(f"parameter file {path} is not valid YAML: {err}") from None
    theirs = yaml.load(text, Loader=_PapermillLoader)  # noqa: S506 - a SafeLoader subclass
    diff = _papermill_difference(data, theirs)
    if diff is not None:
        where, ours, plain = diff
        key = where or "the document"
        if isinstance(ours, float) and isinstance(plain, str):
            fix = (f"write {_yaml11_float(plain)} (YAML 1.1 reads a number with an exponent only when it has a dot "
                   "and a signed exponent) so both read the number")
        else:
            fix = "write it so both read the same (quote it if it is text)"
        raise ParameterError(
            f"parameter file {path}: {key} reads as {_describe(ours)} in the runner but as {_describe(plain)} in "
            f"plain papermill (`papermill -f`, YAML 1.1); {fix}"
        )
    return data


def load_parameter_file(path: str | Path) -> tuple[dict[str, Any], ProfileInfo]:
    """Read a flat YAML parameter file; return its values and its ``_profile`` block."""
    path = Path(path)
    data = _yaml_text(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {path} must be a mapping of name: value, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ParameterError(f"parameter file {path}: keys must be strings, got {_short(bad)}")
    _check_sweep(data.pop(SWEEP_KEY, None), path)  # a sweep's grid is for lib.runtime.sweep; a single run ignores it
    info_raw = data.pop(PROFILE_KEY, None) or {}
    if not isinstance(info_raw, dict):
        raise ParameterError(f"parameter file {path}: {PROFILE_KEY} must be a mapping")
    unknown = sorted(set(info_raw) - set(_PROFILE_FIELDS))
    if unknown:
        raise ParameterError(
            f"parameter file {path}: unknown {PROFILE_KEY} field(s) {unknown}; valid: {sorted(_PROFILE_FIELDS)}"
        )
    for key, tp in _PROFILE_FIELDS.items():
        value = info_raw.get(key)
        if key in info_raw and (not isinstance(value, tp) or (isinstance(value, bool) and tp is not bool)):
            raise ParameterError(
                f"parameter file {path}: {PROFILE_KEY}.{key} must be a {tp.__name__}, got {_describe(info_raw[key])}"
            )
    if info_raw.get("cell_timeout") is not None and info_raw["cell_timeout"] <= 0:
        raise ParameterError(
            f"parameter file {path}: {PROFILE_KEY}.cell_timeout must be a positive number of seconds, "
            f"got {info_raw['cell_timeout']}"
        )
    info = ProfileInfo(**info_raw)
    if info.device not in _PROFILE_DEVICES:
        raise ParameterError(
            f"parameter file {path}: {PROFILE_KEY}.device must be one of {_PROFILE_DEVICES}, got {info.device!r}"
        )
    return data, info


def _check_sweep(raw: Any, path: Path) -> dict[str, Any] | None:
    """Check the structure of a ``_sweep`` block; return ``{"grid": {...}, "metrics": [...]}`` or None."""
    if raw is None:
        return None
    where = f"parameter file {path}: {SWEEP_KEY}"
    example = f"{SWEEP_KEY}: {{grid: {{seed: [0, 1], epochs: [2, 4]}}, metrics: [accuracy]}}"
    if not isinstance(raw, dict) or "grid" not in raw:
        raise ParameterError(f"{where} must be a mapping with a 'grid' of parameter: [values], e.g. {example}")
    unknown = sorted(set(raw) - {"grid", "metrics"})
    if unknown:
        raise ParameterError(f"{where}: unknown field(s) {unknown}; valid: ['grid', 'metrics']")
    grid = raw["grid"]
    if not isinstance(grid, dict) or not grid:
        raise ParameterError(f"{where}.grid must be a non-empty mapping of parameter: [values], e.g. {example}")
    for key, values in grid.items():
        if not isinstance(key, str) or key.startswith("_"):
            raise ParameterError(f"{where}.grid: {_short(key)} is not a parameter name")
        if not isinstance(values, list) or not values:
            raise ParameterError(
                f"{where}.grid.{key} must be a non-empty list of values, got {_describe(values)}; "
                f"write {key}: [{_short(values)}] for a single value"
            )
    size = math.prod(len(values) for values in grid.values())
    if size > MAX_SWEEP_POINTS:
        shape = " x ".join(f"{len(values)} {key}" for key, values in grid.items())
        raise ParameterError(
            f"{where}.grid has {size} points ({shape}), more than the {MAX_SWEEP_POINTS} a sweep may have (each "
            "point is one run); thin the lists or split the sweep into several sweep files"
        )
    metrics = raw.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ParameterError(f"{where}.metrics must be a list of metric names, got {_describe(metrics)}")
    return {"grid": dict(grid), "metrics": list(metrics)}


def load_sweep_block(path: str | Path) -> dict[str, Any] | None:
    """The ``_sweep`` block of a parameter file, structure-checked (None when the file has none).

    Returns ``{"grid": {name: [values, ...]}, "metrics": [names]}``; the values are validated
    against a study's parameters cell by :func:`lib.runtime.sweep.expand_sweep`.
    """
    path = Path(path)
    load_parameter_file(path)  # the rest of the file must be valid too
    data = _yaml_text(path) or {}
    return _check_sweep(data.get(SWEEP_KEY), path)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a ``key=value`` command-line override; the value is read as YAML (``3`` → int, ``[1, 2]`` → list).

    Text that is not YAML is taken as a string. Refused (:class:`ParameterError`): aliases, and numbers
    YAML 1.1 reads unlike a person (``010``: octal 8; ``1:30``: base 60, 90).
    """
    if "=" not in text:
        raise ParameterError(f"override {text!r} must look like key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise ParameterError(f"override {text!r}: {key!r} is not a valid parameter name")
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except _Refused as err:
        path = err.where if err.where.startswith("[") else f".{err.where}"
        where = f" (at {key}{path})" if err.where else ""
        raise ParameterError(f"override {_short(text)}{where}: {err.explanation}") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def validate(
    specs: Mapping[str, ParamSpec], values: Mapping[str, Any], *, source: str = "parameters"
) -> dict[str, Any]:
    """Check ``values`` against ``specs``; return the coerced values (only those given).

    Raises
    ------
    ParameterError
        For an unknown key (with the closest valid names and the full list), a value of
        the wrong type (naming key, expected and given type) or a value outside the key's
        ``check:`` constraints (naming key, constraint and value).
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in specs:
            close = difflib.get_close_matches(key, list(specs), n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ParameterError(
                f"{source}: unknown parameter {key!r}.{hint} Valid parameters: {', '.join(sorted(specs))}"
            )
        out[key] = specs[key].coerce(value, source=source)
    return out
