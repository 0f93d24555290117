"""The worker's Lua scripts (``worker/store/lua``): each loads with its caller's values and
compiles on a real Redis, spells no key itself, declares exactly the KEYS and ARGV it reads and
names them once at the top; the loader's errors name what is wrong and where."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from worker.send.intake import INTAKE_VALUES
from worker.store import lua
from worker.store.pulls import HOOK_VALUES
from worker.store.receipts import RECEIPT_VALUES


LUA_DIR = Path(lua.__file__).resolve().parent
SCRIPTS = sorted(path.stem for path in LUA_DIR.glob("*.lua"))
FRAGMENTS = sorted(path.name for path in (LUA_DIR / "lib").glob("*.lua"))
CALLER_VALUES: dict[str, dict[str, str]] = {
    "receipts_apply": RECEIPT_VALUES,
    "receipts_store_reply": HOOK_VALUES,
    "intake_take": INTAKE_VALUES,
}
"""The values each Python caller passes to :func:`lua.load` (none for the others)."""
SHA1_HEX = re.compile(r"[0-9a-f]{40}")
DECLARED = re.compile(r"^-- (KEYS|ARGV)\[([0-9]+)(\.\.)?\] ([a-z_]+): \S", re.MULTILINE)
"""A header line: ``-- KEYS[1] message: the message hash`` (``[3..]``: from 3 on)."""
NAMING = re.compile(r"local ([a-z_]+) = .*\b(?:KEYS|ARGV)\b.*")
INDEXED = re.compile(r"\b(KEYS|ARGV)\[([0-9]+)\]")
UNPACKED = re.compile(r"\bunpack\((KEYS|ARGV), ([0-9]+)\)")
WHOLE = re.compile(r"\b(KEYS|ARGV)\b(?!\[|, )")
ANY_READ = re.compile(r"\b(?:KEYS|ARGV)\b")
Read = tuple[str, int, bool]
"""(table, index, from that index on)."""


def loaded(name: str) -> str:
    return lua.load(name, **CALLER_VALUES.get(name, {}))


def header_and_body(text: str) -> tuple[str, list[str]]:
    """A file's leading comment (and blank) lines, and the lines after them."""
    lines = text.splitlines()
    start = 0
    while start < len(lines) and (lines[start].startswith("--") or not lines[start].strip()):
        start += 1
    return "\n".join(lines[:start]), lines[start:]


def declared(header: str) -> dict[Read, str]:
    """The KEYS/ARGV a header declares, with the name it gives each."""
    return {
        (table, int(index), bool(rest)): name
        for table, index, rest, name in DECLARED.findall(header)
    }


def reads(line: str) -> set[Read]:
    """The KEYS/ARGV entries one line of Lua reads."""
    found = {(table, int(index), False) for table, index in INDEXED.findall(line)}
    found |= {(table, int(index), True) for table, index in UNPACKED.findall(line)}
    found |= {(table, 1, True) for table in WHOLE.findall(line)}
    return found


def naming_block(body: list[str]) -> list[str]:
    """The body's first lines, each naming one KEYS/ARGV entry (``local message = KEYS[1]``)."""
    block = []
    for line in body:
        if not NAMING.fullmatch(line):
            break
        block.append(line)
    return block


def test_every_script_is_found() -> None:
    assert len(SCRIPTS) == 27
    assert "ledger_claim" in SCRIPTS
    assert FRAGMENTS == [
        "apply.lua",
        "callbacks.lua",
        "final_event.lua",
        "lookup.lua",
        "now.lua",
        "requeue.lua",
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_loads_with_its_callers_values_and_compiles(redis: Redis, name: str) -> None:
    source = loaded(name)

    assert "{{" not in source
    assert "-- include:" not in source
    assert SHA1_HEX.fullmatch(redis.script_load(source))


@pytest.mark.parametrize("path", [*(f"{n}.lua" for n in SCRIPTS), *(f"lib/{f}" for f in FRAGMENTS)])
def test_no_lua_file_spells_a_key_prefix(path: str) -> None:
    text = (LUA_DIR / path).read_text(encoding="utf-8")

    assert [bad for bad in ("rq:", "smsq:", "smsq-") if bad in text] == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_header_declares_exactly_what_the_body_reads(name: str) -> None:
    header, body = header_and_body((LUA_DIR / f"{name}.lua").read_text(encoding="utf-8"))
    declarations = declared(header)
    block = naming_block(body)
    named = {
        read: NAMING.fullmatch(line).group(1)  # type: ignore[union-attr]
        for line in block
        for read in reads(line)
    }

    assert declarations, "the header declares no KEYS or ARGV"
    assert all(len(reads(line)) == 1 for line in block), "one entry named per line"
    assert set(named) == set(declarations)
    assert named == declarations, "each local is named as its header line says"
    assert [line for line in body[len(block) :] if ANY_READ.search(line)] == []


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_a_fragment_reads_no_keys_or_argv(fragment: str) -> None:
    text = (LUA_DIR / "lib" / fragment).read_text(encoding="utf-8")
    _, body = header_and_body(text)

    assert [line for line in body if ANY_READ.search(line)] == []


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_fragment_is_included_at_most_once(name: str) -> None:
    source = loaded(name)
    first_lines = {
        f: (LUA_DIR / "lib" / f).read_text(encoding="utf-8").splitlines()[0] for f in FRAGMENTS
    }

    assert {
        f: source.count(line) for f, line in first_lines.items() if source.count(line) > 1
    } == {}


def test_the_ledger_scripts_include_the_shared_fragments_once() -> None:
    source = lua.load("ledger_claim")

    assert source.count("local function redis_now()") == 1
    assert source.count("local function enqueue_callback(") == 1
    assert source.count("local function apply(") == 1
    assert "redis.call('LTRIM', wake_key, 0, 63)" in source


def test_placeholders_are_the_producers_constants() -> None:
    assert lua.PLACEHOLDERS["RQ_JOB_PREFIX"] == "rq:job:"
    assert lua.PLACEHOLDERS["RQ_QUEUE_PREFIX"] == "rq:queue:"
    assert lua.PLACEHOLDERS["JOB_ID_PREFIX"] == "smsq-"
    assert lua.PLACEHOLDERS["LANE_QUEUE_PREFIX"] == "smsq-"
    assert lua.PLACEHOLDERS["MESSAGE_PREFIX"] == "smsq:msg:"
    assert lua.PLACEHOLDERS["WAKE_TOKENS_LAST"] == "63"
    assert lua.PLACEHOLDERS["EVENT_FINAL"] == "message.final"


# The loader's errors, on the real scripts and on scripts written for the test.


def test_a_placeholder_without_a_value_is_refused() -> None:
    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("receipts_apply")

    assert str(raised.value) == "receipts_apply.lua: no value for {{FINAL_STATUSES_JSON}}"


def test_a_value_the_script_does_not_use_is_refused() -> None:
    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("ledger_claim", EXTRA="1")

    assert str(raised.value) == "ledger_claim.lua: value EXTRA is not used by the script"


def test_a_value_named_like_a_shared_placeholder_is_refused() -> None:
    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("ledger_claim", RQ_JOB_PREFIX="x:")

    assert str(raised.value) == "ledger_claim.lua: {{RQ_JOB_PREFIX}} is shared, it cannot be passed"


def test_an_unsafe_json_value_is_refused() -> None:
    with pytest.raises(lua.UnsafeValueError) as raised:
        lua.load("receipts_apply", FINAL_STATUSES_JSON='{"1": "it\'s"}', STATUS_OUTCOMES_JSON="{}")

    assert str(raised.value) == (
        'receipts_apply.lua: unsafe value for {{FINAL_STATUSES_JSON}}: \'{"1": "it\\\'s"}\' '
        "(plain values hold only letters, digits and _ . : -; *_JSON values are JSON without ', "
        "\\, a line break or ]])"
    )


def test_a_value_that_is_not_json_is_refused() -> None:
    with pytest.raises(
        lua.UnsafeValueError,
        match=re.escape(
            "receipts_apply.lua: unsafe value for {{STATUS_OUTCOMES_JSON}}: '{1: 2}' ("
        ),
    ):
        lua.load("receipts_apply", FINAL_STATUSES_JSON="{}", STATUS_OUTCOMES_JSON="{1: 2}")


def test_an_unknown_script_is_refused() -> None:
    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("ledger_nope")

    assert str(raised.value) == "no Lua script ledger_nope.lua in worker.store.lua"


def test_a_name_that_is_not_a_script_name_is_refused() -> None:
    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("lib/now")

    assert str(raised.value) == "'lib/now' is not a script name (lowercase letters, digits, _)"


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A scripts folder of the test's own, read by the loader instead of the package's."""
    (tmp_path / "lib").mkdir()
    monkeypatch.setattr(lua, "files", lambda _package: tmp_path)
    lua.load.cache_clear()
    yield tmp_path
    lua.load.cache_clear()


def write(folder: Path, path: str, text: str) -> None:
    (folder / path).write_text(text, encoding="utf-8")


def test_an_unsafe_plain_value_is_refused(scripts: Path) -> None:
    write(scripts, "t_quote.lua", "return '{{WHO}}'\n")

    with pytest.raises(lua.UnsafeValueError) as raised:
        lua.load("t_quote", WHO="it's")

    assert str(raised.value).startswith('t_quote.lua: unsafe value for {{WHO}}: "it\'s" (')
    assert lua.load("t_quote", WHO="everyone") == "return 'everyone'\n"


def test_includes_are_recursive_and_each_fragment_comes_once(scripts: Path) -> None:
    write(scripts, "lib/a.lua", "-- a\n-- include: lib/b.lua\nlocal a = b .. '{{X}}'\n")
    write(scripts, "lib/b.lua", "-- b\nlocal b = '{{EVENT_FINAL}}'\n")
    write(scripts, "t_main.lua", "-- include: lib/b.lua\n-- include: lib/a.lua\nreturn a\n")

    assert lua.load("t_main", X="x") == (
        "-- b\nlocal b = 'message.final'\n"
        "-- a\n-- lib/b.lua: included above\nlocal a = b .. 'x'\n"
        "return a\n"
    )


def test_a_missing_value_in_a_fragment_names_both_files(scripts: Path) -> None:
    write(scripts, "lib/a.lua", "local a = '{{NOPE}}'\n")
    write(scripts, "t_main.lua", "-- include: lib/a.lua\nreturn a\n")

    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("t_main")

    assert str(raised.value) == "lib/a.lua (included by t_main.lua): no value for {{NOPE}}"


def test_an_unknown_fragment_is_refused(scripts: Path) -> None:
    write(scripts, "t_main.lua", "-- include: lib/nope.lua\nreturn 1\n")

    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("t_main")

    assert str(raised.value) == "t_main.lua includes lib/nope.lua, which does not exist"


def test_an_include_outside_lib_is_refused(scripts: Path) -> None:
    write(scripts, "t_main.lua", "-- include: ../secret.lua\nreturn 1\n")

    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("t_main")

    assert str(raised.value) == (
        "t_main.lua: bad include '-- include: ../secret.lua' "
        "(expected '-- include: lib/<name>.lua')"
    )


def test_a_malformed_placeholder_is_refused(scripts: Path) -> None:
    write(scripts, "t_main.lua", "return '{{lower}}'\n")

    with pytest.raises(lua.LuaScriptError) as raised:
        lua.load("t_main")

    assert str(raised.value) == 't_main.lua: malformed placeholder "{{lower}}\'\\n"'
