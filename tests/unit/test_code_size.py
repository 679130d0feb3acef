"""Size guards: no non-test module over 350 lines, no non-test function over 60 lines.

Small modules named for their one job, and functions a reader can hold at once, are the house's
habit (issue #28, item 6); these tests keep it from drifting back. They read the source (AST) and
import nothing, so they cost milliseconds.

Counting:
- A module's length is its number of lines (`str.splitlines()`), blank lines and comments included.
- A function's length runs from its `def` line (decorators not counted) to the last line of its
  body (`end_lineno`), docstring and comments included. Methods and nested functions are functions;
  a nested function's lines count in its enclosing function as well.

The data-literal exception: a function whose LAST statement is `return <display>`, where the
display is a list, tuple, set or dict literal (e.g. the alert rules in
`stackctl/deploy/rules.py:model_rules`: one rule per dict, written out so a reader sees each rule whole),
is measured WITHOUT the lines of that display. Everything else in it, its signature, docstring and
the statements before the return, still counts against the 60. The display may hold names,
constants, f-strings, operators, attribute and item reads, calls and nested displays, but no
lambda, comprehension or `x if c else y`: those are logic, and logic is not exempt.
"""
from __future__ import annotations

import ast
from pathlib import Path

from stackctl import paths
from stackctl.deploy import rules

NON_TEST_PACKAGES = ("handlers", "stackctl", "bench", "loadtest", "models")
MAX_MODULE_LINES = 350
MAX_FUNCTION_LINES = 60
DISPLAYS = (ast.List, ast.Tuple, ast.Set, ast.Dict)
LOGIC = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.IfExp, ast.NamedExpr)


def non_test_modules() -> list[Path]:
    return sorted(p for package in NON_TEST_PACKAGES for p in (paths.ROOT / package).rglob("*.py"))


def shown(path: Path) -> str:
    return str(path.relative_to(paths.ROOT))


def returned_display(function: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.expr | None:
    """The data literal `function` ends by returning, or None when it does not end so."""
    last = function.body[-1]
    if not (isinstance(last, ast.Return) and isinstance(last.value, DISPLAYS)):
        return None
    if any(isinstance(node, LOGIC) for node in ast.walk(last.value)):
        return None
    return last.value


def counted_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The function's length by the rules in this module's docstring."""
    length = (function.end_lineno or function.lineno) - function.lineno + 1
    display = returned_display(function)
    if display is not None:
        length -= (display.end_lineno or display.lineno) - display.lineno + 1
    return length


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and counted_lines(node) > limit:
            found.append(f"{shown(path)}:{node.lineno} {node.name} ({counted_lines(node)} lines)")
    return found


def test_no_module_over_350_lines() -> None:
    long = [f"{shown(p)} ({n} lines)" for p in non_test_modules()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert long == [], f"split these modules by job (at most {MAX_MODULE_LINES} lines each): {long}"


def test_no_function_over_60_lines() -> None:
    long = [entry for p in non_test_modules() for entry in long_functions(p)]
    assert long == [], f"split these functions (at most {MAX_FUNCTION_LINES} lines, see this module's docstring): {long}"


def test_the_alert_rules_are_the_named_data_literal() -> None:
    # The exception exists for this function: its returned list of rules is exempt, the rest counts.
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    model_rules = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "model_rules")
    assert returned_display(model_rules) is not None
    assert counted_lines(model_rules) <= MAX_FUNCTION_LINES


def _function(source: str) -> ast.FunctionDef:
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return node


def test_the_counting_rules() -> None:
    plain = _function("def f():\n" + "    x = 1\n" * 70 + "    return x\n")
    assert counted_lines(plain) == 72
    literal = _function("def f(name):\n    '''doc'''\n    return [\n" + "        {'a': f'{name}'},\n" * 80 + "    ]\n")
    assert counted_lines(literal) == 2
    # logic inside the returned literal is not exempt
    hidden = _function("def f(xs):\n    return [\n" + "        [x for x in xs],\n" * 80 + "    ]\n")
    assert returned_display(hidden) is None and counted_lines(hidden) == 83
    # nor is what comes before the return
    before = _function("def f():\n" + "    x = 1\n" * 61 + "    return [x]\n")
    assert counted_lines(before) == 62

