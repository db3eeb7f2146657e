"""Events and responses at the edges: big, binary, not JSON."""

import json

import pytest

from sandbox import PoolError


def test_a_5_mb_event_arrives_whole(pool, make_spec):
    spec = make_spec(
        "import hashlib\ndef lambda_handler(event, context):\n"
        "    return [len(event['blob']), hashlib.sha256(event['blob'].encode()).hexdigest()]\n",
        memory_mb=512,
    )
    import hashlib

    blob = "z" * (5 * 1024 * 1024)
    result = pool.invoke(spec, {"blob": blob})
    assert result.status == "success", result.payload[:300]
    assert result.json() == [len(blob), hashlib.sha256(blob.encode()).hexdigest()]


def test_an_event_over_6_mb_is_refused_before_it_reaches_a_jail(pool, make_spec):
    with pytest.raises(ValueError, match="6 MB"):
        pool.invoke(make_spec("def lambda_handler(e, c): pass"), b"x" * (6 * 1024 * 1024 + 1))


def test_an_event_that_is_not_json_gives_unmarshal_error(pool, make_spec):
    result = pool.invoke(make_spec("def lambda_handler(event, context):\n    return 1\n"), b"{not json")
    assert result.error_type == "Runtime.UnmarshalError"
    assert result.json()["errorMessage"].startswith("Unable to unmarshal input: Expecting property name")


def test_bytes_returned_are_passed_through_unencoded(pool, make_spec):
    result = pool.invoke(make_spec("def lambda_handler(event, context):\n    return b'\\x00\\xffraw'\n"))
    assert result.status == "success"
    assert result.payload == b"\x00\xffraw"


def test_decimal_and_unicode_results_encode_as_lambda_does(pool, make_spec):
    spec = make_spec(
        "import decimal\ndef lambda_handler(event, context):\n"
        "    return {'price': decimal.Decimal('1.5'), 'name': 'café', 'echo': event}\n"
    )
    result = pool.invoke(spec, {"ü": [1, 2.5, None, True]})
    assert json.loads(result.payload) == {"price": 1.5, "name": "café", "echo": {"ü": [1, 2.5, None, True]}}
    assert b"caf\\u00e9" in result.payload  # python3.11's runtime keeps ensure_ascii


def test_a_closed_pool_refuses_calls(make_pool, make_spec):
    pool = make_pool()
    pool.close()
    with pytest.raises(PoolError, match="closed"):
        pool.invoke(make_spec("def lambda_handler(e, c): pass"))


@pytest.mark.slow
def test_twenty_calls_at_once_each_get_an_environment_and_all_succeed(pool, make_spec):
    from concurrent.futures import ThreadPoolExecutor

    spec = make_spec(
        "import time, uuid\nME = uuid.uuid4().hex\n"
        "def lambda_handler(event, context):\n    time.sleep(0.5)\n    return ME\n"
    )
    with ThreadPoolExecutor(20) as ex:
        results = list(ex.map(lambda i: pool.invoke(spec, {"i": i}), range(20)))
    assert [r.status for r in results] == ["success"] * 20
    assert len({r.environment_id for r in results}) == 20
    assert len({r.json() for r in results}) == 20
    # and a second wave is all warm
    with ThreadPoolExecutor(20) as ex:
        again = list(ex.map(lambda i: pool.invoke(spec, {"i": i}), range(20)))
    assert not any(r.cold for r in again)
