"""``SHOW CREATE TABLE system.<name>``: chDB has no stored metadata for system tables (it
answers "There is no metadata of table ..."), so the server builds the statement a ClickHouse
server shows, from ``system.columns`` and ``system.tables``, as a query in the client's format.
"""

from __future__ import annotations

from flinkpulse.clickhouse import sql
from flinkpulse.clickhouse.engine import quote

# the engine's own escaping of a string literal: backslash and single quote
_LITERAL = "concat('''', replaceAll(replaceAll({x}, '\\\\', '\\\\\\\\'), '''', '\\\\'''), '''')"

_QUERY = """SELECT concat('CREATE TABLE system.', t.name, '\\n(\\n', c.cols, '\\n)\\nENGINE = ',
    t.engine, if(t.comment != '', concat('\\nCOMMENT ', {comment}), '')) AS statement
FROM (SELECT name, engine, comment FROM system.tables
      WHERE database = 'system' AND name = {name}) AS t
CROSS JOIN (SELECT arrayStringConcat(groupArray(concat('    `', replaceAll(name, '`', '\\\\`'),
      '` ', type)), ',\\n') AS cols
    FROM (SELECT name, type FROM system.columns
          WHERE database = 'system' AND table = {name} ORDER BY position)) AS c"""


def system_table(query: bytes) -> str | None:
    """The system table a ``SHOW CREATE [TABLE] system.x [FORMAT f]`` names, else None."""
    toks = sql.tokens_if_mentions(query, b"system")
    if toks is None:
        return None
    words = [t.text.decode(errors="replace").upper() if t.kind == "word" else "" for t in toks]
    i = 2
    if words[:2] != ["SHOW", "CREATE"]:
        return None
    if i < len(words) and words[i] == "TABLE":
        i += 1
    if len(toks) < i + 3 or toks[i + 1].text != b".":
        return None
    db, name = sql.ident(toks[i]), sql.ident(toks[i + 2])
    rest = words[i + 3 :]
    if db.lower() != "system" or not name or not (rest == [] or rest[:1] == ["FORMAT"]):
        return None
    return name


def statement_query(name: str) -> str:
    """The query that answers ``SHOW CREATE TABLE system.<name>`` (one row, `statement`)."""
    return _QUERY.format(name=quote(name), comment=_LITERAL.format(x="t.comment"))
