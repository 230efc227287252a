"""Just enough SQL lexing for the HTTP front end: where an INSERT's inline data starts, which
output format a query asks for, and what kind of statement it is. The engine parses the SQL
for real; this only finds boundaries, so it must never mis-split quoted text or comments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_HEREDOC = re.compile(rb"\$([A-Za-z0-9_]*)\$")  # $$...$$ or $tag$...$tag$: raw, maybe binary
_SPACE = b" \t\r\n\f\v"


@dataclass
class Token:
    kind: str  # "word", "quoted" (identifier), "string", "num", "punct"
    text: bytes
    start: int
    end: int


class Incomplete(Exception):
    """The text ends inside a token (an open string, quoted identifier or comment)."""


def tokens(sql: bytes, start: int = 0) -> list[Token]:
    """Lex `sql` into tokens, skipping whitespace and comments.

    Raises :class:`Incomplete` when the text ends inside a string or comment (the caller
    then reads more of the body before deciding).
    """
    return list(iter_tokens(sql, start))


def iter_tokens(sql: bytes, start: int = 0) -> Iterator[Token]:
    """The tokens of `sql` one by one: a caller that needs only the first few never lexes (or
    trips over) what follows. Raises :class:`Incomplete` only when it reaches an open token."""
    i, n = start, len(sql)
    while i < n:
        c = sql[i : i + 1]
        if c in (b" ", b"\t", b"\r", b"\n", b"\f", b"\v"):
            i += 1
        elif sql.startswith(b"--", i) or c == b"#":
            j = sql.find(b"\n", i)
            if j < 0:
                raise Incomplete
            i = j + 1
        elif sql.startswith(b"/*", i):
            j = sql.find(b"*/", i + 2)
            if j < 0:
                raise Incomplete
            i = j + 2
        elif c == b"$" and (h := _HEREDOC.match(sql, i)):
            j = sql.find(h.group(), h.end())
            if j < 0:
                raise Incomplete
            yield Token("string", sql[i : j + len(h.group())], i, j + len(h.group()))
            i = j + len(h.group())
        elif c in (b"'", b'"', b"`"):
            j = i + 1
            while True:
                if j >= n:
                    raise Incomplete
                ch = sql[j : j + 1]
                if ch == b"\\":
                    j += 2
                elif ch == c:
                    if sql[j + 1 : j + 2] == c:  # doubled quote
                        j += 2
                    else:
                        break
                else:
                    j += 1
            yield Token("string" if c == b"'" else "quoted", sql[i : j + 1], i, j + 1)
            i = j + 1
        else:
            m = _WORD.match(sql, i)
            if m:
                yield Token("word", m.group(), i, m.end())
                i = m.end()
            elif c.isdigit():
                j = i
                while j < n and (sql[j : j + 1].isalnum() or sql[j : j + 1] in (b".", b"_")):
                    j += 1
                yield Token("num", sql[i:j], i, j)
                i = j
            else:
                yield Token("punct", c, i, i + 1)
                i += 1


def tokens_if_mentions(sql: bytes, word: bytes) -> list[Token] | None:
    """The tokens of `sql` if its text mentions `word` (any case) and lexes whole, else None:
    a cheap test first, as most queries are not the ones a caller rewrites."""
    if word not in sql.lower():
        return None
    try:
        return tokens(sql)
    except Incomplete:
        return None


def ident(t: Token) -> str:
    """The name a word or quoted-identifier token stands for ('' for any other token)."""
    if t.kind == "word":
        return t.text.decode()
    if t.kind == "quoted":
        return t.text[1:-1].decode(errors="replace")
    return ""


def first_keyword(sql: bytes) -> str:
    """The statement's first keyword, upper-cased ('' if none can be found). Lexes only up to
    it: a long string literal further on (once cut at 4 KiB, which read as no keyword and made
    a read-only user's long SELECT look like a write) is never reached."""
    try:
        for t in iter_tokens(sql):
            if t.kind == "word":
                return t.text.decode().upper()
            if t.text != b"(":
                return ""
    except Incomplete:
        return ""
    return ""


@dataclass
class InsertSplit:
    """An INSERT whose data follows in the body: run `statement` with `fmt`, feed `data_at`..."""

    statement: str
    fmt: str
    data_at: int


def insert_target(statement: str) -> tuple[str | None, str] | None:
    """``INSERT INTO [TABLE] [db.]t ...`` -> (db or None for the current one, t); None for
    ``INSERT INTO FUNCTION`` or anything it cannot name."""
    toks = [t for t in tokens(statement.encode()) if t.kind != "punct" or t.text == b"."]
    words = [ident(t) for t in toks]
    i = 1
    for kw in ("INTO", "TABLE"):
        if i < len(words) and words[i].upper() == kw:
            i += 1
    if i >= len(words) or words[i].upper() == "FUNCTION":
        return None
    if i + 2 < len(toks) and toks[i + 1].text == b".":
        return words[i], words[i + 2]
    return None, words[i]


def split_insert(sql: bytes) -> InsertSplit | None:
    """For ``INSERT ... FORMAT X <data>`` or ``INSERT ... VALUES <data>`` return where the data
    starts; None for any other statement (including ``INSERT ... SELECT``).

    Raises :class:`Incomplete` if `sql` might be a prefix of such a statement whose data
    start has not been seen yet.
    """
    # Lex only the statement part: stop at FORMAT/VALUES, as data after them can be binary.
    i, n = 0, len(sql)
    depth = 0
    seen_insert = False
    while True:
        toks = _next_token(sql, i)
        if toks is None:
            if seen_insert:
                raise Incomplete
            return None
        t = toks
        i = t.end
        if not seen_insert:
            if t.kind == "word" and t.text.upper() == b"INSERT":
                seen_insert = True
                continue
            return None
        if t.kind == "punct":
            if t.text == b"(":
                depth += 1
            elif t.text == b")":
                depth -= 1
            continue
        if t.kind != "word" or depth != 0:
            continue
        kw = t.text.upper()
        if kw in (b"SELECT", b"WITH"):
            return None
        if kw == b"VALUES":
            return InsertSplit(sql[: t.start].decode(), "Values", _skip_to_data(sql, t.end, False))
        if kw == b"FORMAT":
            name = _next_token(sql, i)
            if name is None:
                raise Incomplete
            if name.kind != "word":
                return None
            if name.end >= n:
                raise Incomplete  # the name may continue
            return InsertSplit(
                sql[: t.start].decode(), name.text.decode(), _skip_to_data(sql, name.end, True)
            )


def _next_token(sql: bytes, i: int) -> Token | None:
    """The next token at or after `i` (None at the end of the text)."""
    n = len(sql)
    while i < n:
        c = sql[i : i + 1]
        if c in (b" ", b"\t", b"\r", b"\n", b"\f", b"\v"):
            i += 1
            continue
        if sql.startswith(b"--", i) or c == b"#" or sql.startswith(b"/*", i):
            end = sql.find(b"\n", i) if not sql.startswith(b"/*", i) else sql.find(b"*/", i)
            if end < 0:
                raise Incomplete
            i = end + (1 if not sql.startswith(b"/*", i) else 2)
            continue
        if c in (b"'", b'"', b"`"):
            toks = tokens(sql[: _string_end(sql, i)], i)
            return toks[0]
        m = _WORD.match(sql, i)
        if m:
            return Token("word", m.group(), i, m.end())
        return Token("punct", c, i, i + 1)
    return None


def _string_end(sql: bytes, i: int) -> int:
    q = sql[i : i + 1]
    j = i + 1
    while j < len(sql):
        ch = sql[j : j + 1]
        if ch == b"\\":
            j += 2
        elif ch == q:
            if sql[j + 1 : j + 2] == q:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise Incomplete


def _skip_to_data(sql: bytes, i: int, one_newline: bool) -> int:
    """Data starts after blanks and at most one line break following the FORMAT name
    (ClickHouse's rule); for VALUES, at the first non-blank character."""
    n = len(sql)
    if not one_newline:
        while i < n and sql[i] in _SPACE:
            i += 1
        return i
    while i < n and sql[i : i + 1] in (b" ", b"\t", b"\f"):
        i += 1
    if i < n and sql[i : i + 1] == b"\r":
        i += 1
    if i < n and sql[i : i + 1] == b"\n":
        i += 1
    return i


def _format_clauses(sql: bytes) -> list[tuple[Token, Token]] | None:
    """The top-level ``FORMAT x`` clauses of a (non-INSERT) query as (keyword, name) tokens;
    None if the text does not lex whole."""
    try:
        toks = tokens(sql)
    except Incomplete:
        return None
    depth = 0
    found = []
    for k, t in enumerate(toks):
        if t.kind == "punct":
            depth += 1 if t.text == b"(" else -1 if t.text == b")" else 0
        elif (
            t.kind == "word"
            and depth == 0
            and t.text.upper() == b"FORMAT"
            and k + 1 < len(toks)
            and toks[k + 1].kind == "word"
        ):
            found.append((t, toks[k + 1]))
    return found


def output_format(sql: bytes) -> str | None:
    """The ``FORMAT x`` a (non-INSERT) query names at its top level, if any."""
    clauses = _format_clauses(sql)
    return clauses[-1][1].text.decode() if clauses else None


def strip_format(sql: bytes) -> bytes:
    """`sql` without its top-level ``FORMAT x`` clauses (clickhouse-connect appends one), so
    that it can be wrapped (``EXPLAIN ... <sql>``) or parsed as a statement."""
    out, last = [], 0
    for kw, name in _format_clauses(sql) or []:
        out.append(sql[last : kw.start])
        last = name.end
    return b"".join(out) + sql[last:] if out else sql


def writes_outfile(sql: bytes) -> bool:
    """True if the query has ``INTO OUTFILE`` (a SELECT that writes a file on the server)."""
    try:
        toks = tokens(sql)
    except Incomplete:
        return True
    words = [t.text.upper() for t in toks if t.kind == "word"]
    return any(a == b"INTO" and b == b"OUTFILE" for a, b in zip(words, words[1:], strict=False))


#: access entities of ClickHouse's access-control SQL (CREATE/ALTER/DROP/SHOW [CREATE] ...)
_ACCESS_ENTITIES = {
    ("USER",), ("USERS",), ("ROLE",), ("ROLES",), ("ROW", "POLICY"), ("ROW", "POLICIES"),
    ("POLICY",), ("POLICIES",), ("MASKING", "POLICY"), ("QUOTA",), ("QUOTAS",),
    ("SETTINGS", "PROFILE"), ("SETTINGS", "PROFILES"), ("PROFILE",), ("PROFILES",),
    ("GRANTS",), ("ACCESS",), ("CURRENT", "ROLES"), ("ENABLED", "ROLES"),
    ("CURRENT", "QUOTA"),
}  # fmt: skip


def access_statement(sql: bytes) -> str:
    """The name of an access-control statement (``CREATE ROLE``, ``SHOW ROW POLICIES``,
    ``GRANT``...), or '' for any other statement."""
    words: list[str] = []
    try:
        for t in iter_tokens(sql):
            if t.kind != "word" or len(words) == 5:
                break
            words.append(t.text.decode().upper())
    except Incomplete:
        pass
    if not words:
        return ""
    if words[0] in ("GRANT", "REVOKE"):
        return words[0]
    if words[:2] == ["SET", "ROLE"] or words[:3] == ["SET", "DEFAULT", "ROLE"]:
        return " ".join(words[: 2 if words[1] == "ROLE" else 3])
    if words[0] not in ("CREATE", "ALTER", "DROP", "SHOW", "MOVE"):
        return ""
    rest = words[1:]
    if words[0] == "CREATE" and rest[:2] == ["OR", "REPLACE"]:
        rest = rest[2:]
    if words[0] == "SHOW" and rest[:1] == ["CREATE"]:
        rest = rest[1:]
    for n in (2, 1):
        if tuple(rest[:n]) in _ACCESS_ENTITIES:
            return " ".join(words[: len(words) - len(rest) + n])
    return ""
