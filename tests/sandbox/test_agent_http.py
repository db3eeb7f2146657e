"""The agent's HTTP/1.1 layer on bytes alone: parsing, refusals, 100-continue, pipelining, bounds.

No jail: ``sandbox.runtime.http`` sees no socket, and the agent's own use of it (reading,
flushing, stopping over the output bound) is driven here over a socketpair.
"""

import json
import socket

import pytest

from sandbox.runtime import agent as agent_mod
from sandbox.runtime import http

NEXT = "/2018-06-01/runtime/invocation/next"
RESPONSE = "/2018-06-01/runtime/invocation/r1/response"


def request(method="POST", path=RESPONSE, body=b"", headers=None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1:9001"]
    if headers is None:
        headers = {"Content-Length": str(len(body))}
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def fed(data: bytes) -> http.Connection:
    conn = http.Connection()
    conn.feed(data)
    return conn


def drain(conn: http.Connection) -> list:
    """Every item ``next`` has now, in order."""
    items = []
    while (item := conn.next()) is not None:
        items.append(item)
    return items


# -- requests -------------------------------------------------------------------


def test_a_request_comes_out_with_its_method_path_headers_and_body():
    conn = fed(request(body=b'{"ok": 1}'))
    assert conn.next() == (
        "POST",
        RESPONSE,
        {"host": "127.0.0.1:9001", "content-length": "9"},
        b'{"ok": 1}',
    )
    assert conn.next() is None
    assert conn.inbuf == b"" and conn.outbuf == b""


def test_a_request_without_content_length_has_an_empty_body():
    conn = fed(request("GET", NEXT, headers={}))
    assert conn.next() == ("GET", NEXT, {"host": "127.0.0.1:9001"}, b"")


def test_a_body_fed_one_byte_at_a_time_comes_out_whole_once():
    body = bytes(range(256)) * 4
    conn = http.Connection()
    got = []
    for i, byte in enumerate(request(body=body)):
        conn.feed(bytes([byte]))
        item = conn.next()
        if item is not None:
            got.append((i, item))
    assert len(got) == 1
    position, (method, path, _, received) = got[0]
    assert position == len(request(body=body)) - 1  # not a byte before the last
    assert (method, path, received) == ("POST", RESPONSE, body)


def test_two_pipelined_requests_in_one_feed_come_out_in_order():
    conn = fed(request(body=b"first") + request("GET", NEXT, headers={}) + request(body=b"third"))
    items = drain(conn)
    assert [(m, p, b) for m, p, _, b in items] == [
        ("POST", RESPONSE, b"first"),
        ("GET", NEXT, b""),
        ("POST", RESPONSE, b"third"),
    ]
    assert conn.inbuf == b""


def test_a_request_split_after_its_head_waits_for_the_rest_of_its_body():
    whole = request(body=b"0123456789")
    conn = fed(whole[:-4])
    assert conn.next() is None
    conn.feed(whole[-4:] + request(body=b"next")[:5])  # the next request starts in the same feed
    assert conn.next()[3] == b"0123456789"
    assert conn.next() is None
    conn.feed(request(body=b"next")[5:])
    assert conn.next()[3] == b"next"


def test_header_names_are_case_insensitive():
    raw = (
        b"POST " + RESPONSE.encode() + b" HTTP/1.1\r\n"
        b"CONTENT-LENGTH: 3\r\n"
        b"lambda-RUNTIME-function-error-type:  Function.Oops \r\n"
        b"Content-Type: text/plain\r\n\r\nabcEXTRA"
    )
    method, path, headers, body = fed(raw).next()
    assert body == b"abc"
    assert headers == {
        "content-length": "3",
        "lambda-runtime-function-error-type": "Function.Oops",
        "content-type": "text/plain",
    }


def test_the_query_string_stays_on_the_path_for_the_router_to_cut():
    assert fed(request("GET", NEXT + "?x=1", headers={})).next()[1] == NEXT + "?x=1"


# -- 100-continue ---------------------------------------------------------------


def test_expect_100_continue_is_answered_before_the_body_is_sent_then_the_final_answer_follows():
    conn = fed(request(headers={"Content-Length": "5", "Expect": "100-continue"}))
    assert conn.next() is None  # no body yet
    assert conn.outbuf == http.CONTINUE  # the client may now send it
    del conn.outbuf[:]
    conn.feed(b"hello")
    assert conn.next()[3] == b"hello"
    assert conn.outbuf == b""  # one interim answer, not two
    conn.write(202, b'{"status":"OK"}', "application/json")
    assert conn.outbuf.startswith(b"HTTP/1.1 202 Accepted\r\n")


def test_expect_100_continue_matches_any_case_and_the_interim_answer_precedes_the_final_one():
    conn = fed(request(body=b"hi", headers={"content-length": "2", "EXPECT": "100-Continue"}) + b"hi")
    assert conn.next()[3] == b"hi"
    conn.write(202, b"{}", "application/json")
    assert conn.outbuf.startswith(http.CONTINUE + b"HTTP/1.1 202 Accepted\r\n")


# -- refusals -------------------------------------------------------------------


def assert_refused(item, status: int, message: str, close: bool = True) -> None:
    assert isinstance(item, http.Refusal), item
    assert (item.status, item.body["errorMessage"], item.close) == (status, message, close)


def test_a_chunked_body_is_refused_with_411_and_the_connection_closed():
    conn = fed(request(headers={"Transfer-Encoding": "Chunked"}) + b"5\r\nhello\r\n0\r\n\r\n")
    assert_refused(conn.next(), 411, "chunked bodies are not supported")
    assert conn.close_after_write
    assert conn.next() is None  # the chunk lines are not taken for a request


def test_a_head_over_64_kib_without_its_end_is_refused_with_431_and_closed():
    conn = fed(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * http.MAX_REQUEST_HEAD)
    assert_refused(conn.next(), 431, "request head too large")
    assert conn.close_after_write and conn.next() is None


def test_a_head_over_64_kib_is_refused_even_when_its_end_arrives_in_the_same_feed():
    conn = fed(request(headers={"X-Big": "a" * http.MAX_REQUEST_HEAD}))
    assert_refused(conn.next(), 431, "request head too large")


def head_of(size: int) -> bytes:
    """A GET whose head, without its blank line, is ``size`` bytes."""
    start = request("GET", NEXT, headers={"X-Big": ""})
    raw = request("GET", NEXT, headers={"X-Big": "a" * (size - len(start) + 4)})
    assert raw.find(b"\r\n\r\n") == size
    return raw


def test_a_head_of_exactly_64_kib_is_accepted_even_when_its_blank_line_comes_last():
    raw = head_of(http.MAX_REQUEST_HEAD)
    conn = fed(raw[:-1])
    assert conn.next() is None  # waiting for the end, not refused
    conn.feed(raw[-1:])
    assert len(conn.next()[2]["x-big"]) > 60000


@pytest.mark.parametrize("cut", [1, 0])
def test_a_head_one_byte_over_64_kib_is_refused_however_it_is_cut(cut):
    raw = head_of(http.MAX_REQUEST_HEAD + 1)
    conn = fed(raw[: len(raw) - cut])
    assert_refused(conn.next(), 431, "request head too large")


@pytest.mark.parametrize("value", ["abc", "-1", "", "1.5"])
def test_a_bad_or_negative_content_length_is_refused_with_400_and_closed(value):
    conn = fed(request(headers={"Content-Length": value}) + b"x")
    assert_refused(conn.next(), 400, "bad Content-Length")
    assert conn.close_after_write


@pytest.mark.parametrize("line", [b"GET /x", b"GET /x HTTP/1.1 more", b"GARBAGE", b""])
def test_a_request_line_without_exactly_three_parts_is_refused_with_400_and_closed(line):
    conn = fed(line + b"\r\nContent-Length: 0\r\n\r\n" + request("GET", NEXT, headers={}))
    assert_refused(conn.next(), 400, "malformed request line")
    assert conn.next() is None  # what follows is not trusted


def test_an_oversized_body_announced_with_expect_is_refused_with_rapids_413_at_once_and_closed():
    length = http.MAX_PAYLOAD + 1
    conn = fed(request(headers={"Content-Length": str(length), "Expect": "100-continue"}))
    item = conn.next()
    assert_refused(item, 413, "Exceeded maximum allowed payload size (6291556 bytes).")
    assert item.body["errorType"] == "RequestEntityTooLarge"
    assert (item.method, item.path, item.length) == ("POST", RESPONSE, length)
    assert http.CONTINUE not in conn.outbuf  # the client is told not to send it
    assert conn.close_after_write


def test_an_oversized_body_without_expect_is_read_and_thrown_away_then_refused_and_the_connection_goes_on():
    length = http.MAX_PAYLOAD + 1
    conn = fed(request(headers={"Content-Length": str(length)}))
    assert conn.next() is None
    chunk = b"x" * (1 << 20)
    sent = 0
    while sent + len(chunk) < length:
        conn.feed(chunk)
        sent += len(chunk)
        assert conn.next() is None
        assert len(conn.inbuf) == 0  # thrown away as it comes, not kept
    conn.feed(b"x" * (length - sent) + request(body=b"after"))
    item = conn.next()
    assert_refused(item, 413, "Exceeded maximum allowed payload size (6291556 bytes).", close=False)
    assert item.body["errorType"] == "RequestEntityTooLarge"
    assert (item.path, item.length) == (RESPONSE, length)
    assert not conn.close_after_write
    assert conn.next()[3] == b"after"


def test_a_body_of_exactly_the_payload_limit_is_accepted():
    body = b"y" * http.MAX_PAYLOAD
    assert fed(request(body=body)).next()[3] == body


# -- responses ------------------------------------------------------------------


def test_a_response_renders_its_status_headers_and_body():
    raw = http.render(200, b"{}", "application/json", [("Lambda-Runtime-Aws-Request-Id", "r1")])
    assert raw == (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        b"Lambda-Runtime-Aws-Request-Id: r1\r\n\r\n{}"
    )


def test_a_closing_response_says_so_and_marks_the_connection():
    conn = http.Connection()
    conn.write(431, b"{}", "application/json", close=True)
    assert conn.close_after_write
    assert conn.outbuf.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"\r\nConnection: close\r\n\r\n" in conn.outbuf


def test_an_unknown_status_still_renders():
    assert http.render(599, b"", "text/plain").startswith(b"HTTP/1.1 599 Unknown\r\n")


# -- the output bound -----------------------------------------------------------


def test_no_request_is_parsed_while_the_unsent_output_is_over_its_bound_and_parsing_resumes_once_it_drains():
    conn = fed(request(body=b"1") + request(body=b"2") + request(body=b"3"))
    answer = b"z" * (http.MAX_OUTPUT // 2 + 1)
    assert conn.next()[3] == b"1"
    conn.write(200, answer, "application/octet-stream")
    assert not conn.blocked()
    assert conn.next()[3] == b"2"
    conn.write(200, answer, "application/octet-stream")
    assert conn.blocked()
    assert conn.next() is None and conn.stalled  # request 3 is there but held back
    del conn.outbuf[: len(conn.outbuf) - 10]  # most of it sent
    assert conn.next()[3] == b"3"
    assert not conn.stalled


class AgentUnderTest(agent_mod.Agent):
    """The agent's connection handling alone: no host channel, no listeners, no runtime."""

    def __init__(self) -> None:  # not Agent.__init__: it binds the jail's sockets
        self.sel = agent_mod.Selector()
        self.conns = {}
        self.parked = None

    def serve(self, client: socket.socket, server: socket.socket) -> agent_mod.Connection:
        """Take ``server`` as a runtime's connection, as ``on_accept`` would; both ends non-blocking."""
        server.setblocking(False)
        client.setblocking(False)
        conn = agent_mod.Connection(server)
        self.conns[server.fileno()] = conn
        self.sel.register(server, agent_mod.EVENT_READ, conn)
        return conn

    def pump(self) -> None:
        """One pass of the agent's loop, for connections only."""
        for key, mask in self.sel.select(0):
            conn = key.data
            if conn.sock.fileno() < 0:
                continue
            if mask & agent_mod.EVENT_WRITE:
                self.flush(conn)
            if mask & agent_mod.EVENT_READ and conn.sock.fileno() >= 0:
                self.on_readable(conn)


def test_the_agent_stops_reading_a_client_that_pipelines_without_reading_and_answers_all_once_it_reads():
    agent = AgentUnderTest()
    client, server = socket.socketpair()
    with client, server:
        conn = agent.serve(client, server)
        # Each request is answered 404 with its ~8 KB path echoed back: ~3.2 MB of answers in all.
        count = 400
        one = request("GET", "/" + "p" * 8000, headers={})
        pending = one * count
        for _ in range(2000):
            try:
                pending = pending[client.send(pending) :]
            except BlockingIOError:
                pass
            agent.pump()
            if not pending:
                break
        assert pending, "the agent read everything although nobody took its answers"
        assert conn.blocked() and conn.stalled
        assert len(conn.outbuf) <= http.MAX_OUTPUT + len(one) + 1024  # over the bound by one answer at most
        assert len(server.recv(1, socket.MSG_PEEK)) == 1  # requests wait in the socket ...
        held = len(conn.inbuf)
        for _ in range(20):
            agent.pump()
        assert len(conn.inbuf) == held  # ... and the agent does not take them
        received = bytearray()
        for _ in range(20000):
            try:
                pending = pending[client.send(pending) :] if pending else pending
            except BlockingIOError:
                pass
            try:
                received += client.recv(1 << 20)
            except BlockingIOError:
                pass
            agent.pump()
            if not pending and received.count(b"HTTP/1.1 404 Not Found\r\n") == count:
                break
        assert received.count(b"HTTP/1.1 404 Not Found\r\n") == count
        assert not conn.blocked() and not conn.stalled and conn.inbuf == b""
        head, rest = bytes(received).split(b"\r\n\r\n", 1)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        assert json.loads(rest[:length])["errorMessage"] == "no route for GET /" + "p" * 8000
        assert len(received) == count * (len(head) + 4 + length)


def test_requests_the_agent_held_back_are_answered_once_the_client_reads_with_nothing_more_sent():
    agent = AgentUnderTest()
    client, server = socket.socketpair()
    with client, server:
        conn = agent.serve(client, server)
        count = 300
        conn.feed(request("GET", "/" + "q" * 8000, headers={}) * count)  # all read already
        agent.parse(conn)
        assert conn.stalled and conn.inbuf  # requests left, held back
        received = bytearray()
        for _ in range(20000):
            try:
                received += client.recv(1 << 20)
            except BlockingIOError:
                pass
            agent.pump()  # only the socket turning writable can wake the agent now
            if received.count(b"HTTP/1.1 404 Not Found\r\n") == count:
                break
        assert received.count(b"HTTP/1.1 404 Not Found\r\n") == count
        assert conn.inbuf == b"" and not conn.stalled
