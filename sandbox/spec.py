"""FunctionSpec: what to run and with which settings, validated as Lambda does."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .runtime import contract

RUNTIMES = ("python3.11", "provided")
DEFAULT_HANDLER = "lambda_function.lambda_handler"
SOURCE_FILE = "lambda_function.py"
MAX_SOURCE_BYTES = 3 * 1024 * 1024  # the console editor's limit
MAX_CODE_BYTES = 250 * 1024 * 1024  # unzipped deployment package
MAX_CODE_FILES = 20_000
MAX_ENV_BYTES = 4096
ENV_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
# Lambda's own variables (and the legacy AWS_ACCESS_KEY) cannot be set by a function, as in Lambda
# (PATH, LANG, TZ and the library paths can).
RESERVED_ENV = frozenset(contract.LAMBDA_VARIABLES) - {
    "PATH",
    "LANG",
    "TZ",
    "LD_LIBRARY_PATH",
    "PYTHONPATH",
} | {"AWS_ACCESS_KEY"}


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True, eq=False)
class FunctionSpec:
    """A function version: its code and configuration.

    Build it from a source string (the file becomes ``lambda_function.py``) or
    from a code folder; ``FunctionSpec.from_path`` takes either a ``.py`` file
    or a folder.

    ``key`` names the version: warm environments are shared only by calls of the
    same key. It covers the code, every setting Lambda restarts an environment
    for, and the function's identity (``function_id``, ``revision``): two
    owners' functions with the same code never share an environment, and a
    new revision never wakes an old one, even with the code reverted. The idle
    eviction is not part of it (not a setting Lambda restarts for): calls of
    one key may each bring their own.
    """

    source: str | None = None
    code_dir: str | None = None
    source_file: str = SOURCE_FILE
    handler: str = DEFAULT_HANDLER
    memory_mb: int = 128
    timeout_s: int = 3
    tmp_mb: int = 512
    idle_timeout_s: float = 600.0
    environment: Mapping[str, str] = field(default_factory=dict)
    runtime: str = "python3.11"
    function_name: str = "lambdalab-function"
    function_id: str = ""  # who the function is (the lab's function id): part of the key
    revision: str = ""  # its immutable revision: part of the key
    code_sha256: str = field(init=False)
    key: str = field(init=False)

    def __post_init__(self) -> None:
        if (self.source is None) == (self.code_dir is None):
            raise ValueError("code: give exactly one of source or code_dir")
        _check_int("memory_mb", self.memory_mb, 128, 10240)
        _check_int("timeout_s", self.timeout_s, 1, 900)
        _check_int("tmp_mb", self.tmp_mb, 512, 10240)
        if isinstance(self.idle_timeout_s, bool) or not isinstance(self.idle_timeout_s, (int, float)):
            raise ValueError(f"idle_timeout_s must be a number, got {self.idle_timeout_s!r}")
        if not 0.1 <= self.idle_timeout_s <= 4 * 3600:
            raise ValueError(f"idle_timeout_s must be between 0.1 and 14400, got {self.idle_timeout_s}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        if not isinstance(self.handler, str) or not 0 < len(self.handler) <= 128:
            raise ValueError("handler must be a string of 1 to 128 characters")
        if not FUNCTION_NAME.match(self.function_name or ""):
            raise ValueError("function_name must be 1-64 letters, digits, '-' or '_'")
        env = dict(self.environment or {})
        for name, value in env.items():
            if not isinstance(name, str) or not ENV_NAME.match(name):
                raise ValueError(f"environment: invalid variable name {name!r}")
            if name in RESERVED_ENV:
                raise ValueError(f"environment: {name} is reserved by Lambda")
            if not isinstance(value, str):
                raise ValueError(f"environment: value of {name} must be a string")
        if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV_BYTES:
            raise ValueError("environment: variables exceed the 4 KB total")
        object.__setattr__(self, "environment", MappingProxyType(env))
        if self.source is not None:
            if not isinstance(self.source, str):
                raise ValueError("source must be a string")
            if len(self.source.encode()) > MAX_SOURCE_BYTES:
                raise ValueError("source exceeds 3 MB")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\.py$", self.source_file):
                raise ValueError(f"source_file must be a module file name, got {self.source_file!r}")
            code_hash = hashlib.sha256(
                b"source\0" + self.source_file.encode() + b"\0" + self.source.encode()
            ).hexdigest()
        else:
            code_hash = _hash_tree(Path(self.code_dir))
            object.__setattr__(self, "code_dir", str(Path(self.code_dir).resolve()))
        object.__setattr__(self, "code_sha256", code_hash)
        for name in ("function_id", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 128:
                raise ValueError(f"{name} must be a string of at most 128 characters")
        identity = repr(
            (
                code_hash,
                self.handler,
                self.memory_mb,
                self.timeout_s,
                self.tmp_mb,
                sorted(env.items()),
                self.runtime,
                self.function_name,
                self.function_id,
                self.revision,
            )
        )
        object.__setattr__(self, "key", hashlib.sha256(identity.encode()).hexdigest()[:24])

    @classmethod
    def from_source(cls, source: str, **settings) -> FunctionSpec:
        return cls(source=source, **settings)

    @classmethod
    def from_directory(cls, path: str | os.PathLike, **settings) -> FunctionSpec:
        return cls(code_dir=str(path), **settings)

    @classmethod
    def from_path(cls, path: str | os.PathLike, **settings) -> FunctionSpec:
        """A ``.py`` file (its module name is the file's) or a code folder.

        Without a handler, a file's ``lambda_handler`` is used, else its ``handler``.
        """
        p = Path(path)
        if p.is_dir():
            return cls.from_directory(p, **settings)
        if not p.is_file() or p.suffix != ".py":
            raise ValueError(f"code: {path} is neither a .py file nor a folder")
        text = p.read_text()
        if "handler" not in settings:
            name = "lambda_handler" if re.search(r"^def lambda_handler\(", text, re.M) else "handler"
            settings["handler"] = f"{p.stem}.{name}"
        return cls.from_source(text, source_file=p.name, **settings)

    @property
    def timeout_ms(self) -> int:
        return self.timeout_s * 1000

    def write_code(self, target: Path) -> None:
        """Materialise the code as ``target`` (a folder that must not exist)."""
        tmp = target.with_name(target.name + f".part{os.getpid()}")
        tmp.mkdir(parents=True, mode=0o755)
        if self.source is not None:
            (tmp / self.source_file).write_text(self.source)
            os.chmod(tmp / self.source_file, 0o644)
        else:
            root = Path(self.code_dir)
            for src in _walk(root):
                rel = src.relative_to(root)
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
                dst.write_bytes(src.read_bytes())
                os.chmod(dst, 0o755 if os.access(src, os.X_OK) else 0o644)
            for d in [tmp, *[p for p in tmp.rglob("*") if p.is_dir()]]:
                os.chmod(d, 0o755)
        os.rename(tmp, target)


def _walk(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ValueError(f"code_dir: {root} is not a folder")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
                raise ValueError(f"code_dir: {path} links outside the folder")
            if path.is_file():
                files.append(path)
        if len(files) > MAX_CODE_FILES:
            raise ValueError(f"code_dir: more than {MAX_CODE_FILES} files")
    return sorted(files)


def _hash_tree(root: Path) -> str:
    digest = hashlib.sha256(b"tree\0")
    total = 0
    for path in _walk(root):
        data = path.read_bytes()
        total += len(data)
        if total > MAX_CODE_BYTES:
            raise ValueError("code_dir: code exceeds 250 MB unzipped")
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()
