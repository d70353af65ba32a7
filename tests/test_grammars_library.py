"""The ready grammar library in ``grammars/``, judged by lark's own Earley parser.

Each grammar is loaded with ``lark.Lark(text, start="start", parser="earley",
lexer="dynamic_complete")`` (every lexing: the reference semantics of structgen's grammar
constraints) and checked against an independent oracle where one exists:

* ``json.lark``: Python's ``json`` module, on hypothesis documents, on mutations of them, and on
  hand-written corpora (NaN/Infinity are the one documented disagreement);
* ``sql.lark``: SQLite itself (``sqlite3``): corpus statements run against a small schema, and
  random sentences of the grammar must never be SQLite *syntax* errors;
* ``python_expr.lark``: ``ast.parse(mode="eval")`` on corpora and random sentences;
* ``arithmetic``, ``csv``, ``chess_san``, ``cron``: hand-written corpora and random sentences
  checked by small independent validators.

Corpora must also parse unambiguously (no ``_ambig`` node under ``ambiguity="explicit"``).
"""

from __future__ import annotations

import ast
import csv
import functools
import io
import json
import random
import re
import sqlite3
from pathlib import Path

import lark
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

try:  # Python >= 3.11
    from re import _constants as sre_constants
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

GRAMMARS = Path(__file__).resolve().parent.parent / "grammars"
NAMES = ["json", "sql", "arithmetic", "csv", "python_expr", "chess_san", "cron"]


@functools.cache
def parser(name: str, ambiguity: str = "resolve") -> lark.Lark:
    text = (GRAMMARS / f"{name}.lark").read_text()
    return lark.Lark(text, start="start", parser="earley", lexer="dynamic_complete",
                     ambiguity=ambiguity)


def accepts(name: str, text: str) -> bool:
    try:
        parser(name).parse(text)
    except lark.exceptions.LarkError:
        return False
    return True


def assert_unambiguous(name: str, text: str) -> None:
    tree = parser(name, "explicit").parse(text)
    ambig = [t for t in tree.iter_subtrees() if t.data == "_ambig"]
    assert not ambig, f"{name}: {text!r} has {len(ambig)} ambiguous nodes"


# ------------------------------------------------------------------ random sentences of a grammar

@functools.cache
def _parsed_regex(pattern: str, flags: int):
    tree = sre_parse.parse(pattern, flags)
    return tree, bool(flags & re.IGNORECASE) or bool(tree.state.flags & re.IGNORECASE), re.compile(pattern, flags)


def _sample_regex(pattern: str, flags: int, rng: random.Random, tries: int = 200) -> str:
    """A random string fully matching ``pattern`` (lookarounds by rejection)."""
    tree, ci, compiled = _parsed_regex(pattern, flags)
    for _ in range(tries):
        out: list[str] = []
        _emit(tree, rng, out, ci)
        s = "".join(out)
        if compiled.fullmatch(s):
            return s
    raise RuntimeError(f"cannot sample {pattern!r}")


_PRINTABLE = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\n", "é", "中", "\u00a0", "😀"]


def _emit(items, rng, out, ci):
    for op, av in items:
        if op is sre_constants.LITERAL:
            ch = chr(av)
            out.append(ch.swapcase() if ci and rng.random() < 0.5 else ch)
        elif op is sre_constants.NOT_LITERAL:
            out.append(rng.choice([c for c in _PRINTABLE if ord(c) != av]))
        elif op is sre_constants.IN:
            out.append(_class_char(av, rng))
        elif op is sre_constants.ANY:
            out.append(rng.choice(_PRINTABLE[:-3]))
        elif op is sre_constants.BRANCH:
            _emit(rng.choice(av[1]), rng, out, ci)
        elif op is sre_constants.SUBPATTERN:
            _emit(av[-1], rng, out, ci)
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            lo, hi, sub = av
            hi = min(hi, lo + 4)
            for _ in range(rng.randint(lo, hi)):
                _emit(sub, rng, out, ci)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT, sre_constants.AT):
            pass  # checked by the final fullmatch
        else:
            raise NotImplementedError(op)


def _class_char(items, rng) -> str:
    negate = any(op is sre_constants.NEGATE for op, _ in items)

    def inside(c: str) -> bool:
        o = ord(c)
        for op, av in items:
            if op is sre_constants.LITERAL and o == av:
                return True
            if op is sre_constants.RANGE and av[0] <= o <= av[1]:
                return True
            if op is sre_constants.CATEGORY and re.fullmatch(
                    {sre_constants.CATEGORY_DIGIT: r"\d", sre_constants.CATEGORY_WORD: r"\w",
                     sre_constants.CATEGORY_SPACE: r"\s"}[av], c):
                return True
        return False

    if negate:
        return rng.choice([c for c in _PRINTABLE if not inside(c)])
    pool = [c for c in _PRINTABLE if inside(c)]
    for op, av in items:  # make sure every member of a small class is reachable
        if op is sre_constants.LITERAL:
            pool.append(chr(av))
    return rng.choice(pool)


class SentenceGenerator:
    """Random sentences of a lark grammar: random expansions, shortest ones once deep."""

    def __init__(self, p: lark.Lark, terminal_samplers: dict | None = None):
        self.rules: dict[str, list[list]] = {}
        for r in p.rules:
            self.rules.setdefault(r.origin.name, []).append(r.expansion)
        self.terminals = {t.name: t for t in p.terminals}
        self.samplers = terminal_samplers or {}
        # minimal derivation height of each nonterminal, for termination
        height = {n: float("inf") for n in self.rules}
        changed = True
        while changed:
            changed = False
            for n, exps in self.rules.items():
                for e in exps:
                    h = 1 + max([height.get(s.name, 0) if not s.is_term else 0 for s in e],
                                default=0)
                    if h < height[n]:
                        height[n], changed = h, True
        self.height = height

    def _exp_height(self, e) -> float:
        return max([self.height[s.name] for s in e if not s.is_term], default=0)

    def terminal(self, name: str, rng: random.Random) -> str:
        if name in self.samplers:
            return self.samplers[name](rng)
        t = self.terminals[name]
        pat = t.pattern
        if isinstance(pat, lark.lexer.PatternStr):
            v = pat.value
            if "i" in pat.flags:
                v = "".join(c.swapcase() if rng.random() < 0.5 else c for c in v)
            return v
        flags = 0
        for f in pat.flags:
            flags |= {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": re.UNICODE, "l": 0}[f]
        return _sample_regex(pat.value, flags, rng)

    def generate(self, rng: random.Random, max_depth: int = 12, start: str = "start") -> str:
        out: list[str] = []

        def expand(sym: str, depth: int) -> None:
            exps = self.rules[sym]
            if depth >= max_depth:
                best = min(self._exp_height(e) for e in exps)
                exps = [e for e in exps if self._exp_height(e) == best]
            for s in rng.choice(exps):
                if s.is_term:
                    out.append(self.terminal(s.name, rng))
                else:
                    expand(s.name, depth + 1)

        expand(start, 0)
        return "".join(out)


# ------------------------------------------------------------------ all grammars

@pytest.mark.parametrize("name", NAMES)
def test_grammar_loads_in_lark(name):
    p = parser(name)
    assert p.options.start == ["start"]
    assert (GRAMMARS / f"{name}.lark").read_text().lstrip().startswith("//")  # documented


def test_readme_lists_every_grammar():
    readme = (GRAMMARS / "README.md").read_text()
    for name in NAMES:
        assert f"`{name}.lark`" in readme or f"{name}.lark" in readme


@pytest.mark.parametrize("name", ["json", "arithmetic", "csv", "chess_san", "cron"])
def test_random_sentences_parse_unambiguously(name):
    gen = SentenceGenerator(parser(name))
    rng = random.Random(9)
    for _ in range(60):
        assert_unambiguous(name, gen.generate(rng, max_depth=7))


# ------------------------------------------------------------------ JSON

JSON_VALID = [
    "{}", "[]", "0", "-0", "1.5e+10", "-12.5E-3", "true", "false", "null", '""',
    ' {"a": 1, "b": [true, false, null], "c": {"d": "e"}} ',
    '{"name": "Ada Lovelace", "born": 1815, "tags": ["math", "poet\\u00e9"]}',
    '[1,2,3]', '[ 1 , 2 , 3 ]', '\n\t[\r\n]\n', '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
    '"\\u0041\\uD83D\\uDE00"', '"\\ud800"', '"caf\u00e9 \u4e2d \U0001f600"',
    '{"a":{"b":{"c":[[[]]]}}}', '{"":""}', '{"a":1,"a":2}', "1E400", "123456789012345678901234",
    '"\u007f"', '[{}, {"x": []}]',
]

JSON_INVALID = [
    "", " ", "{", "}", "[1,]", "[,1]", '{"a":1,}', "{'a': 1}", '{a: 1}', "01", "-", "+1", "1.",
    ".5", "1e", "1e+", "0x10", "tru", "True", "NULL", '"abc', '"\\x41"', '"\\u12"', '"\\u12G4"',
    '"tab\there"', '"line\nbreak"', "[1 2]", '{"a" 1}', '{"a":1 "b":2}', "1 2", "[]]",
    "\u00a0[]", "\ufeff{}", "[1]\x0b", "/* c */ 1", "NaN", "Infinity", "-Infinity", "[NaN]",
    "'x'", '"a"b', "nulll", "[-]", "-01", "1.0e", "{1: 2}",
]


def json_valid(text: str) -> bool:
    """json.loads, but NaN/Infinity/-Infinity are not JSON."""
    def no_constants(name):
        raise ValueError(name)
    try:
        json.loads(text, parse_constant=no_constants)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("text", JSON_VALID)
def test_json_valid_corpus(text):
    assert json_valid(text)
    assert accepts("json", text)
    assert_unambiguous("json", text)


@pytest.mark.parametrize("text", JSON_INVALID)
def test_json_invalid_corpus(text):
    assert not json_valid(text)
    assert not accepts("json", text)


def test_json_nan_infinity_are_the_documented_difference():
    for text in ["NaN", "Infinity", "-Infinity", "[1, NaN]"]:
        json.loads(text)  # Python takes them ...
        assert not accepts("json", text)  # ... JSON does not


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
dump_options = st.fixed_dictionaries({
    "indent": st.sampled_from([None, 0, 1, 2, "\t", " \r\n"]),
    "separators": st.sampled_from([None, (",", ":"), (", ", ": "), (" , ", " : "), (",\n", ":\t")]),
    "ensure_ascii": st.booleans(),
    "sort_keys": st.booleans(),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, dump_options, st.sampled_from(["", " ", "\n", "\t\r\n "]))
def test_json_hypothesis_documents_accepted(value, options, pad):
    text = pad + json.dumps(value, **options) + pad
    assert json_valid(text)
    assert accepts("json", text), text


MUTATION_ALPHABET = list('{}[],:"\\/ -+.0123456789eEtrufalsnbxu\t\n\r\x00\x1f\x7fé') + [
    "\\u", "\\ud800", "true", "null", "NaN", "1e5", '""']


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, dump_options, st.randoms(use_true_random=False), st.integers(1, 3))
def test_json_mutations_agree_with_json_module(value, options, rnd, n_mutations):
    """Grammar accepts <=> json.loads succeeds (NaN/Infinity counted as invalid)."""
    text = json.dumps(value, **options)
    for _ in range(n_mutations):
        i = rnd.randint(0, len(text))
        kind = rnd.random()
        if kind < 0.4 and text:
            j = min(len(text), i + rnd.randint(1, 2))
            text = text[:i] + text[j:]
        elif kind < 0.8:
            text = text[:i] + rnd.choice(MUTATION_ALPHABET) + text[i:]
        else:
            text = text[:i] + rnd.choice(MUTATION_ALPHABET) + text[i + 1:]
    assert accepts("json", text) == json_valid(text), repr(text)


def test_json_random_sentences_parse_with_json_module():
    gen = SentenceGenerator(parser("json"))
    rng = random.Random(1)
    for _ in range(300):
        text = gen.generate(rng, max_depth=8)
        assert json_valid(text), repr(text)


# ------------------------------------------------------------------ SQL

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INTEGER,
                    country TEXT, created_at TEXT, manager_id INTEGER, data TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, total REAL, status TEXT,
                     created_at TEXT, note TEXT);
CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER, product TEXT, qty INTEGER,
                    price REAL);
CREATE TABLE "order" ("key" TEXT, "group" INTEGER, a INTEGER, b INTEGER, c INTEGER);
CREATE TABLE t (a INTEGER, b INTEGER, c INTEGER, id INTEGER);
CREATE TABLE countries (code TEXT);
"""

SQL_VALID = [
    "SELECT 1",
    "select 1;",
    "SELECT * FROM users",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name",
    "SELECT DISTINCT country FROM users ORDER BY country ASC NULLS LAST;",
    "SELECT ALL name AS n, email e FROM users AS u WHERE u.email LIKE '%@example.com'",
    "SELECT u.*, o.total FROM users u JOIN orders o ON o.user_id = u.id",
    ("SELECT u.name, count(o.id) AS n FROM users u LEFT OUTER JOIN orders o ON o.user_id = u.id\n"
     "GROUP BY u.id HAVING count(o.id) > 2 ORDER BY n DESC, u.name LIMIT 10 OFFSET 20"),
    "SELECT * FROM users LEFT JOIN orders ON users.id = orders.user_id WHERE orders.id IS NULL",
    "SELECT * FROM users CROSS JOIN t",
    "SELECT * FROM orders NATURAL JOIN items",
    "SELECT * FROM t INNER JOIN t AS t2 USING (a, b)",
    "SELECT * FROM users u RIGHT JOIN orders o ON o.user_id = u.id",
    "SELECT * FROM users u FULL OUTER JOIN orders o ON o.user_id = u.id",
    "SELECT a, b FROM t, users WHERE t.id = users.id",
    "SELECT name FROM users WHERE id IN (SELECT user_id FROM orders WHERE total > 100)",
    "SELECT name FROM users WHERE id NOT IN (1, 2, 3) AND country IN ('FR','DE')",
    "SELECT name FROM users WHERE EXISTS (SELECT 1 FROM orders WHERE orders.user_id = users.id)",
    "SELECT name FROM users WHERE NOT EXISTS(SELECT 1 FROM orders o WHERE o.user_id = users.id)",
    "SELECT name, (SELECT max(total) FROM orders WHERE user_id = users.id) AS best FROM users",
    "SELECT x.n FROM (SELECT count(*) AS n FROM orders) AS x",
    "SELECT * FROM (SELECT a FROM t)sub",
    ("SELECT CASE WHEN age < 13 THEN 'child' WHEN age < 20 THEN 'teen' ELSE 'adult' END AS grp "
     "FROM users"),
    "SELECT CASE status WHEN 'paid' THEN 1 ELSE 0 END FROM orders",
    "SELECT CAST(total AS INTEGER), CAST('1.5' AS REAL), CAST(x'41' AS TEXT) FROM orders",
    "SELECT CAST(age AS VARCHAR(10)), CAST(1 AS DECIMAL(10, 2)) FROM users",
    "SELECT total * 1.1 + 5 - 2 FROM orders",
    "SELECT -a, +b, ~c, a % 3, a / 2, a << 2, a >> 1, a & 1, a | 2 FROM t",
    "SELECT 'it''s', 'a' || 'b' || name, X'00ff', NULL, TRUE, false FROM users",
    "SELECT 0x1F, 1e10, .5, 3., 1.5E-3, 42 FROM t",
    "SELECT CURRENT_DATE, CURRENT_TIME, current_timestamp",
    "SELECT * FROM orders WHERE total BETWEEN 10 AND 20 AND status NOT BETWEEN 'a' AND 'b'",
    "SELECT * FROM users WHERE name GLOB 'A*' OR email NOT LIKE '%x\\_%' ESCAPE '\\'",
    "SELECT * FROM users WHERE manager_id IS NOT NULL AND age NOTNULL AND email ISNULL",
    "SELECT * FROM users WHERE manager_id NOT NULL OR age IS NULL",
    "SELECT a IS DISTINCT FROM b, a IS NOT DISTINCT FROM c FROM t",
    "SELECT a == b, a <> b, a != b, a = b, a < b, a <= b, a > b, a >= b FROM t",
    "SELECT count(*), count(DISTINCT country), group_concat(name, ', '), avg(age) FROM users",
    "SELECT coalesce(email, 'none'), ifnull(age, 0), length(name), upper(name) FROM users",
    "SELECT replace(name, 'a', 'b'), substr(name, 1, 3), round(total, 2) FROM users, orders",
    "SELECT strftime('%Y', created_at) AS y, sum(total) FROM orders GROUP BY y",
    "SELECT date('now'), datetime('now', '-1 day'), random(), abs(-5), random( ), count( * )",
    "SELECT count(DISTINCT a) FILTER (WHERE b > 0), max( a ) FILTER(WHERE c) OVER() FROM t",
    "SELECT name FROM users ORDER BY name COLLATE NOCASE DESC",
    "SELECT name FROM users WHERE name = 'Bob' COLLATE NOCASE",
    "SELECT name FROM users UNION SELECT status FROM orders",
    "SELECT id FROM users UNION ALL SELECT id FROM orders ORDER BY 1 LIMIT 5",
    "SELECT id FROM users INTERSECT SELECT user_id FROM orders EXCEPT SELECT 3",
    "WITH big AS (SELECT * FROM orders WHERE total > 100) SELECT count(*) FROM big",
    "WITH a(x) AS (SELECT 1), b AS MATERIALIZED (SELECT 2) SELECT x FROM a, b",
    ("WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < 10) "
     "SELECT x FROM cnt"),
    ("WITH RECURSIVE chain AS (\n  SELECT id, manager_id FROM users WHERE id = 1\n  UNION ALL\n"
     "  SELECT u.id, u.manager_id FROM users u JOIN chain c ON u.manager_id = c.id\n)\n"
     "SELECT * FROM chain;"),
    'SELECT "key", "group", `a`, [b] FROM "order" WHERE "group" > 1',
    'SELECT "order"."key" FROM "order"',
    "SELECT main.users.name FROM main.users",
    "SELECT * FROM users LIMIT 5, 10",
    "SELECT row_number() OVER (PARTITION BY country ORDER BY age DESC) AS rn FROM users",
    "SELECT sum(total) OVER (), rank() OVER (ORDER BY total) FROM orders",
    "SELECT count(*) FILTER (WHERE status = 'paid') FROM orders",
    "SELECT value, \"key\" FROM json_each('[1,2,3]') AS j WHERE j.value > 1",
    "SELECT data ->> '$.a', data -> 'b' FROM users",
    "VALUES (1, 2), (3, 4)",
    "SELECT * FROM (VALUES (1), (2))",
    "SELECT a FROM t WHERE NOT a = 1 AND NOT (b = 2 OR c = 3)",
    "SELECT a FROM t WHERE a IN ()",
    "SELECT name FROM users WHERE country IN countries OR country NOT IN main.countries",
    "  SELECT\n\tname\nFROM\n\tusers\n\tWHERE id=1 ;  ",
    "SeLeCt NaMe FrOm UsErS wHeRe Id=1",
    "SELECT a FROM t ORDER BY a + 1, b DESC NULLS FIRST",
    "SELECT ((a + b) * (c - 1)) / 2 FROM t",
    "SELECT * FROM (t AS x JOIN users ON x.id = users.id)",
    ("SELECT u.name, o.total, i.product FROM users u JOIN orders o ON o.user_id = u.id "
     "JOIN items i ON i.order_id = o.id WHERE i.qty > 1 AND o.status = 'paid'"),
]

SQL_INVALID = [
    "", "SELECT", "SELECT FROM users", "SELECT * FROM", "SELECTname FROM users",
    "SELECT name FROM users WHEREid = 1", "SELECT name FROM users WHERE id=1AND age=2", "SELECT name FROM users WHERE", "SELECT 1x", "SELECT 1AS x",
    "SELECT * FROM users WHERE id = 1 2", "SELECT a--b FROM t", "SELECT a - -b FROM t",
    "SELECT 'unterminated", "SELECT \"q FROM t", "SELECT * FROM users ORDER name",
    "SELECT * FROM users GROUP id", "SELECT * FROM users LIMIT", "SELECT a, FROM t",
    "SELECT a FROM t,", "SELECT a FROM t JOIN", "SELECT CASE WHEN 1 THEN 2 FROM t",
    "SELECT CAST(a) FROM t", "SELECT count(* ) FROM t WHERE", "SELECT * FROM t WHERE a IN 1",
    "SELECT * FROM t WHERE a BETWEEN 1", "SELECT * FROM t WHERE a IS", "SELECT from FROM t",
    "SELECT select", "SELECT a FROM t t2 t3", "SELECT a FROM t;;", "DELETE FROM t",
    "INSERT INTO t VALUES (1)", "SELECT x'0' FROM t", "SELECT x'zz'", "SELECT 1 UNION",
    "SELECT a FROM t ORDER BY a LIMIT 1 ORDER BY b", "SELECT a FROM t WHERE a = = 1",
    "SELECT a FROM t NATURAL JOIN users ON 1", "SELECT * FROM t WHERE a < > b",
    "SELECT a FROM t -- comment", "SELECT a FROM t /* c */", "SELECT a. FROM t",
    "WITH x AS SELECT 1 SELECT 1", "SELECT a FROM t WHERE (a = 1", "SELECT 1e FROM t",
    "SELECT 0x FROM t", "SELECT ;", "SELECT count(DISTINCT a) OVER () FROM t", "SELECT a FROM t WHERE a = 1 AND", "SELECT a b c FROM t",
]

# valid SQLite that the grammar leaves out on purpose (see the header of sql.lark)
SQL_OUTSIDE_SUBSET = [
    "SELECT*FROM t", "SELECT a FROM t WHERE(a = 1)", "SELECT a FROM t WHERE (a)AND(b)",
    "SELECT a - -b FROM t", "SELECT a FROM t -- a comment", "SELECT ? FROM t",
    "SELECT a = NOT b FROM t", "SELECT (a, b) = (1, 2) FROM t",
]


@pytest.fixture(scope="module")
def db():
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO users (id, name, data) VALUES (1, 'Ada', '{\"a\": 1}')")
    yield conn
    conn.close()


SQL_SYNTAX_ERRORS = ("syntax error", "unrecognized token", "incomplete input",
                     "should come after", "may not have an ON or USING", "unknown join type",
                     "not currently supported", "row value misused", "near \"")


def sqlite_error(conn: sqlite3.Connection, text: str) -> str | None:
    try:
        conn.execute(text).fetchmany(3)
    except sqlite3.Error as e:
        return str(e)
    return None


@pytest.mark.parametrize("text", SQL_VALID)
def test_sql_valid_corpus_runs_in_sqlite(text, db):
    assert sqlite_error(db, text) is None
    assert accepts("sql", text)
    assert_unambiguous("sql", text)


@pytest.mark.parametrize("text", SQL_INVALID)
def test_sql_invalid_corpus(text, db):
    assert not accepts("sql", text)


@pytest.mark.parametrize("text", SQL_OUTSIDE_SUBSET)
def test_sql_documented_subset_limits(text, db):
    err = sqlite_error(db, text)
    assert err is None or not any(m in err for m in SQL_SYNTAX_ERRORS)  # fine for SQLite
    assert not accepts("sql", text)


SQL_MUTATION_PIECES = list("ax1.'\"()[],+-*/<=>; `") + [
    "SELECT", "FROM", "WHERE", "AS", "AND", "NOT", "IN", "IS", "NULL", "ON", "JOIN", "BY", "ORDER",
    "(SELECT 1)", "--", "x'00'", "CASE", "END", "LIMIT", " "]


def test_sql_mutations_accepted_by_the_grammar_parse_in_sqlite(db):
    """Near misses of the corpus: whatever the grammar still accepts, SQLite must parse."""
    rng = random.Random(0)
    accepted = 0
    for _ in range(150):
        text = rng.choice(SQL_VALID)
        for _ in range(rng.randint(1, 2)):
            i = rng.randint(0, len(text))
            if rng.random() < 0.4:
                text = text[:i] + text[i + rng.randint(1, 3):]
            else:
                text = text[:i] + rng.choice(SQL_MUTATION_PIECES) + text[i:]
        if accepts("sql", text):
            accepted += 1
            err = sqlite_error(db, text)
            assert err is None or not any(m in err for m in SQL_SYNTAX_ERRORS), (text, err)
    assert accepted > 10


def test_sql_random_sentences_are_never_sqlite_syntax_errors(db):
    """Random sentences of the grammar may name unknown tables, but must parse in SQLite."""
    names = ["users", "t", "a", "b", "id", "name", "x"]
    samplers = {
        "IDENT": lambda r: r.choice(names),
        "QUOTED_IDENT": lambda r: r.choice(['"a"', '"we""ird"', "`b`", "[c]", '"order"']),
    }
    gen = SentenceGenerator(parser("sql"), samplers)
    rng = random.Random(7)
    seen = 0
    for _ in range(200):
        text = gen.generate(rng, max_depth=10)
        err = sqlite_error(db, text)
        assert err is None or not any(m in err for m in SQL_SYNTAX_ERRORS), (text, err)
        seen += err is None
    assert seen > 10  # some run outright, not only name errors


# ------------------------------------------------------------------ Python expressions

PY_VALID = [
    "x", "x.y.z", "f()", "f(1, 2)", "f(a, b=2, *args, **kwargs)", "f(*a, *b, c=1, **d, e=2)",
    "obj.method(x)[0].attr", "a[1:2]", "a[::2]", "a[:]", "a[1:2, ::3]", "a[i, j]", "a[1,]",
    "[1, 2, 3]", "[]", "[1,]", "()", "(1,)", "(1, 2)", "(1, 2,)", "{}", "{'a': 1, 'b': [2]}",
    "{1, 2}", "1 + 2 * 3 - 4 / 5 // 6 % 7", "-x ** 2", "2 ** -1", "2 ** 3 ** 2", "--1", "~+-x",
    "a < b <= c == d != e > f >= g", "a in b", "a not in b", "a is None", "a is not None",
    "not a and b or c", "x if cond else y", "a if b else c if d else e",
    "lambda: 0", "lambda x: x + 1", "lambda x, y=2: x * y", "lambda a=1, b=2: a",
    "sorted(items, key=lambda t: t[1], reverse=True)", "'single'", '"double"',
    "'esc\\n\\t\\\\ \\' \\x41 \\u00e9 \\0'", "'a' 'b'", "1.5", "1.", ".5", "1e10", "1.5E-3",
    "0", "00", "123", "True", "False", "None", "len(s) > 0 and s[0] == 'x'",
    "math.sqrt(x ** 2 + y ** 2)", "f(x)(y)", "(lambda x: x)(1)", "'x'.join(parts)",
    "d['key']['sub']", "f(a)[b].c(d=e)", "x  +  y", "f ( x )", "f( x, )",
    "x if y else lambda: z", "[a, (b, c), {d: e}]", "'café 中'", "x[-1]",
]

PY_INVALID = [
    "", " x", "x +", "f(", "f(a=1, 2)", "f(**a, *b)", "a[]", "1.real",
    "lambda x=1, y: x", "not", "a not b", "a is not", "x if y", "01", "1_000", "0x1F", "x y",
    "and", "if", "a.1", "(1", "[1, 2", "{1: 2, 3}", "'unterminated", "'a\nb'", "'\\x4'",
    "'\\N{DASH}'", "a = 1", "a ? b : c", "x.", "f(x)=1", "1 + + ", "a <> b", "[1,,2]",
    "(,)", "a if b else", "lambda x x", "x\ty", "f(a b)",
]


def py_valid(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    return True


@pytest.mark.parametrize("text", PY_VALID)
def test_python_expr_valid_corpus(text):
    assert py_valid(text)
    assert accepts("python_expr", text)
    assert_unambiguous("python_expr", text)


@pytest.mark.parametrize("text", PY_INVALID)
def test_python_expr_invalid_corpus(text):
    assert not accepts("python_expr", text)


def test_python_expr_random_sentences_parse_with_ast():
    samplers = {"NAME": lambda r: r.choice(["x", "y", "foo", "_a1", "Ifx", "notx", "match"])}
    gen = SentenceGenerator(parser("python_expr"), samplers)
    rng = random.Random(3)
    for _ in range(300):
        text = gen.generate(rng, max_depth=10)
        assert py_valid(text), repr(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="xy01.'\"()[]{},:+-*/<=>! lambdaifelsnotr", max_size=12))
def test_python_expr_accepted_strings_parse_with_ast(text):
    if accepts("python_expr", text):
        assert py_valid(text), repr(text)


# ------------------------------------------------------------------ arithmetic

ARITH_VALID = ["1", "1+2", "1 + 2", "3.14*2", "2^3^2", "-2^2", "2^-1", "(1+2)*3", "( 1 + 2 )",
               "10 / 4 - 3", "--5", "-(3)", "007", "1 - -1", "((((1))))", "1.5 ^ 2 * 3 - 4 / 5"]
ARITH_INVALID = ["", " 1", "1 ", "1+", "+1", "1 2", "1..2", ".5", "5.", "2**3", "(1", "1)",
                 "()", "1e5", "x", "1\t+ 2", "2 ^ ^ 3", "1 + * 2"]


def arith_eval(text: str) -> float:
    """Independent check: Python evaluates the same expression with ^ as **."""
    return eval(as_python(text), {"__builtins__": {}})


def as_python(text: str) -> str:
    return re.sub(r"(?<![0-9.])0+(?=[0-9])", "", text).replace("^", "**")


@pytest.mark.parametrize("text", ARITH_VALID)
def test_arithmetic_valid(text):
    assert accepts("arithmetic", text)
    assert_unambiguous("arithmetic", text)
    try:
        arith_eval(text)
    except ZeroDivisionError:
        pass


@pytest.mark.parametrize("text", ARITH_INVALID)
def test_arithmetic_invalid(text):
    assert not accepts("arithmetic", text)


def test_arithmetic_random_sentences_are_python_expressions():
    gen = SentenceGenerator(parser("arithmetic"))
    rng = random.Random(5)
    for _ in range(300):
        text = gen.generate(rng, max_depth=8)
        assert py_valid(as_python(text)), text
        assert re.fullmatch(r"[0-9.+\-*/^() ]+", text)


# ------------------------------------------------------------------ CSV

CSV_VALID = ["a", "a,b,c", "a,b\r\n1,2\r\n", "a,b\n1,2", 'x,"quoted, with comma"\n',
             '"multi\nline","say ""hi"""\r\n', ",", ",,\n1,,", '""', 'name,age\nAda,36\nBob,\n',
             "é,中\n", "a\r\nb\nc"]
CSV_INVALID = ["", "\n", "a\n\nb", "a\n\n", 'a"b', '"a"b', '"unterminated', "a\rb", '"a""',
               'a,"b"c', "a,b\n\n"]


@pytest.mark.parametrize("text", CSV_VALID)
def test_csv_valid(text):
    assert accepts("csv", text)
    assert_unambiguous("csv", text)
    list(csv.reader(io.StringIO(text, newline=""), strict=True))


@pytest.mark.parametrize("text", CSV_INVALID)
def test_csv_invalid(text):
    assert not accepts("csv", text)


def test_csv_round_trips_through_csv_module():
    rng = random.Random(11)
    for _ in range(200):
        rows = [[rng.choice(["", "a", "b c", 'q"x', "1,2", "l\nm", "é"]) for _ in range(3)]
                for _ in range(rng.randint(1, 4))]
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator=rng.choice(["\r\n", "\n"])).writerows(rows)
        text = buf.getvalue()
        if all(all(f == "" for f in row) for row in rows):
            continue
        if any(len(row) == 1 and row[0] == "" for row in rows):
            continue
        assert accepts("csv", text), repr(text)
        assert list(csv.reader(io.StringIO(text, newline=""))) == rows


# ------------------------------------------------------------------ chess SAN

SAN_VALID = ["e4", "d5", "Nf3", "exd5", "Bb5+", "O-O", "O-O-O", "e8=Q+", "gxh1=N", "Qh4#",
             "Nbd7", "R1e2", "Qh4e1", "Kxe2", "axb6", "hxg2", "Rxa8#", "c1=R", "Ke1"]
SAN_INVALID = ["", "e9", "i4", "Nf", "exg5", "e8", "e5=Q", "e4=Q", "Kbd2", "Px4", "O-O-O-O",
               "0-0", "ex", "Nf3++", "e4+#", "xe4", "Q", "nf3", "e2e4", "e1"]

SAN_RE = re.compile(
    r"(O-O(-O)?|K x?[a-h][1-8]|[QRBN]([a-h]|[1-8]|[a-h][1-8])?x?[a-h][1-8]"
    r"|([a-h]|(?P<f>[a-h])x(?P<t>[a-h]))(?P<r>[1-8])(=[QRBN])?)[+#]?".replace(" ", ""))


def san_ok(text: str) -> bool:
    m = SAN_RE.fullmatch(text)
    if not m:
        return False
    if m.group("f") and abs(ord(m.group("f")) - ord(m.group("t"))) != 1:
        return False
    if m.group("r"):
        return (m.group("r") in "18") == ("=" in text)
    return True


@pytest.mark.parametrize("text", SAN_VALID)
def test_chess_valid(text):
    assert san_ok(text) and accepts("chess_san", text)
    assert_unambiguous("chess_san", text)


@pytest.mark.parametrize("text", SAN_INVALID)
def test_chess_invalid(text):
    assert not san_ok(text) and not accepts("chess_san", text)


def test_chess_random_moves_are_well_formed():
    gen = SentenceGenerator(parser("chess_san"))
    rng = random.Random(2)
    for _ in range(300):
        assert san_ok(gen.generate(rng))


# ------------------------------------------------------------------ cron

CRON_VALID = ["* * * * *", "*/15 * * * *", "0 9 * * MON-FRI", "30 2 1,15 * *", "0 0 1 JAN *",
              "5 4 * * sun", "0 22 * * 1-5", "0-59/5 0-23/2 1-31/3 1-12/4 0-7/2", "@daily",
              "@reboot", "05 07 01 01 0", "59 23 31 12 7", "0 0,12 * jan-jun,dec mon,wed,fri",
              "0\t0 * * *"]
CRON_INVALID = ["", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *",
                "* * 32 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *", "* * * FOO *",
                "* * * * MONDAY", "@sometimes", " * * * * *", "1,,2 * * * *", "5/15 * * * *",
                "**/5 * * * *", "*-5 * * * *"]

CRON_LIMITS = [(0, 59, {}), (0, 23, {}), (1, 31, {}),
               (1, 12, {m: i + 1 for i, m in enumerate(
                   ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}),
               (0, 7, {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])})]


def cron_ok(text: str) -> bool:
    if text.startswith("@"):
        return text[1:] in ["yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly", "reboot"]
    fields = re.split(r"[ \t]+", text)
    if len(fields) != 5 or text != text.strip():
        return False
    for field, (lo, hi, names) in zip(fields, CRON_LIMITS):
        def value(v, lo=lo, hi=hi, names=names):
            if v.lower() in names:
                return True
            return v.isdigit() and len(v) <= 2 and lo <= int(v) <= hi
        m = re.fullmatch(r"\*(/[1-9][0-9]*)?", field)
        if m:
            continue
        for item in field.split(","):
            m = re.fullmatch(r"([^-/]+)(?:-([^-/]+)(/[1-9][0-9]*)?)?", item)
            if not m or not value(m.group(1)) or (m.group(2) and not value(m.group(2))):
                return False
    return True


@pytest.mark.parametrize("text", CRON_VALID)
def test_cron_valid(text):
    assert cron_ok(text) and accepts("cron", text)
    assert_unambiguous("cron", text)


@pytest.mark.parametrize("text", CRON_INVALID)
def test_cron_invalid(text):
    assert not cron_ok(text) and not accepts("cron", text)


def test_cron_random_sentences_are_well_formed():
    gen = SentenceGenerator(parser("cron"))
    rng = random.Random(4)
    for _ in range(300):
        text = gen.generate(rng)
        assert cron_ok(text), text
