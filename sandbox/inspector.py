"""The State inspector: what a frozen environment holds, seen without thawing it or running its code.

Two parts, both bounded, both from the host's side of the jail:

- the handler module's top-level names, as our runtime described them before the
  environment was frozen (``runtime/snapshot.py``: no user-defined method is
  called to describe them). The description crosses the agent's control channel
  as untrusted bytes and is only parsed here, at inspect time, with limits: only
  strings and integers are kept;
- its ``/tmp``, listed now by the host: with directory descriptors, never
  following a link (a link is reported with its target's text, which
  ``readlink`` reads without following it), so a jail that swapped a directory
  for a link to ``/etc`` could not lead the walk out of its ``/tmp``.
"""

from __future__ import annotations

import json
import os
import stat
import time
from typing import TYPE_CHECKING

from .runtime import contract

if TYPE_CHECKING:
    from .environment import Environment

MAX_ENTRIES = 200  # /tmp entries listed
MAX_DEPTH = 4  # /tmp/a/b/c/d at most
MAX_READ_PER_DIR = 1000  # directory entries read (then sorted) per directory
MAX_NAME = 100  # characters of one file name
MAX_TARGET = 200  # characters of a link's target
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def inspect(env: Environment) -> dict:
    """The environment's module names (as described before its last freeze) and its /tmp now."""
    names = parse_state(env.module_state[0]) if env.module_state is not None else None
    result = {
        "environment": env.id,
        "state": "frozen" if env.frozen else env.state.value,
        "invocations": env.invocations,
        "runtime_ready": env.runtime_ready,
        "taken_at": round(env.module_state[1] * 1000) if env.module_state is not None else None,
        "names": None,
        "names_left_out": 0,
        "threads": None,
        "after": None,
        "note": None,
    }
    if names is not None:
        result.update(names)
    elif not env.runtime_ready:
        result["note"] = "no module loaded: the runtime was reset or its Init failed; the next call runs Init"
    elif env.spec is not None and env.spec.runtime != "python3.11":
        result["note"] = "a custom runtime: only LambdaLab's Python runtime describes its module"
    else:
        result["note"] = "no description came from the runtime before the freeze"
    result["tmp"], result["tmp_truncated"], result["tmp_error"] = _list_env_tmp(env)
    result["listed_at"] = round(time.time() * 1000)
    return result


def parse_state(raw: bytes) -> dict:
    """The runtime's description, checked: only strings and integers kept, each bounded.

    It comes from the jail (user code can send its own), so anything malformed is
    a note, never an exception.
    """
    if not isinstance(raw, bytes) or len(raw) > contract.STATE_MAX_BYTES:
        return {"note": "the runtime's description was over its size bound: ignored"}
    try:
        data = json.loads(raw)
    except Exception:  # noqa: BLE001 - ValueError, RecursionError: whatever hostile bytes provoke
        return {"note": "the runtime's description was not JSON: ignored"}
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        return {"note": "the runtime's description had the wrong shape: ignored"}
    names = []
    for entry in data["names"][: contract.STATE_MAX_NAMES]:
        if isinstance(entry, list) and len(entry) == 3 and all(type(part) is str for part in entry):
            name, type_name, text = entry
            names.append({"name": name[:64], "type": type_name[:48], "text": text[: contract.STATE_MAX_TEXT]})
    return {
        "names": names,
        "names_left_out": _bounded_int(data.get("left_out"), 1 << 31) or 0,
        "threads": _bounded_int(data.get("threads"), 1 << 16),
        "after": data["after"][:64] if type(data.get("after")) is str else None,
    }


def _bounded_int(value, limit: int) -> int | None:
    return value if type(value) is int and 0 <= value <= limit else None


def _list_env_tmp(env: Environment) -> tuple[list | None, bool, str | None]:
    """List the environment's /tmp: its folder on the scratch disk, else (a tmpfs only the
    jail's mount namespace has) through the agent's root, ``/proc/<agent>/root/tmp``."""
    if env.tmp_dir is not None:
        where = str(env.tmp_dir)
    else:
        agent = next((pid for pid in env.keep_pids if env.proc is None or pid != env.proc.pid), None)
        if agent is None:
            return None, False, "the jail is not running"
        where = f"/proc/{agent}/root/tmp"
    try:
        entries, truncated = list_tmp(where)
    except OSError as exc:
        return None, False, f"could not list /tmp: {exc.strerror or exc}"
    return entries, truncated, None


def list_tmp(root: str, *, max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH) -> tuple[list, bool]:
    """``/tmp``'s entries under ``root`` (depth first, by name), and whether the bounds cut the list.

    Each is ``{"path", "kind": file|dir|link|other, "size", "mtime"}`` (size of files
    only; ``target`` for links). Every directory is opened with O_NOFOLLOW relative
    to its parent's descriptor, and every entry is lstat'ed relative to it, so nothing
    the jail renames or swaps for a link meanwhile can take the walk elsewhere.
    """
    entries: list[dict] = []
    fd = os.open(root, _OPEN_DIR)
    try:
        truncated = _walk(fd, "/tmp", 1, entries, max_entries, max_depth)
    finally:
        os.close(fd)
    return entries, truncated


def _walk(fd: int, prefix: str, depth: int, out: list, max_entries: int, max_depth: int) -> bool:
    """List one directory (``fd``) into ``out``; True if something was left out."""
    truncated = False
    names = []
    with os.scandir(fd) as found:
        for entry in found:
            if len(names) >= MAX_READ_PER_DIR:
                truncated = True
                break
            names.append(entry.name)
    names.sort()
    for name in names:
        if len(out) >= max_entries:
            return True
        path = f"{prefix}/{_printable(name)}"
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue  # gone meanwhile
        item = {"path": path, "kind": "other", "size": None, "mtime": round(st.st_mtime * 1000)}
        out.append(item)
        if stat.S_ISREG(st.st_mode):
            item["kind"], item["size"] = "file", st.st_size
        elif stat.S_ISLNK(st.st_mode):
            item["kind"] = "link"
            try:
                item["target"] = _printable(os.readlink(name, dir_fd=fd), MAX_TARGET)
            except OSError:
                item["target"] = None
        elif stat.S_ISDIR(st.st_mode):
            item["kind"] = "dir"
            if depth >= max_depth:
                truncated = truncated or _has_entries(fd, name)
                continue
            try:
                sub = os.open(name, _OPEN_DIR, dir_fd=fd)  # a link put in its place meanwhile: ELOOP
            except OSError:
                continue
            try:
                truncated = _walk(sub, path, depth + 1, out, max_entries, max_depth) or truncated
            finally:
                os.close(sub)
    return truncated


def _has_entries(fd: int, name: str) -> bool:
    try:
        sub = os.open(name, _OPEN_DIR, dir_fd=fd)
    except OSError:
        return False
    try:
        with os.scandir(sub) as found:
            return next(found, None) is not None
    finally:
        os.close(sub)


def _printable(name: str, limit: int = MAX_NAME) -> str:
    """A file name as text (bytes that are not UTF-8 replaced), bounded."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"
