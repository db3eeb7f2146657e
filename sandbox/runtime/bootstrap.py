"""LambdaLab's Python runtime: a Runtime API client that behaves like awslambdaric.

The agent imports this module before it forks, so a new runtime costs a fork,
not an interpreter start. Error bodies, fault types and log lines follow
awslambdaric 4.x (text log format). Only the standard library is used.
"""

# Only cheap imports: json, logging, traceback and socket would add ~25 ms to
# every cold start here. logging is configured when user code imports it;
# stack traces are formatted without traceback (see _source_line).
import _socket as socket
import importlib  # 0.3 ms, paid once in the agent before it forks: tracebacks start where Lambda's do
import os
import sys
import time

from . import contract, fastjson, snapshot

API_ADDR = (contract.API_HOST, contract.API_PORT)
API_UNIX = contract.API_UNIX  # the agent's cheaper door to the same API
PREFIX = contract.API_PREFIX
ERROR_LOG_LINE_TERMINATE = "\r"
ERROR_LOG_IDENT = "\u00a0"
UNHANDLED_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. "
    "However, in rare cases, a Lambda runtime update can cause unexpected function behavior. "
    "For functions using managed runtimes, runtime updates can be triggered by a function change, "
    "or can be applied automatically. To determine if the runtime has been updated, check the "
    "runtime version in the INIT_START log entry. If this error correlates with a change in the "
    "runtime version, you may be able to mitigate this error by temporarily rolling back to the "
    "previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html\r"
)

_current_request_id = None
# The handler's module, and our end of the agent's state socket: a safe description of the
# module goes to the agent before each freeze, for the State inspector (snapshot.py).
_module = None
_state = None
# Lambda's own variables, read once: they are fixed for the environment's life.
_STATIC = {}


class FaultException(Exception):
    MARSHAL_ERROR = "Runtime.MarshalError"
    UNMARSHAL_ERROR = "Runtime.UnmarshalError"
    USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
    HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
    IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
    BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
    MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
    LAMBDA_CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"

    def __init__(self, exception_type, msg, trace=None):
        super().__init__(msg)
        self.msg = msg
        self.exception_type = exception_type
        self.trace = trace


class RuntimeClient:
    """A keep-alive HTTP/1.1 client for the Runtime API, on a plain socket."""

    def __init__(self, addr=API_ADDR):
        self.addr = addr
        self.sock = None
        self.buf = b""
        self.next_sent = False

    NEXT = (
        f"GET {PREFIX}/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nContent-Length: 0\r\n\r\n".encode()
    )

    def request(self, method, path, body=b"", headers=(), then_next=False):
        """One request; with ``then_next``, /next is pipelined behind it and its
        answer kept for ``next()`` (one wake-up of the agent instead of two)."""
        head = [f"{method} {PREFIX}{path} HTTP/1.1", "Host: 127.0.0.1:9001"]
        head += [f"{k}: {v}" for k, v in headers]
        head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        if then_next:
            data += self.NEXT
        # A kept-alive connection may have been closed by the agent: retry once on a new one.
        for attempt in (1, 2):
            fresh = self.sock is None
            try:
                if fresh:
                    self.sock = self._connect()
                    self.buf = b""
                self.sock.sendall(data)
                answer = self._read_response()
                self.next_sent = then_next and self.sock is not None
                return answer
            except OSError:
                self.close()
                if fresh or attempt == 2:
                    raise

    def _connect(self):
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(API_UNIX)
            return sock
        except OSError:
            sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.connect(self.addr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read_response(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = self.sock.recv(max(65536, length - len(rest)))
            if not chunk:
                raise ConnectionError("Runtime API closed the connection")
            rest += chunk
        self.buf = rest[length:]
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, rest[:length]

    def next(self):
        if self.next_sent:  # pipelined behind the last response: only its answer is awaited
            self.next_sent = False
            status, headers, body = self._read_response()
        else:
            status, headers, body = self.request("GET", "/invocation/next")
        if status != 200:
            raise ConnectionError(f"/next answered {status}: {body[:200]!r}")
        return headers, body

    def post_result(self, request_id, body, content_type):
        return self.request(
            "POST",
            f"/invocation/{request_id}/response",
            body,
            [("Content-Type", content_type)],
            then_next=True,
        )

    def post_error(self, request_id, error):
        return self.request(
            "POST",
            f"/invocation/{request_id}/error",
            to_json(error).encode(),
            [("Content-Type", "application/json")],
            then_next=True,
        )

    def post_init_error(self, error):
        return self.request(
            "POST",
            "/init/error",
            to_json(error).encode(),
            [("Lambda-Runtime-Function-Error-Type", error["errorType"])],
        )


# A Decimal is written as its own digits, as awslambdaric's encoder does (simplejson's RawJSON):
# the C encoder cannot emit raw text, so each Decimal stands in as a unique string, replaced after.
_DECIMAL_TAG = "\x00lambdalab-decimal-" + os.urandom(6).hex() + "-"


def to_json(obj):
    decimal = sys.modules.get("decimal")  # a Decimal can only exist if decimal was imported
    if decimal is None:
        return fastjson.dumps(obj)
    raw = []

    def default(value):
        if isinstance(value, decimal.Decimal):
            if value.is_nan():
                return float("nan")  # NaN, as awslambdaric writes it
            raw.append(str(value))
            return f"{_DECIMAL_TAG}{len(raw) - 1}\x00"
        raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")

    text = fastjson.dumps(obj, default=default)
    if not raw:
        return text
    quoted = fastjson.dumps(_DECIMAL_TAG)[:-1]  # the tag as the encoder writes it, without its closing quote
    for i, digits in enumerate(raw):
        text = text.replace(f'{quoted}{i}\\u0000"', digits, 1)
    return text


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]


class Client:
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


class LambdaContext:
    """The context object, field for field as awslambdaric builds it."""

    def __init__(self, request_id, client_context, identity, deadline_ms, arn):
        self.aws_request_id = request_id
        self.log_group_name = _STATIC["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = _STATIC["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.function_name = _STATIC["AWS_LAMBDA_FUNCTION_NAME"]
        self.memory_limit_in_mb = _STATIC["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.function_version = _STATIC["AWS_LAMBDA_FUNCTION_VERSION"]
        self.invoked_function_arn = arn
        self.tenant_id = None
        self._deadline_ms = deadline_ms
        self.client_context = None
        if client_context:
            cc = ClientContext()
            cc.custom = client_context.get("custom")
            cc.env = client_context.get("env")
            cc.client = None
            if client_context.get("client"):
                c = Client()
                src = client_context["client"]
                c.installation_id = src.get("installation_id")
                c.app_title = src.get("app_title")
                c.app_version_name = src.get("app_version_name")
                c.app_version_code = src.get("app_version_code")
                c.app_package_name = src.get("app_package_name")
                cc.client = c
            self.client_context = cc
        self.identity = CognitoIdentity()
        self.identity.cognito_identity_id = (identity or {}).get("cognitoIdentityId")
        self.identity.cognito_identity_pool_id = (identity or {}).get("cognitoIdentityPoolId")

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(round(time.time() * 1000)))

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"function_name={self.function_name},"
            f"memory_limit_in_mb={self.memory_limit_in_mb},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


def make_error(message, error_type, stack_trace, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": stack_trace or [],
    }


def log_error(error):
    description = "[ERROR]"
    if error.get("errorType"):
        description += " " + error["errorType"]
    if error.get("errorMessage"):
        if error.get("errorType"):
            description += ":"
        description += " " + error["errorMessage"]
    lines = [description]
    stack = error.get("stackTrace")
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append(ERROR_LOG_IDENT * (len(line) - len(stripped)) + stripped)
    sys.stdout.write(ERROR_LOG_LINE_TERMINATE.join(lines) + "\n")


def _source_line(filename, lineno, cache={}):  # noqa: B006 - a deliberate per-process cache
    """The stripped source line, as ``traceback`` shows it (without importing it:
    traceback pulls in linecache, tokenize and re, ~10 ms of a 128 MB function's CPU)."""
    if filename not in cache:
        try:
            with open(filename, encoding="utf-8", errors="replace") as f:
                cache[filename] = f.read().splitlines()
        except OSError:
            cache[filename] = []
    lines = cache[filename]
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _user_frames(tb):
    """(filename, line number, function, source) per frame, from the first outside the runtime."""
    frames = []
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(
            (code.co_filename, tb.tb_lineno, code.co_name, _source_line(code.co_filename, tb.tb_lineno))
        )
        tb = tb.tb_next
    for i, frame in enumerate(frames):
        if not frame[0].startswith("/var/runtime/"):
            return frames[i:]
    return []


def format_frames(frames):
    """``traceback.format_list`` of those tuples, the form Lambda's stackTrace takes."""
    out = []
    for filename, lineno, name, line in frames:
        entry = f'  File "{filename}", line {lineno}, in {name}\n'
        if line:
            entry += f"    {line}\n"
        out.append(entry)
    return out


def fault_from_exception(exc, request_id=None):
    return make_error(
        str(exc), type(exc).__name__, format_frames(_user_frames(exc.__traceback__)), request_id
    )


def load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as e:
        raise FaultException(FaultException.MALFORMED_HANDLER_NAME, f"Bad handler '{handler}': {e}") from None
    try:
        if modname.split(".")[0] in sys.builtin_module_names:
            raise FaultException(
                FaultException.BUILT_IN_MODULE_CONFLICT,
                f"Cannot use built-in module {modname} as a handler module",
            )
        name = modname.replace("/", ".")
        module = importlib.import_module(name)
    except ImportError as e:
        raise FaultException(
            FaultException.IMPORT_MODULE_ERROR, f"Unable to import module '{modname}': {e}"
        ) from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise FaultException(
            FaultException.USER_CODE_SYNTAX_ERROR,
            f"Syntax error in module '{modname}': {e}",
            trace,
        ) from None
    global _module
    _module = module
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultException(
            FaultException.HANDLER_NOT_FOUND, f"Handler '{fname}' missing on module '{modname}'"
        ) from None


class _Unbuffered:
    def __init__(self, stream):
        self.stream = stream

    def write(self, msg):
        self.stream.write(msg)
        self.stream.flush()

    def writelines(self, msgs):
        self.stream.writelines(msgs)
        self.stream.flush()

    def __getattr__(self, attr):
        return getattr(self.stream, attr)


LOG_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"


def configure_logging(logging):
    """Lambda's root handler and format, as awslambdaric installs them."""

    class RequestIdFilter(logging.Filter):
        def filter(self, record):
            record.aws_request_id = _current_request_id or ""  # empty while no request is in flight
            return True

    class LambdaLogHandler(logging.Handler):
        def emit(self, record):
            sys.stdout.write(self.format(record))

    logging.Formatter.converter = time.gmtime
    handler = LambdaLogHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if level in logging._nameToLevel:
        root.setLevel(level)


class _ConfigureOnImport:
    """Loader wrapper: runs the real loader, then configures what it loaded."""

    def __init__(self, loader, configure):
        self.loader = loader
        self.configure = configure

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.configure(module)


class _LoggingHook:
    """A meta-path finder that configures ``logging`` the moment anything imports it."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _ConfigureOnImport(spec.loader, configure_logging)
                return spec
        return None


def install_logging():
    if "logging" in sys.modules:
        configure_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingHook())


def log_warning(message):
    """What ``logging.warning`` prints through Lambda's handler, without importing logging."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)
    sys.stdout.write(f"[WARNING]\t{stamp}\t{_current_request_id or ''}\t{message}\n")


def handle(client, request_handler, headers, body):
    global _current_request_id
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    _current_request_id = request_id
    trace = headers.get("lambda-runtime-trace-id")
    if trace:
        os.environ["_X_AMZN_TRACE_ID"] = trace
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    error = None
    try:
        client_context = _json_header(headers.get("lambda-runtime-client-context"), "Client Context")
        identity = _json_header(headers.get("lambda-runtime-cognito-identity"), "Cognito Identity")
        context = LambdaContext(
            request_id,
            client_context,
            identity,
            int(headers.get("lambda-runtime-deadline-ms", "0")),
            headers.get("lambda-runtime-invoked-function-arn"),
        )
        if headers.get("content-type", "application/json") == "application/json":
            try:
                event = fastjson.loads(body)
            except Exception as e:
                raise FaultException(
                    FaultException.UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}"
                ) from None
        else:
            event = body
        response = request_handler(event, context)
        if isinstance(response, bytes):
            result, content_type = response, "application/unknown"
        else:
            try:
                result, content_type = to_json(response).encode(), "application/json"
            except Exception as e:
                raise FaultException(
                    FaultException.MARSHAL_ERROR, f"Unable to marshal response: {e}"
                ) from None
    except FaultException as e:
        error = make_error(e.msg, e.exception_type, e.trace, request_id)
    except Exception as e:
        error = fault_from_exception(e, request_id)
    # Before the result is posted: the host freezes the environment once it has the result.
    if _state is not None:
        _state.send(_module, request_id)
    # A 413 (response over 6 MB) needs nothing from us: the agent reports it.
    if error is not None:
        log_error(error)
        client.post_error(request_id, error)
    else:
        client.post_result(request_id, result, content_type)


def _json_header(value, name):
    if not value:
        return None
    try:
        return fastjson.loads(value)
    except Exception as e:
        raise FaultException(
            FaultException.LAMBDA_CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {e}"
        ) from None


def report_init_error(error_type, message):
    """Used by the agent when a custom runtime has no bootstrap to exec."""
    error = make_error(message, error_type, [])
    log_error(error)
    RuntimeClient().post_init_error(error)


def run_forked(handler, status_fd, state_fd=None):
    """Entry point in the runtime process the agent forked."""
    global _state
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = _Unbuffered(open(1, "w", encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115
    sys.stderr = _Unbuffered(open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False))  # noqa: SIM115
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    sys.path[:0] = [task_root, "/opt/python"]
    sys.argv = ["/var/runtime/bootstrap.py"]
    client = RuntimeClient()
    for name in (
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ):
        _STATIC[name] = os.environ.get(name)
    install_logging()
    _state = snapshot.Sender.open(state_fd)
    # Runtime init is done: from here on it is the function's own init.
    if status_fd is not None:
        os.write(status_fd, b"R")
        os.close(status_fd)
    try:
        request_handler = load_handler(handler)
        error = None
    except FaultException as e:
        error = make_error(e.msg, e.exception_type, e.trace)
    except Exception as e:
        error = fault_from_exception(e)
    if error is not None:
        log_warning(UNHANDLED_WARNING)
        log_error(error)
        client.post_init_error(error)
        sys.exit(1)
    if _state is not None:
        _state.send(_module, "")  # after Init: before the first /next
    while True:
        headers, body = client.next()
        handle(client, request_handler, headers, body)
