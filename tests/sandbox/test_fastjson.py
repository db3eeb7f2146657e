"""fastjson, the in-jail JSON without the ``json`` package, behaves exactly as ``json`` does.

The runtime decodes every event and encodes every response with it, so any
difference from ``json.dumps``/``json.loads`` defaults would be a difference
from Lambda's own Python runtime.
"""

from __future__ import annotations

import json
import math

import pytest

from sandbox.runtime import fastjson

NESTED = {"a": [1, 2, {"b": [None, True, False, {"c": {"d": []}}]}], "e": {}, "f": [[[[[]]]]]}

VALUES = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    -(2**64) - 1,
    10**300,
    0.0,
    -0.0,
    1.5,
    -2.5e-308,
    1e308,
    5e-324,
    0.1 + 0.2,
    float("inf"),
    float("-inf"),
    "",
    "plain",
    'quote " backslash \\ slash / controls \b\f\n\r\t \x00 \x1f \x7f',
    "é ü ß 中文 ☃",
    "astral 😀 𝄞 \U0010ffff",
    "lone surrogates \ud800 \udfff \udc00\ud800",
    [],
    {},
    [[]],
    {"": {}},
    [1, "two", 3.0, None, [True], {"k": "v"}],
    {"unicode ключ": "значение", "😀": ["😀"]},
    NESTED,
    (1, 2, (3,)),
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    list(range(1000)),
    {f"k{i}": i for i in range(500)},
]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
def test_dumps_writes_what_json_dumps_writes(value):
    assert fastjson.dumps(value) == json.dumps(value)
    assert fastjson.dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))


def test_dumps_writes_nan_as_json_does():
    assert fastjson.dumps([float("nan")]) == json.dumps([float("nan")]) == "[NaN]"


def test_dumps_uses_the_default_hook_and_refuses_what_json_refuses():
    assert fastjson.dumps({"s": {1, 2}}, default=sorted) == json.dumps({"s": {1, 2}}, default=sorted)
    for bad in ({1, 2}, object(), b"bytes", {"k": 1j}, {(1, 2): "tuple key"}):
        with pytest.raises(TypeError) as ours:
            fastjson.dumps(bad)
        with pytest.raises(TypeError) as theirs:
            json.dumps(bad)
        assert str(ours.value) == str(theirs.value)


def test_dumps_refuses_a_circular_structure_as_json_does():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError) as ours:
        fastjson.dumps(loop)
    with pytest.raises(ValueError) as theirs:
        json.dumps(loop)
    assert str(ours.value) == str(theirs.value) == "Circular reference detected"


def same(a, b) -> bool:
    """Equal, NaN included, and -0.0 told from 0.0: the types and signs must match too."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


DOCUMENTS = [json.dumps(v) for v in VALUES] + [
    "NaN",
    "[NaN, Infinity, -Infinity]",
    "-0.0",
    "-0",
    "1E400",
    "-1e400",
    "123456789012345678901234567890",
    "1.0000000000000002",
    '"\\ud83d\\ude00"',
    '"\\ud800"',
    '"\\udc00\\ud800"',
    '"😀 raw astral"',
    '"\ud800 raw lone surrogate"',
    '"\\u0000\\b\\f\\n\\r\\t\\"\\\\\\/"',
    '{"dup": 1, "dup": 2}',
    " \t\n\r[1, 2] \t\n\r",
    "\n\n{}\n",
    '  "  spaced  "  ',
    "[ ]",
    "{ }",
    '{ "a" : [ 1 , { "b" : null } ] }',
    "[" * 200 + "]" * 200,
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_loads_reads_what_json_loads_reads_from_text_and_bytes(document):
    assert same(fastjson.loads(document), json.loads(document))
    raw = document.encode("utf-8", "surrogatepass")
    assert same(fastjson.loads(raw), json.loads(raw))
    assert same(fastjson.loads(bytearray(raw)), json.loads(bytearray(raw)))


BYTE_DOCUMENTS = [
    b'\xef\xbb\xbf{"utf-8 with a BOM": 1}',  # json.loads accepts a BOM on bytes (utf-8-sig)
    '{"utf-16": "é"}'.encode("utf-16"),
    '{"utf-16-le": "é"}'.encode("utf-16-le"),
    '{"utf-16-be": "é"}'.encode("utf-16-be"),
    '{"utf-32": "😀"}'.encode("utf-32"),
    '["utf-32-le"]'.encode("utf-32-le"),
    '"a"'.encode("utf-16-le"),  # valid UTF-8 too (NULs), yet json reads it as UTF-16
    b'"\xed\xa0\x80"',  # a surrogate encoded in UTF-8: json decodes it with surrogatepass
]


@pytest.mark.parametrize("raw", BYTE_DOCUMENTS, ids=range(len(BYTE_DOCUMENTS)))
def test_loads_detects_the_encoding_of_bytes_as_json_does(raw):
    assert same(fastjson.loads(raw), json.loads(raw))


INVALID = [
    "",
    " ",
    "\n",
    "[",
    "]",
    "{",
    "[1,]",
    "[1 2]",
    '{"a" 1}',
    '{"a": 1,}',
    "{'single': 1}",
    '{1: "int key"}',
    "nul",
    "True",
    "nan",
    "inf",
    "+1",
    "01",
    "1.",
    ".5",
    "1e",
    "-",
    "0x10",
    '"unterminated',
    '"bad escape \\x"',
    '"bad unicode \\u12"',
    '"raw control \x01 character"',
    '"raw newline \n in a string"',
    "[1] [2]",
    "{} extra",
    "1 2",
    '"\ufeff"x',
    "\x00",
    "[" * 5000 + "]" * 5000,  # deeper than the recursion limit: RecursionError, as json
    "9" * 5000,  # more digits than int() converts
]


@pytest.mark.parametrize("document", INVALID, ids=range(len(INVALID)))
def test_an_invalid_document_raises_what_json_raises(document):
    for data in (document, document.encode("utf-8", "surrogatepass")):
        with pytest.raises(Exception) as theirs:
            json.loads(data)
        with pytest.raises(Exception) as ours:
            fastjson.loads(data)
        assert type(ours.value) is type(theirs.value)
        assert str(ours.value) == str(theirs.value)


def test_a_bom_on_text_is_refused_with_jsons_message():
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads("\ufeff{}")
    with pytest.raises(json.JSONDecodeError) as ours:
        fastjson.loads("\ufeff{}")
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith("Unexpected UTF-8 BOM")


INVALID_BYTES = [b"\xff", b'"\xc3"', b"\xef\xbb\xbf", b"\x80[]", '"a"'.encode("utf-16-le")[:3]]


@pytest.mark.parametrize("raw", INVALID_BYTES, ids=range(len(INVALID_BYTES)))
def test_undecodable_bytes_raise_what_json_raises(raw):
    with pytest.raises(Exception) as theirs:
        json.loads(raw)
    with pytest.raises(Exception) as ours:
        fastjson.loads(raw)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("data", [None, 12, 1.5, ["[]"], memoryview(b"[]")], ids=repr)
def test_loads_refuses_what_is_not_text_or_bytes_as_json_does(data):
    with pytest.raises(TypeError) as theirs:
        json.loads(data)
    with pytest.raises(TypeError) as ours:
        fastjson.loads(data)
    assert str(ours.value) == str(theirs.value)


def test_fastjson_imports_neither_json_nor_re():
    import subprocess
    import sys

    from tests.sandbox.test_jail import PROJECT

    code = (
        "import sys; sys.path.insert(0, 'sandbox/runtime'); import fastjson; "
        "fastjson.loads(fastjson.dumps({'a': [1, 2.5, None]})); "
        "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
