"""The per-invocation log: lines in order, bounded, each one an event."""

from sandbox import logs


def collect():
    events = []
    log = logs.InvocationLog(lambda type, **fields: events.append(fields))
    return log, events


def test_output_in_any_slicing_becomes_whole_lines_with_the_request_id():
    log, events = collect()
    log.begin("r-1")
    log.platform("START RequestId: r-1 Version: $LATEST")
    for chunk in (b"hel", b"lo\nwor", b"ld\n\xff\n", b"no newline"):
        log.output(chunk)
    log.flush()
    assert log.lines == ["START RequestId: r-1 Version: $LATEST", "hello", "world", "\ufffd", "no newline"]
    assert [e["stream"] for e in events] == ["platform", "function", "function", "function", "function"]
    assert {e["request_id"] for e in events} == {"r-1"}


def test_output_past_256_kib_is_cut_and_marked_once():
    log, _ = collect()
    log.begin("r")
    for _ in range(300):
        log.output(b"x" * 1023 + b"\n")
    assert log.truncated
    assert log.lines.count(logs.TRUNCATED) == 1 and log.lines[-1] == logs.TRUNCATED
    assert sum(len(line) + 1 for line in log.lines[:-1]) <= logs.LOG_LIMIT


def test_a_long_unfinished_line_is_not_held_back_and_lines_are_capped():
    log, _ = collect()
    log.output(b"y" * (logs.MAX_LOG_LINE + 10))  # no newline yet: emitted as it came, not lost
    assert log.lines and len(log.lines[0]) == logs.MAX_LOG_LINE + 10
    log.begin("next")
    log.output(b"\n" * (logs.MAX_LOG_LINES + 5))
    assert log.truncated and len(log.lines) == logs.MAX_LOG_LINES + 1


def test_begin_starts_a_fresh_budget():
    log, _ = collect()
    log.output(b"z" * (logs.LOG_LIMIT + 1))
    assert log.truncated
    log.begin("again")
    log.output(b"fine\n")
    assert log.lines == ["fine"] and not log.truncated
