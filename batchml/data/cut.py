"""Cut expressions such as ``"njet >= 2 and ht > 300"``, evaluated on whole columns.

Users write cuts as they read: Python comparisons with ``and``, ``or``, ``not``
and chained comparisons (``20 < pt < 100``), plus ``abs``, ``sqrt``, ``log``,
``exp``. Those operators do not work element-wise on arrays, so the expression
is rewritten to ``&``, ``|``, ``~`` once, and only that small language is
accepted (a cut is configuration, never arbitrary code). The branch names it
uses are known before reading, so they are read and checked like features.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import numpy as np

from batchml.errors import InvalidValue

FUNCTIONS = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp}
_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Call,
    ast.boolop,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
)


class _ElementWise(ast.NodeTransformer):
    """and/or/not and chained comparisons rewritten into their element-wise forms."""

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        op: ast.operator = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        result = node.values[0]
        for value in node.values[1:]:
            result = ast.BinOp(left=result, op=op, right=value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return (
            ast.UnaryOp(op=ast.Invert(), operand=node.operand)
            if isinstance(node.op, ast.Not)
            else node
        )

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        lefts = [node.left, *node.comparators[:-1]]
        pairs = [
            ast.Compare(left=left, ops=[op], comparators=[right])
            for left, op, right in zip(lefts, node.ops, node.comparators, strict=True)
        ]
        result: ast.expr = pairs[0]
        for pair in pairs[1:]:
            result = ast.BinOp(left=result, op=ast.BitAnd(), right=pair)
        return result


class Cut:
    """A parsed cut: the branches it needs, and a boolean mask per entry."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            tree = ast.parse(expression, mode="eval")
        except SyntaxError as exc:
            raise InvalidValue(
                f"cut {expression!r} is not an expression: {exc.msg}",
                hint="write a comparison such as 'njet >= 2 and ht > 300'",
            ) from None
        for node in ast.walk(tree):
            bad_call = isinstance(node, ast.Call) and (
                not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
            )
            if not isinstance(node, _ALLOWED) or bad_call:
                raise InvalidValue(
                    f"cut {expression!r} uses {ast.unparse(node)!r}, which a cut may not",
                    hint=f"use branches, numbers, comparisons, and/or/not, {', '.join(FUNCTIONS)}",
                )
        called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)}  # type: ignore[attr-defined]
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        self.branches = tuple(sorted(names - called))
        rewritten = ast.fix_missing_locations(_ElementWise().visit(tree))
        self._code = compile(rewritten, f"<cut {expression}>", "eval")

    def mask(self, columns: Mapping[str, Any]) -> np.ndarray:
        """True for the entries that pass, as a numpy bool array."""
        scope = {**FUNCTIONS, **{name: columns[name] for name in self.branches}}
        result = eval(self._code, {"__builtins__": {}}, scope)
        return np.asarray(result, dtype=bool)
