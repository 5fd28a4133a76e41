"""``--filter EXPR``: a small, safe expression language over a record's fields.

Examples: ``"params >= 1e6 and fid < 10"``, ``"model in ['wrn-16-2', 'wrn-28-4']"``,
``"not (loss == 'standard')"``, ``"log10(samples_seen) > 6"``.

Names are record fields (a field missing from a record is ``null`` there; a name no record
has is an error, :meth:`RecordFilter.check_fields`); ``true``, ``false`` and ``null`` are
constants. Allowed: comparisons (``< <= > >= == != in not in``), ``and``/``or``/``not``,
arithmetic (``+ - * / ** %``), lists, and the functions ``log``, ``log10``, ``abs``, ``min``,
``max``. A comparison involving ``null`` (other than ``==``/``!=``) is false. Nothing is
``eval``-ed: the expression is parsed with :mod:`ast` and walked.
"""

from __future__ import annotations

import ast
import difflib
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from advscale.errors import AdvscaleError

_CMP: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_BIN: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow, ast.Mod: operator.mod,
}
_FUNCS: dict[str, Callable[..., Any]] = {
    "log": math.log, "log10": math.log10, "abs": abs, "min": min, "max": max,
}
_CONST = {"true": True, "false": False, "null": None, "True": True, "False": False,
          "None": None}


class RecordFilter:
    """A compiled ``--filter`` expression; call it on a record to get True/False."""

    def __init__(self, expr: str) -> None:
        self.expr = expr
        try:
            self.tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as e:
            raise AdvscaleError(f"filters {expr!r}: not a valid expression ({e.msg})",
                                field="filters") from None
        for node in ast.walk(self.tree):
            if not isinstance(node, _ALLOWED):
                raise AdvscaleError(
                    f"filters {expr!r}: {type(node).__name__} is not allowed in a filter",
                    field="filters")
            if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in _FUNCS
            ):
                raise AdvscaleError(
                    f"filters {expr!r}: only the functions {', '.join(_FUNCS)} may be called",
                    field="filters")

    def names(self) -> set[str]:
        """The field names the expression reads (not constants, not the functions called)."""
        called = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        return {n.id for n in ast.walk(self.tree) if isinstance(n, ast.Name)
                and id(n) not in called and n.id not in _CONST}

    def check_fields(self, known: Iterable[str]) -> None:
        """A one-line error naming a field that no record has (e.g. a typo: ``parms``)."""
        known = set(known)
        if not known:
            return
        for name in sorted(self.names() - known):
            close = difflib.get_close_matches(name, sorted(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise AdvscaleError(f"filters {self.expr!r}: unknown field {name} (no record has "
                                f"it){hint}", field="filters")

    def __call__(self, record: Mapping[str, Any]) -> bool:
        try:
            return bool(self._eval(self.tree.body, record))
        except _Null:
            return False
        except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            raise AdvscaleError(f"filters {self.expr!r}: {e}", field="filters") from None

    def _eval(self, node: ast.AST, rec: Mapping[str, Any]) -> Any:
        for kind, method in _EVALUATORS:
            if isinstance(node, kind):
                return method(self, node, rec)
        raise AdvscaleError(f"filters {self.expr!r}: cannot evaluate {type(node).__name__}",
                            field="filters")

    def _name(self, node: ast.Name, rec: Mapping[str, Any]) -> Any:
        return rec[node.id] if node.id in rec else _CONST.get(node.id)

    def _sequence(self, node: ast.List | ast.Tuple, rec: Mapping[str, Any]) -> list[Any]:
        return [self._eval(e, rec) for e in node.elts]

    def _boolop(self, node: ast.BoolOp, rec: Mapping[str, Any]) -> bool:
        vals = (self._eval_bool(v, rec) for v in node.values)
        return all(vals) if isinstance(node.op, ast.And) else any(vals)

    def _unary(self, node: ast.UnaryOp, rec: Mapping[str, Any]) -> Any:
        if isinstance(node.op, ast.Not):
            return not self._eval_bool(node.operand, rec)
        v = self._eval(node.operand, rec)
        if v is None:
            raise _Null
        return -v if isinstance(node.op, ast.USub) else +v

    def _binop(self, node: ast.BinOp, rec: Mapping[str, Any]) -> Any:
        a, b = self._eval(node.left, rec), self._eval(node.right, rec)
        if a is None or b is None:
            raise _Null
        return _BIN[type(node.op)](a, b)

    def _compare(self, node: ast.Compare, rec: Mapping[str, Any]) -> bool:
        left = self._eval(node.left, rec)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self._eval(comp, rec)
            if (left is None or right is None) and not isinstance(op, ast.Eq | ast.NotEq):
                return False
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True

    def _call(self, node: ast.Call, rec: Mapping[str, Any]) -> Any:
        args = [self._eval(a, rec) for a in node.args]
        if any(a is None for a in args):
            raise _Null
        return _FUNCS[node.func.id](*args)  # type: ignore[union-attr]

    def _eval_bool(self, node: ast.AST, rec: Mapping[str, Any]) -> bool:
        try:
            return bool(self._eval(node, rec))
        except _Null:
            return False


class _Null(Exception):
    """Arithmetic on a missing field: the whole comparison is false."""


_EVALUATORS: tuple[tuple[type | tuple[type, ...], Callable[..., Any]], ...] = (
    (ast.Constant, lambda self, node, rec: node.value),
    (ast.Name, RecordFilter._name),
    ((ast.List, ast.Tuple), RecordFilter._sequence),
    (ast.BoolOp, RecordFilter._boolop),
    (ast.UnaryOp, RecordFilter._unary),
    (ast.BinOp, RecordFilter._binop),
    (ast.Compare, RecordFilter._compare),
    (ast.Call, RecordFilter._call),
)
"""Which method evaluates each allowed node type."""


_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Compare, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq, ast.In, ast.NotIn,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.Name, ast.Load,
    ast.Constant, ast.List, ast.Tuple, ast.Call,
)
