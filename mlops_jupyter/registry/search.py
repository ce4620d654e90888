"""Search runs: a small filter and sort language, compiled to one SQL query.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | '(' filter ')' | comparison
    comparison := field op value
                | field [NOT] IN '(' value ( ',' value )* ')'
                | field [NOT] LIKE string | field [NOT] ILIKE string
                | field IS [NOT] NULL
    field      := metrics.KEY | params.KEY | tags.KEY | attributes.NAME | NAME
    KEY        := [A-Za-z0-9_/.:-]+ | `quoted key` | "quoted key"
    op         := = | == | != | <> | < | <= | > | >=
    value      := number | 'string' | "string"      (double a quote to escape it)

    order_by   := sort_key ( ',' sort_key )*
    sort_key   := ['-'] field [ ASC | DESC ]

A bare NAME is a run attribute: run_id, name, status, user, start_time, end_time,
experiment, parent_run_id, notebook_path, git_commit. start_time and end_time take epoch
seconds or an ISO date/datetime string ('2026-01-31', '2026-01-31T12:00:00'; naive = UTC).

Metrics compare numbers, tags and text attributes compare text, params compare numbers
(their numeric form) or text depending on the literal. LIKE patterns use % and _, with a
backslash as escape character on every database. A run lacking a key matches no comparison
on it, even under NOT (SQL NULL logic); ``IS NULL`` finds the runs that lack it.

Every user value and key reaches the database as a bound parameter, never as SQL text.
"""

import math
import operator
import string
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

from ..errors import InvalidInput
from .schema import experiments, latest_metrics, params, runs, tags

__all__ = ["build_run_query", "parse_filter", "parse_sort"]

MAX_LIMIT = 100_000
MAX_DEPTH = 50  # nesting of NOT and parentheses; keeps Python and SQL compilers off their recursion limits
MAX_KEYS = 60  # one join per key, and SQLite refuses joins of more than 64 tables

_ATTRIBUTES = {
    "run_id": runs.c.id,
    "name": runs.c.name,
    "status": runs.c.status,
    "user": runs.c.user,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "experiment": experiments.c.name,
    "parent_run_id": runs.c.parent_run_id,
    "notebook_path": runs.c.notebook_path,
    "git_commit": runs.c.git_commit,
}
_TIME_ATTRIBUTES = {"start_time", "end_time"}
_KEY_TABLES = {"metrics": latest_metrics, "params": params, "tags": tags}
_PREFIXES = (*_KEY_TABLES, "attributes")
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"}
_OPERATORS = {"=": "=", "==": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_SQL_OPERATORS = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


# ---------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Field:
    kind: str  # "metrics", "params", "tags" or "attributes"
    key: str
    pos: int

    def __str__(self):
        if self.kind == "attributes":
            return self.key
        if self.key and all(c in _WORD_CHARS for c in self.key):
            return f"{self.kind}.{self.key}"
        return f"{self.kind}.`{self.key}`"


@dataclass(frozen=True)
class Comparison:
    field: Field
    op: str  # one of = != < <= > >=
    value: object  # float or str; times already in epoch seconds


@dataclass(frozen=True)
class InList:
    field: Field
    values: tuple
    negated: bool = False


@dataclass(frozen=True)
class Like:
    field: Field
    pattern: str
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True)
class IsNull:
    field: Field
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: object


@dataclass(frozen=True)
class And:
    operands: tuple


@dataclass(frozen=True)
class Or:
    operands: tuple


@dataclass(frozen=True)
class SortKey:
    field: Field
    descending: bool = False


# ---------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # word, number, string ('...'), dstring ("..."), key (`...`), op, punct, end
    value: str  # the source text, or a quoted token's unescaped contents
    pos: int
    end: int


_DIGITS = set(string.digits)
_WORD_START = set(string.ascii_letters + "_")
_WORD_CHARS = _WORD_START | _DIGITS | set("/-.:")
_QUOTES = {"'": "string", '"': "dstring", "`": "key"}


def _error(what, pos, message):
    return InvalidInput(f"invalid {what} at column {pos + 1}: {message}")


def _tokenize(text, what):
    tokens, i, n = [], 0, len(text)
    while i < n:
        c, start = text[i], i
        if c.isspace():
            i += 1
            continue
        if c in _QUOTES:
            value, i = _read_quoted(text, i, what)
            tokens.append(_Token(_QUOTES[c], value, start, i))
        elif c in _DIGITS or (c in "+-." and _starts_number(text, i)):
            i = _read_number(text, i, what)
            tokens.append(_Token("number", text[start:i], start, i))
        elif c in _WORD_START:
            while i < n and text[i] in _WORD_CHARS:
                i += 1
            tokens.append(_Token("word", text[start:i], start, i))
        elif text[i:i + 2] in _OPERATORS:
            i += 2
            tokens.append(_Token("op", text[start:i], start, i))
        elif c in _OPERATORS:
            i += 1
            tokens.append(_Token("op", c, start, i))
        elif c in "(),-":
            i += 1
            tokens.append(_Token("punct", c, start, i))
        else:
            hint = " (quote keys with such characters: metrics.`...`)" if c.isalnum() else ""
            raise _error(what, i, f"unexpected character {c!r}{hint}")
    tokens.append(_Token("end", "", n, n))
    return tokens


def _starts_number(text, i):
    if text[i] in "+-":
        i += 1
    if text[i:i + 1] == ".":
        i += 1
    return text[i:i + 1] in _DIGITS


def _read_number(text, i, what):
    start, n = i, len(text)

    def skip_digits(j):
        while j < n and text[j] in _DIGITS:
            j += 1
        return j

    i = skip_digits(i + 1 if text[i] in "+-" else i)
    if text[i:i + 1] == ".":
        i = skip_digits(i + 1)
    bad = False
    if text[i:i + 1] in ("e", "E"):
        i += 2 if text[i + 1:i + 2] in ("+", "-") else 1
        bad = text[i:i + 1] not in _DIGITS  # an exponent needs digits
        i = skip_digits(i)
    if bad or text[i:i + 1] in _WORD_CHARS:
        end = i
        while end < n and text[end] in _WORD_CHARS:
            end += 1
        raise _error(what, start, f"invalid number {text[start:end]!r}")
    return i


def _read_quoted(text, i, what):
    quote, parts, j = text[i], [], i + 1
    while True:
        k = text.find(quote, j)
        if k < 0:
            thing = "quoted key" if quote == "`" else "string"
            raise _error(what, i, f"unterminated {thing}: the closing {quote} is missing")
        parts.append(text[j:k])
        if text.startswith(quote, k + 1):  # a doubled quote stands for one quote
            parts.append(quote)
            j = k + 2
            continue
        return "".join(parts), k + 1


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text, what):
        self.text, self.what = text, what
        self.tokens = _tokenize(text, what)
        self.i = 0
        self.depth = 0

    # -- helpers

    def peek(self):
        return self.tokens[self.i]

    def advance(self):
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def at_keyword(self, *words):
        token = self.peek()
        return token.kind == "word" and token.value.upper() in words

    def at_punct(self, char):
        token = self.peek()
        return token.kind == "punct" and token.value == char

    def fail(self, pos, message):
        raise _error(self.what, pos, message)

    def describe(self, token):
        if token.kind == "end":
            return f"end of {self.what}"
        return repr(self.text[token.pos:token.end])

    def expect_end(self):
        token = self.peek()
        if token.kind != "end":
            if token.kind == "punct" and token.value == ")":
                self.fail(token.pos, "unexpected ')' with no matching '('")
            self.fail(token.pos, f"unexpected {self.describe(token)}")

    # -- filter

    def filter(self):
        node = self.or_expr()
        self.expect_end()
        return node

    def or_expr(self):
        operands = [self.and_expr()]
        while self.at_keyword("OR"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self):
        operands = [self.not_expr()]
        while self.at_keyword("AND"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self):
        token = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(token.pos, f"expression nests deeper than {MAX_DEPTH} levels")
        if self.at_keyword("NOT"):
            self.advance()
            node = Not(self.not_expr())
        elif self.at_punct("("):
            self.advance()
            node = self.or_expr()
            if not self.at_punct(")"):
                self.fail(self.peek().pos, f"expected ')' to close the '(' at column {token.pos + 1}, "
                                           f"found {self.describe(self.peek())}")
            self.advance()
        else:
            node = self.comparison()
        self.depth -= 1
        return node

    def comparison(self):
        field = self.field()
        token = self.advance()
        if token.kind == "op":
            value = self.value(field, token)
            return Comparison(field, _OPERATORS[token.value], value)
        negated = False
        if token.kind == "word" and token.value.upper() == "NOT":
            negated, token = True, self.advance()
            if not (token.kind == "word" and token.value.upper() in ("IN", "LIKE", "ILIKE")):
                self.fail(token.pos, f"expected IN, LIKE or ILIKE after NOT, found {self.describe(token)}")
        word = token.value.upper() if token.kind == "word" else None
        if word == "IN":
            return InList(field, self.value_list(field, token), negated)
        if word in ("LIKE", "ILIKE"):
            return Like(field, self.pattern(field, token), negated, word == "ILIKE")
        if word == "IS":
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            null = self.advance()
            if not (null.kind == "word" and null.value.upper() == "NULL"):
                self.fail(null.pos, f"expected NULL after IS{' NOT' if negated else ''}, "
                                    f"found {self.describe(null)}")
            return IsNull(field, negated)
        self.fail(token.pos, f"expected an operator after {field}, found {self.describe(token)}")

    def field(self):
        token = self.advance()
        if token.kind != "word":
            what = "a quoted key needs a prefix, e.g. metrics.`val loss`" if token.kind in ("key", "dstring") \
                else f"expected a field, found {self.describe(token)}"
            self.fail(token.pos, what)
        prefix, dot, key = token.value.partition(".")
        if not dot:
            if prefix.upper() in _KEYWORDS:
                self.fail(token.pos, f"expected a field, found keyword {prefix.upper()}")
            return Field("attributes", self.attribute(prefix, token.pos), token.pos)
        kind = prefix.lower()
        if kind not in _PREFIXES:
            self.fail(token.pos, f"unknown prefix {prefix!r}{_suggest(kind, _PREFIXES)}; "
                                 f"use metrics., params., tags. or attributes.")
        if not key:  # `metrics.` then a quoted key right after the dot
            quoted = self.peek()
            if quoted.kind not in ("key", "dstring") or quoted.pos != token.end:
                self.fail(token.end, f"missing key after {token.value!r}")
            key = self.advance().value
            if not key:
                self.fail(quoted.pos, "empty quoted key")
        if kind == "attributes":
            key = self.attribute(key, token.pos)
        return Field(kind, key, token.pos)

    def attribute(self, name, pos):
        if name.lower() in _ATTRIBUTES:
            return name.lower()
        hint = _suggest(name.lower(), _ATTRIBUTES)
        if not hint:
            hint = f" (for a metric, param or tag write metrics.{name}, params.{name} or tags.{name})"
        self.fail(pos, f"unknown attribute {name!r}{hint}")

    def value(self, field, after):
        token = self.advance()
        if token.kind == "number":
            number = float(token.value)
            if not math.isfinite(number):
                self.fail(token.pos, f"number {token.value} is out of range")
            value = number
        elif token.kind in ("string", "dstring"):
            value = token.value
        else:
            message = f"missing value after {self.describe(after)}, found {self.describe(token)}"
            if token.kind == "word" and token.value.upper() == "NULL":
                message += " (use IS NULL)"
            elif token.kind == "word" and token.value.upper() not in _KEYWORDS:
                message += f" (quote text: '{token.value}')"
            elif token.kind == "key":
                message += " (backticks quote keys; quote values with ' or \")"
            self.fail(token.pos, message)
        return self.check_value(field, value, token)

    def check_value(self, field, value, token):
        shown = self.text[token.pos:token.end]
        if field.kind == "metrics" and isinstance(value, str):
            self.fail(token.pos, f"{field} compares numbers; got {shown}")
        if field.kind == "attributes" and field.key in _TIME_ATTRIBUTES:
            if isinstance(value, str):
                value = _epoch_seconds(value)
                if value is None:
                    self.fail(token.pos, f"{field} takes epoch seconds or an ISO date/datetime "
                                         f"like '2026-01-31T12:00:00'; got {shown}")
        elif field.kind in ("tags", "attributes") and not isinstance(value, str):
            self.fail(token.pos, f"{field} compares text; got {shown} (quote it: '{shown}')")
        return value

    def value_list(self, field, in_token):
        if not self.at_punct("("):
            self.fail(self.peek().pos, f"expected '(' after IN, found {self.describe(self.peek())}")
        opening = self.advance()
        if self.at_punct(")"):
            self.fail(opening.pos, "empty IN list; give at least one value")
        values = [self.value(field, in_token)]
        while self.at_punct(","):
            comma = self.advance()
            values.append(self.value(field, comma))
            if isinstance(values[-1], str) != isinstance(values[0], str):
                self.fail(self.tokens[self.i - 1].pos, "IN list mixes numbers and strings")
        if not self.at_punct(")"):
            self.fail(self.peek().pos, f"expected ',' or ')' in the IN list, found {self.describe(self.peek())}")
        self.advance()
        return tuple(values)

    def pattern(self, field, like_token):
        if field.kind == "metrics" or (field.kind == "attributes" and field.key in _TIME_ATTRIBUTES):
            self.fail(like_token.pos, f"{like_token.value.upper()} does not apply to {field}, which is a number")
        token = self.advance()
        if token.kind not in ("string", "dstring"):
            self.fail(token.pos, f"{like_token.value.upper()} takes a quoted pattern, found {self.describe(token)}")
        # PostgreSQL rejects a pattern ending in the escape character; SQLite would just not match.
        escaped = False
        for char in token.value:
            escaped = not escaped and char == "\\"
        if escaped:
            self.fail(token.pos, "pattern ends with a lone backslash (the escape character); write \\\\")
        return token.value

    # -- sort

    def sort(self):
        keys = [self.sort_key()]
        while self.at_punct(","):
            self.advance()
            keys.append(self.sort_key())
        self.expect_end()
        return keys

    def sort_key(self):
        minus = self.at_punct("-")
        if minus:
            self.advance()
        field = self.field()
        descending = minus
        if self.at_keyword("ASC", "DESC"):
            token = self.advance()
            if minus:
                self.fail(token.pos, f"'-' already sorts {field} descending; drop '-' or {token.value}")
            descending = token.value.upper() == "DESC"
        elif self.peek().kind != "end" and not self.at_punct(","):
            self.fail(self.peek().pos, f"expected ASC, DESC or ',' after {field}, found {self.describe(self.peek())}")
        return SortKey(field, descending)


def _suggest(word, choices):
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _epoch_seconds(text):
    # Only calendar dates: fromisoformat alone would also accept forms like '2026W05'.
    if not (len(text) >= 10 and text[4] == "-" and text[7] == "-"):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_filter(text):
    """Parse a filter string into a tree of nodes; None for an empty or blank filter."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"filter must be a string, not {type(text).__name__}")
    if not text.strip():
        return None
    return _Parser(text, "filter").filter()


def parse_sort(text):
    """Parse ``'metrics.auc desc, start_time'`` (or a list of such strings) into SortKeys."""
    if text is None:
        return []
    items = [text] if isinstance(text, str) else text
    if not isinstance(items, (list, tuple)):
        raise InvalidInput(f"order_by must be a string or a list of strings, not {type(text).__name__}")
    keys = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidInput(f"order_by entries must be strings, not {type(item).__name__}")
        if item.strip():
            keys.extend(_Parser(item, "order_by").sort())
    return keys


# ---------------------------------------------------------------- compiler


class _Compiler:
    """Turns nodes into SQLAlchemy clauses, adding one outer join per (kind, key) it meets."""

    def __init__(self):
        self.joins = {}
        self.from_clause = runs.join(experiments, runs.c.experiment_id == experiments.c.id)

    def joined(self, field):
        alias = self.joins.get((field.kind, field.key))
        if alias is None:
            if len(self.joins) >= MAX_KEYS:
                raise InvalidInput(f"filter and order_by use more than {MAX_KEYS} distinct keys; "
                                   f"{field} is one too many")
            alias = _KEY_TABLES[field.kind].alias(f"{field.kind[0]}{len(self.joins)}")
            self.joins[(field.kind, field.key)] = alias
            # The key goes into ON, not WHERE, so a run lacking it still survives as NULLs.
            self.from_clause = self.from_clause.outerjoin(
                alias, sa.and_(alias.c.run_id == runs.c.id, alias.c.key == field.key))
        return alias

    def column(self, field, number):
        if field.kind == "attributes":
            return _ATTRIBUTES[field.key]
        alias = self.joined(field)
        return alias.c.value_number if field.kind == "params" and number else alias.c.value

    def where(self, node):
        if isinstance(node, Comparison):
            column = self.column(node.field, not isinstance(node.value, str))
            return _SQL_OPERATORS[node.op](column, node.value)
        if isinstance(node, InList):
            column = self.column(node.field, not isinstance(node.values[0], str))
            return column.not_in(node.values) if node.negated else column.in_(node.values)
        if isinstance(node, Like):
            column = self.column(node.field, False)
            method = {(False, False): column.like, (False, True): column.not_like,
                      (True, False): column.ilike, (True, True): column.not_ilike}
            return method[node.case_insensitive, node.negated](node.pattern, escape="\\")
        if isinstance(node, IsNull):
            # For keys, absent means no joined row; a metric stored as NULL (NaN) is present.
            field = node.field
            column = _ATTRIBUTES[field.key] if field.kind == "attributes" else self.joined(field).c.run_id
            return column.is_not(None) if node.negated else column.is_(None)
        if isinstance(node, Not):
            return sa.not_(self.where(node.operand))
        if isinstance(node, And):
            return sa.and_(*(self.where(operand) for operand in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self.where(operand) for operand in node.operands))
        raise TypeError(f"not a filter node: {node!r}")

    def order(self, key):
        field = key.field
        if field.kind == "params":
            # Numeric params sort as numbers, then the text-only ones as text.
            columns = [self.column(field, True), self.column(field, False)]
        else:
            columns = [self.column(field, True)]
        return [(c.desc() if key.descending else c.asc()).nulls_last() for c in columns]


def _check_int(value, what, low, high=None):
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)  # int and numpy integers, not floats or strings
    except TypeError:
        raise InvalidInput(f"{what} must be an integer, not {type(value).__name__}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{what} must be {bounds}; got {value}")
    return value


def build_run_query(filter=None, order_by=None, experiment_ids=None, limit=100, offset=0):
    """One SELECT of the runs matching ``filter``, sorted by ``order_by``, one page of them.

    Columns: id, name, experiment (its name), status, user, start_time, end_time, parent_run_id.
    ``experiment_ids`` None searches every experiment. The default order is newest first;
    runs.id always breaks ties so pages do not overlap.
    """
    limit = _check_int(limit, "limit", 1, MAX_LIMIT)
    offset = _check_int(offset, "offset", 0)
    tree = parse_filter(filter)
    sort = parse_sort(order_by)

    compiler = _Compiler()
    conditions = [] if tree is None else [compiler.where(tree)]
    if experiment_ids is not None:
        if isinstance(experiment_ids, int):  # one id; a bool is refused by _check_int below
            experiment_ids = [experiment_ids]
        if isinstance(experiment_ids, (str, bytes)) or not hasattr(experiment_ids, "__iter__"):
            raise InvalidInput(f"experiment_ids must be a list of integers, not {type(experiment_ids).__name__}")
        ids = [_check_int(i, "experiment id", 0) for i in experiment_ids]
        conditions.append(runs.c.experiment_id.in_(ids))
    ordering = [clause for key in sort for clause in compiler.order(key)] or [runs.c.start_time.desc()]
    ordering.append(runs.c.id.asc())

    return (
        sa.select(runs.c.id, runs.c.name, experiments.c.name.label("experiment"), runs.c.status,
                  runs.c.user, runs.c.start_time, runs.c.end_time, runs.c.parent_run_id)
        .select_from(compiler.from_clause)
        .where(*conditions)
        .order_by(*ordering)
        .limit(limit)
        .offset(offset)
    )
