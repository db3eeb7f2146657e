"""JSON through the C accelerator alone, without importing ``json`` (and ``re``, ``enum`` ...).

Importing the ``json`` package costs ~10 ms of a cold start here; the C scanner
and encoder it wraps cost nothing. Output matches ``json.dumps`` defaults
(``ensure_ascii``, ``", "``/``": "`` separators, NaN allowed). Any decoding
error is re-raised by the real ``json`` module, so messages are its own.
"""

import _json

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
_WHITESPACE = " \t\n\r"


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo = {}


_scan = _json.make_scanner(_Context())


def _json_loads(data):
    """The real ``json``, for what the fast path does not take: its result, or its own error."""
    import json

    return json.loads(data)


def loads(data):
    """``json.loads(data)``, through the C scanner when ``data`` is plain UTF-8 JSON."""
    if isinstance(data, str):
        text = data
    elif isinstance(data, (bytes, bytearray)):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return _json_loads(data)
    else:
        return _json_loads(data)  # json's TypeError, with its message
    start = 0
    while start < len(text) and text[start] in _WHITESPACE:
        start += 1
    try:
        value, end = _scan(text, start)
    except Exception:  # StopIteration, or an error the C scanner cannot raise without json.decoder
        # ``data``, not ``text``: on bytes json detects a UTF-8 BOM, UTF-16 and UTF-32 itself
        return _json_loads(data)
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if end != len(text):
        return _json_loads(data)
    return value


def _no_default(obj):
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def dumps(obj, default=None, separators=(", ", ": ")):
    encode = _json.make_encoder(
        {},
        default or _no_default,
        _json.encode_basestring_ascii,
        None,
        separators[1],
        separators[0],
        False,
        False,
        True,
    )
    if isinstance(obj, str):
        return _json.encode_basestring_ascii(obj)
    return "".join(encode(obj, 0))
