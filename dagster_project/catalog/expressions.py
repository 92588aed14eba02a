"""Lago's billable-metric expressions: parsed when the catalog is read, evaluated per event at load.

The language is lago-expression's (getlago/lago-expression, `expression-core/src/grammar.pest`,
`parser.rs`, `evaluate.rs`), which lago-api evaluates on each event as it is ingested and whose
result it stores in the event's `field_name` property, the value the metric then aggregates:

- values: `event.properties.NAME` (NAME a letter, then letters, digits or `_`), `event.timestamp`
  (the event's Unix seconds, a whole number), `event.code`, decimals (`12`, `0.1`: digits, an
  optional fraction, no exponent), strings in single quotes;
- `+ - * /` (`*` and `/` bind tighter; left to right), a leading `-`, parentheses;
- `round(x)`, `ceil(x)`, `floor(x)` with an optional precision `round(x, 2)` (digits after the
  point; negative: tens, hundreds): half-up (away from zero), towards +infinity, towards -infinity;
  `least(a, ...)`, `greatest(a, ...)`, `concat(a, ...)` (text); each name in lower case, upper case
  or capitalized (`round`, `ROUND`, `Round`);
- spaces only between tokens (lago-expression's grammar knows no tab or newline).

A property whose text is a number counts as that number; any other text is a string, and
arithmetic on a string fails, as does a missing property or a division by zero: the event is then
quarantined with that reason (`EvaluationError`). Arithmetic is exact in `Decimal` (a quotient to
100 significant digits, as Rust's bigdecimal divides); the result is kept to `RESULT_DECIMALS`
decimal places, rounded half-up, the precision of units in the warehouse.
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

RESULT_DECIMALS = 12
_CONTEXT = decimal.Context(prec=100, rounding=ROUND_HALF_UP, traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                                                    decimal.Overflow])
_RESULT_QUANTUM = Decimal(1).scaleb(-RESULT_DECIMALS)
# A property's text read as a number (Rust's BigDecimal::from_str: sign, digits, fraction, exponent).
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

_FUNCTIONS = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR,
              "least": None, "greatest": None, "concat": None}
_ROUNDING = ("round", "ceil", "floor")
_TOKEN = re.compile(
    r"(?P<space> +)"
    r"|(?P<variable>event\.(?:timestamp|code|properties\.[A-Za-z][A-Za-z0-9_]*)(?![A-Za-z0-9_.]))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<decimal>\d+(?:\.\d+)?(?![\d.]))"
    r"|(?P<malformed>[\d.]+)"
    r"|(?P<string>'[^']*')"
    r"|(?P<op>[-+*/(),])"
)


class ExpressionSyntaxError(ValueError):
    """An expression lago-expression would not parse: the message says where and what."""


class EvaluationError(ValueError):
    """An expression that cannot be evaluated on an event: `field` is the property (or `expression`),
    the message what is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Event:
    """What an expression reads of an event: its code, its time and its properties as text."""

    code: str
    timestamp: dt.datetime
    properties: dict[str, str | None]


# An expression tree: tuples, ("num", Decimal) | ("str", text) | ("prop", name) | ("timestamp",) |
# ("code",) | ("neg", node) | ("op", symbol, left, right) | ("call", name, [args]).
Node = tuple


@dataclass(frozen=True)
class Expression:
    text: str
    tree: Node

    @functools.cached_property
    def _function(self):
        return _compiled(self.tree)

    @property
    def property_names(self) -> list[str]:
        """The event properties the expression reads, sorted."""
        names: set[str] = set()

        def walk(node: Node) -> None:
            if node[0] == "prop":
                names.add(node[1])
            elif node[0] == "neg":
                walk(node[1])
            elif node[0] == "op":
                walk(node[2])
                walk(node[3])
            elif node[0] == "call":
                for arg in node[2]:
                    walk(arg)

        walk(self.tree)
        return sorted(names)

    def evaluate(self, event: Event) -> Decimal | str:
        """The expression's value on `event`: a number kept to `RESULT_DECIMALS` places (half-up),
        or a text. Raises `EvaluationError`."""
        try:
            value = self._function(event)
        except decimal.DecimalException as exc:  # (beyond 100 digits)
            raise EvaluationError("expression", f"a number out of range ({type(exc).__name__})") from exc
        if isinstance(value, Decimal):
            return _kept(value)
        return value


def _kept(value: Decimal) -> Decimal:
    """A number as the warehouse keeps units: `RESULT_DECIMALS` places, half-up."""
    kept = value.quantize(_RESULT_QUANTUM, rounding=ROUND_HALF_UP, context=_CONTEXT)
    return kept.normalize(_CONTEXT) if kept == kept.to_integral_value() else kept


def as_text(value: Decimal | str) -> str:
    """The value as the event property it becomes: a number in plain digits (`1200`, `0.5`, never
    `1.2E+3`), without trailing zeros after the point."""
    if isinstance(value, str):
        return value
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def parse(text: str) -> Expression:
    """Parse `text` as lago-expression does; raises `ExpressionSyntaxError`."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionSyntaxError("the expression is empty")
    tokens, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionSyntaxError(f"unexpected character {text[position]!r} at position {position + 1}")
        if match.lastgroup == "malformed":
            raise ExpressionSyntaxError(
                f"malformed number {match.group()!r} at position {position + 1} (digits, then an optional fraction)")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group(), position + 1))
        position = match.end()
    parser = _Parser(tokens)
    tree = parser.expression()
    if parser.index < len(tokens):
        kind, value, at = tokens[parser.index]
        raise ExpressionSyntaxError(f"unexpected {value!r} at position {at}")
    return Expression(text, tree)


class _Parser:
    """Recursive descent over lago-expression's grammar: `expr = atom (op atom)*`, precedence
    `+ -` < `* /` < leading `-`, left-associative; `atom = "-"? primary`."""

    def __init__(self, tokens: list[tuple[str, str, int]]):
        self.tokens, self.index = tokens, 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _expect(self, value: str) -> None:
        token = self._peek()
        if token is None or token[1] != value:
            where = f"{token[1]!r} at position {token[2]}" if token else "the end"
            raise ExpressionSyntaxError(f"expected {value!r}, found {where}")
        self.index += 1

    def expression(self) -> Node:
        node = self._term()
        while (token := self._peek()) is not None and token[1] in ("+", "-"):
            self.index += 1
            node = ("op", token[1], node, self._term())
        return node

    def _term(self) -> Node:
        node = self._atom()
        while (token := self._peek()) is not None and token[1] in ("*", "/"):
            self.index += 1
            node = ("op", token[1], node, self._atom())
        return node

    def _atom(self) -> Node:
        token = self._peek()
        if token is not None and token[1] == "-":
            self.index += 1
            return ("neg", self._primary())
        return self._primary()

    def _primary(self) -> Node:
        token = self._peek()
        if token is None:
            raise ExpressionSyntaxError("the expression ends where a value is expected")
        kind, value, at = token
        self.index += 1
        if kind == "decimal":
            return ("num", Decimal(value))
        if kind == "string":
            return ("str", value[1:-1])
        if kind == "variable":
            if value == "event.timestamp":
                return ("timestamp",)
            if value == "event.code":
                return ("code",)
            return ("prop", value[len("event.properties."):])
        if value == "(":
            node = self.expression()
            self._expect(")")
            return node
        if kind == "name":
            function = value.lower()
            if function not in _FUNCTIONS or value not in (function, function.upper(), function.capitalize()):
                if value.startswith("event."):
                    raise ExpressionSyntaxError(
                        f"unknown variable {value!r} at position {at} (event.properties.NAME, event.timestamp "
                        "or event.code)")
                raise ExpressionSyntaxError(
                    f"unknown name {value!r} at position {at} (functions: round, ceil, floor, least, greatest, concat)")
            self._expect("(")
            args = [self.expression()]
            while (next_token := self._peek()) is not None and next_token[1] == ",":
                self.index += 1
                args.append(self.expression())
            self._expect(")")
            if function in _ROUNDING and len(args) > 2:
                raise ExpressionSyntaxError(
                    f"{value}() takes a value and an optional precision, not {len(args)} arguments (position {at})")
            return ("call", function, args)
        raise ExpressionSyntaxError(f"unexpected {value!r} at position {at}")


def _number(value: Decimal | str, node: Node) -> Decimal:
    if isinstance(value, Decimal):
        return value
    field = f"properties.{node[1]}" if node[0] == "prop" else "expression"
    raise EvaluationError(field, f"{value!r} is not a number")


_EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)
_OPERATIONS = {"+": _CONTEXT.add, "-": _CONTEXT.subtract, "*": _CONTEXT.multiply, "/": _CONTEXT.divide}


def _compiled(node: Node):
    """The node as a function of an `Event`: the tree is walked once, when the expression is
    parsed, not once per event."""
    kind = node[0]
    if kind in ("num", "str"):
        constant = node[1]
        return lambda event: constant
    if kind == "code":
        return lambda event: event.code
    if kind == "timestamp":  # lago-api passes `timestamp.to_i`: whole seconds
        return lambda event: Decimal((event.timestamp - _EPOCH) // _SECOND)
    if kind == "prop":
        name, field, number_text = node[1], f"properties.{node[1]}", _NUMBER_TEXT.fullmatch

        def prop(event):
            text = event.properties.get(name)
            if text is None:
                raise EvaluationError(field, "missing")
            return Decimal(text) if number_text(text) else text
        return prop
    if kind == "neg":
        inner, inner_node = _compiled(node[1]), node[1]
        return lambda event: -_number(inner(event), inner_node)
    if kind == "op":
        symbol, left_node, right_node = node[1], node[2], node[3]
        left, right, operation = _compiled(left_node), _compiled(right_node), _OPERATIONS[symbol]

        def op(event):
            a, b = left(event), right(event)
            if not isinstance(a, Decimal):
                _number(a, left_node)
            if not isinstance(b, Decimal):
                _number(b, right_node)
            if symbol == "/" and b == 0:
                raise EvaluationError("expression", "division by zero")
            return operation(a, b)
        return op
    name, arg_nodes = node[1], node[2]
    args = [_compiled(a) for a in arg_nodes]
    if name == "concat":
        return lambda event: "".join(format(v, "f") if isinstance(v, Decimal) else v for v in (f(event) for f in args))

    def numbers(event) -> list[Decimal]:
        return [_number(f(event), a) for f, a in zip(args, arg_nodes, strict=True)]
    if name == "least":
        return lambda event: min(numbers(event))
    if name == "greatest":
        return lambda event: max(numbers(event))
    rounding = _FUNCTIONS[name]

    def rounded(event):
        values = numbers(event)
        digits = int(values[1]) if len(values) == 2 else 0  # (a fractional precision is truncated)
        return values[0].quantize(Decimal(1).scaleb(-digits), rounding=rounding, context=_CONTEXT)
    return rounded


EVALUATION_FAILED = "expression_evaluation_failed"  # the quarantine reason (lago-api's error code)


def evaluate_events(
    events: list[tuple[str, dt.datetime, dict[str, str | None]]], metric_expressions: dict[str, tuple[str, str]]
) -> list[tuple[str | None, str | None, str | None]]:
    """Each event (code, timestamp, properties as text) of a metric with an expression, evaluated:
    (its value as property text, None, None), or (None, `EVALUATION_FAILED`, what is wrong) naming
    the field and the metric. `metric_expressions`: code -> (field_name, expression text)."""
    parsed = {code: parse(text) for code, (_, text) in metric_expressions.items()}
    results: list[tuple[str | None, str | None, str | None]] = []
    for code, timestamp, properties in events:
        expression = parsed[code]
        try:
            results.append((as_text(expression.evaluate(Event(code, timestamp, properties))), None, None))
        except EvaluationError as exc:
            results.append((None, EVALUATION_FAILED,
                            f"field {exc.field}: {exc} (expression of metric '{code}': {expression.text})"))
    return results
