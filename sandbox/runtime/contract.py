"""The host–jail contract: names, paths and limits both sides agree on, written once.

This package runs inside the jail as ``_lambdalab_runtime`` (a name no user
module would take, so a user's ``frames.py`` or ``bootstrap.py`` is never
shadowed by ours) and on the host as ``sandbox.runtime``. Standard library only.
"""

PACKAGE = "_lambdalab_runtime"
RUNTIME_DIR = "/var/runtime"  # our package and the AWS SDK, read-only, after /var/task on sys.path
TASK_ROOT = "/var/task"
OPT_DIR = "/opt"

API_HOST, API_PORT = "127.0.0.1", 9001
RUNTIME_API = f"{API_HOST}:{API_PORT}"
# The same API on an abstract Unix socket (private to the jail's network namespace): our
# runtime uses it, as its kernel path costs less CPU per call than loopback TCP.
API_UNIX = "\0lambdalab-runtime-api"
API_PREFIX = "/2018-06-01/runtime"

MAX_PAYLOAD = 6 * 1024 * 1024 + 100  # 6,291,556 bytes, as Lambda's RAPID
LOG_LIMIT = 256 * 1024  # bytes of function output per phase (the agent forwards one more to mark a cut)
MAX_LOG_LINES = 10_000

# The State inspector's description of the handler module, taken before each freeze
# (``snapshot.py``): at most this many names, each description this long, this many bytes in all.
STATE_MAX_NAMES = 64
STATE_MAX_TEXT = 120
STATE_MAX_BYTES = 8 * 1024

# The variables Lambda sets for every function (the runtime sees these and the function's own).
LAMBDA_VARIABLES = (
    "PATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "TZ",
    "PYTHONPATH",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
