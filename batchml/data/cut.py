"""Cut expressions such as ``"nJet >= 2 and HT > 300"``, evaluated on whole columns.

A cut is configuration, never code: it is parsed once into Python's syntax
tree, only the small language below is accepted, and the tree is evaluated here
node by node on numpy and awkward arrays (nothing is compiled or ``eval``-ed).
uproot's own ``cut=`` evaluates Python text with numpy's operators, whose
``and``/``or``/``not`` either fail on arrays or (rewritten as ``&``, ``|``, ``~``)
act bitwise on integers: ``not nMuon`` would keep every event. Here every
operator has Python's meaning, entry by entry, on every branch type.

The language:

- branch names, numbers, ``True`` and ``False``;
- arithmetic ``+ - * / // % **`` and unary ``-``, computed as Python would
  (``**`` always gives a float; ``x / 0`` gives inf or NaN, as numpy does):
  integers and booleans as 64-bit integers (uint64 values from 2**63 on as
  floats), floats as 64-bit floats (so
  ``nJet - 5`` of an unsigned branch is negative, and ``pt > 30.1`` compares
  the stored float32 value with 30.1 exactly as Python does);
- comparisons ``== != < <= > >=``, chained as in Python (``20 < pt < 100``);
- ``and``, ``or``, ``not`` with Python's truth: a value is true when it is
  non-zero (NaN is true, as in Python); ``a and b`` is ``b`` where ``a`` is
  true and ``a`` elsewhere, ``a or b`` the reverse, ``not a`` is True where
  ``a`` is zero;
- element-wise functions ``abs``, ``sqrt``, ``log``, ``exp``;
- reductions of a list per entry (a jagged branch such as ``Jet_pt``, or a
  fixed-size array) to one value per entry: ``any``, ``all`` (of the list's
  truth), ``sum``, ``len``, ``min`` and ``max`` (NaN for an empty list, so any
  comparison with it is False). Inside a reduction, operators act on each
  element and a one-value branch is repeated along the list:
  ``any(Jet_pt > 30 and abs(Jet_eta) < 2.4)``, ``sum(Jet_pt > 0.1 * HT) >= 2``.

A cut gives one truth value per entry, so a list-valued branch must be reduced;
``Cut.check`` says so when the branches' kinds are known, before any reading.
Bitwise operators (``& | ~ ^ << >>``) are refused: on integers they are not
logic, and ``and``/``or``/``not`` say what is meant.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import awkward as ak
import numpy as np

from batchml.errors import InvalidValue

_ELEMENTWISE: dict[str, Callable[[Any], Any]] = {
    "abs": np.abs,
    "sqrt": np.sqrt,
    "log": np.log,
    "exp": np.exp,
}
_REDUCTIONS: dict[str, Callable[[Any], Any]] = {
    "any": lambda lists: ak.any(_truth(lists), axis=1),
    "all": lambda lists: ak.all(_truth(lists), axis=1),
    "sum": lambda lists: ak.sum(lists, axis=1),
    "len": lambda lists: ak.num(lists, axis=1),
    "min": lambda lists: ak.fill_none(ak.min(lists, axis=1), np.nan),
    "max": lambda lists: ak.fill_none(ak.max(lists, axis=1), np.nan),
}
FUNCTIONS = (*_ELEMENTWISE, *_REDUCTIONS)
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.remainder,
    ast.Pow: np.float_power,  # as Python: 2 ** -1 is 0.5, not an error
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_HINT = (
    "use branches, numbers, + - * / // % **, comparisons, and/or/not, "
    f"and the functions {', '.join(FUNCTIONS)}; e.g. 'nJet >= 2 and any(Jet_pt > 30)'"
)


def _truth(value: Any) -> Any:
    """Python's truth of each element: non-zero (NaN included) is true."""
    return value != 0


def _where(condition: Any, then: Any, otherwise: Any) -> Any:
    if any(isinstance(v, ak.Array) for v in (condition, then, otherwise)):
        return ak.where(condition, then, otherwise)
    return np.where(condition, then, otherwise)


def _as_python_numbers(column: Any) -> Any:
    """Integers and booleans as int64, floats as float64, lists as awkward arrays.

    uint64 values of 2**63 and more (rare: hashes, bit masks) become float64.
    """
    if isinstance(column, np.ndarray) and column.ndim > 1:
        column = ak.Array(column)
    if isinstance(column, ak.Array):
        return ak.values_astype(column, _python_dtype(ak.to_numpy(ak.flatten(column, axis=None))))
    column = np.asarray(column)
    return column.astype(_python_dtype(column), copy=False)


def _python_dtype(values: np.ndarray) -> type:
    if values.dtype.kind == "f":
        return np.float64
    if values.dtype.kind == "u" and values.dtype.itemsize == 8 and values.size:
        return np.int64 if values.max() < 2**63 else np.float64
    return np.int64


class Cut:
    """A parsed cut: the branches it needs, a check of their kinds, and a mask per entry."""

    def __init__(self, expression: str) -> None:
        if not isinstance(expression, str):
            raise InvalidValue(f"cut={expression!r} is not a string", hint=_HINT)
        self.expression = expression
        try:
            self._tree = ast.parse(expression.strip(), mode="eval").body
        except SyntaxError as exc:
            raise InvalidValue(
                f"cut {expression!r} is not an expression: {exc.msg}", hint=_HINT
            ) from None
        names: set[str] = set()
        self._validate(self._tree, names)
        self.branches = tuple(sorted(names))

    def _refuse(self, node: ast.AST, why: str = "which a cut may not use") -> InvalidValue:
        return InvalidValue(
            f"cut {self.expression!r} uses {ast.unparse(node)!r}, {why}", hint=_HINT
        )

    def _validate(self, node: ast.AST, names: set[str]) -> None:
        """Refuse anything outside the language; collect the branch names."""
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (bool, int, float)):
                raise self._refuse(node, "a constant that is not a number")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC:
                raise self._refuse(node, "a bitwise operator: write and/or/not for logic")
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Invert):
                raise self._refuse(node, "a bitwise operator: write 'not' for logic")
        elif isinstance(node, ast.Compare):
            if any(type(op) not in _COMPARISONS for op in node.ops):
                raise self._refuse(node, "an operator other than == != < <= > >=")
        elif isinstance(node, ast.Call):
            function = node.func.id if isinstance(node.func, ast.Name) else None
            if function not in FUNCTIONS or len(node.args) != 1 or node.keywords:
                raise self._refuse(node, "which is not one of the functions of one argument")
            for argument in node.args:
                self._validate(argument, names)
            return
        elif not isinstance(node, ast.BoolOp):
            raise self._refuse(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self._validate(child, names)

    def check(self, lists: Mapping[str, bool], where: str) -> None:
        """Refuse a cut that does not give one value per entry.

        lists: for each branch of the cut, whether it holds a list per entry.
        where: the file and tree, for the message.
        """
        if self._is_list(self._tree, lists, where):
            listed = sorted(b for b in self.branches if lists[b])
            raise InvalidValue(
                f"cut {self.expression!r} gives a list per entry, not one truth value: "
                f"{', '.join(map(repr, listed))} in {where} "
                f"{'holds' if len(listed) == 1 else 'hold'} a list per entry",
                hint=f"reduce each list with any(), all(), sum(), len(), min() or max(), "
                f"e.g. 'any({listed[0]} > 30)' or 'len({listed[0]}) >= 2'",
            )

    def _is_list(self, node: ast.AST, lists: Mapping[str, bool], where: str) -> bool:
        if isinstance(node, ast.Name):
            return lists[node.id]
        if isinstance(node, ast.Call):
            inner = self._is_list(node.args[0], lists, where)
            function = node.func.id  # type: ignore[attr-defined]
            if function in _REDUCTIONS and not inner:
                raise InvalidValue(
                    f"cut {self.expression!r}: {ast.unparse(node)!r} reduces one value per "
                    f"entry, but {function}() reduces a list per entry (in {where})",
                    hint=f"apply {function}() to a jagged branch such as Jet_pt, "
                    "or drop it for a one-value branch",
                )
            return inner and function in _ELEMENTWISE
        return any(
            self._is_list(child, lists, where)
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.expr)
        )

    def mask(self, columns: Mapping[str, Any]) -> np.ndarray:
        """True for the entries that pass, as a numpy bool array."""
        scope = {name: _as_python_numbers(columns[name]) for name in self.branches}
        with np.errstate(all="ignore"):  # x/0 is inf or NaN, as numpy says, not an error
            result = _truth(self._evaluate(self._tree, scope))
        if isinstance(result, ak.Array):
            result = ak.to_numpy(result)
        return np.asarray(result, dtype=bool)

    def _evaluate(self, node: ast.AST, scope: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Name):
            return scope[node.id]
        if isinstance(node, ast.Constant):
            return int(node.value) if isinstance(node.value, bool) else node.value
        if isinstance(node, ast.BinOp):
            return _ARITHMETIC[type(node.op)](
                self._evaluate(node.left, scope), self._evaluate(node.right, scope)
            )
        if isinstance(node, ast.UnaryOp):
            operand = self._evaluate(node.operand, scope)
            if isinstance(node.op, ast.Not):
                return np.logical_not(_truth(operand))
            return np.negative(operand) if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BoolOp):
            values = [self._evaluate(value, scope) for value in node.values]
            result = values[-1]
            for value in reversed(values[:-1]):  # a and b: b where a is true, else a
                if isinstance(node.op, ast.And):
                    result = _where(_truth(value), result, value)
                else:
                    result = _where(_truth(value), value, result)
            return result
        if isinstance(node, ast.Compare):
            operands = [self._evaluate(node.left, scope)]
            operands += [self._evaluate(c, scope) for c in node.comparators]
            result = None
            for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
                pair = _COMPARISONS[type(op)](left, right)
                result = pair if result is None else np.logical_and(result, pair)
            return result
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)  # (validated)
        argument = self._evaluate(node.args[0], scope)
        if node.func.id in _ELEMENTWISE:
            return _ELEMENTWISE[node.func.id](argument)
        return _REDUCTIONS[node.func.id](argument)
