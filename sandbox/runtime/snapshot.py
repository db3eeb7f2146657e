"""What the State inspector shows of a frozen environment's module, described without running user code.

Our runtime calls ``Sender.send`` after Init and after each call (the result is ready, not
yet posted), so the agent holds the description before the host freezes the
environment: inspecting it later needs no thaw and no call. A user-defined
``__repr__``, ``__getattr__``, property, ``__len__``, ``__eq__``/``__hash__`` or
metaclass is user code, and running it would change what the lesson observes (a
counter in ``__repr__``, a file it writes). So nothing here calls a method found
on a user's object or type: types come from ``type(x)`` (never ``x.__class__``),
values are shown only for exact builtin types (``type(x) is int``), names are
read through the builtin types' own descriptors (``type.__dict__['__name__']``),
and containers are only walked when they are exactly list, tuple, dict, set or
frozenset, whose iteration runs no Python code. Everything else is
``<ClassName object>``. Every part is bounded; the host trusts none of it.

Runs inside the jail, in the runtime process: standard library only, and only
what is already imported.
"""

import _json
import _socket
import os
import sys

from . import contract

MAX_NAMES = contract.STATE_MAX_NAMES
MAX_TEXT = contract.STATE_MAX_TEXT
MAX_SCAN = 1024  # entries of the module's dict looked at, described or not
ITEMS = 4  # a container's first items shown
ITEM_TEXT = 24

# Bound now, before any user code runs: a function that replaces ``os.fstat`` or ``type``
# in its own namespace does not reach these.
_type = type
_issubclass = issubclass
_len = len
_fstat = os.fstat
_open = os.open
_O_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_quote = _json.encode_basestring_ascii  # a str as a JSON string, escaped (C)
_str = str.__str__  # the value of a str subclass as an exact str, its own methods not called
# repr() of a value whose type is exactly a builtin one runs that builtin's repr, nothing else.
_repr = repr
_bit_length = int.bit_length
_dict_items = dict.items


def _function():
    pass


class _Probe:
    def method(self):
        pass


_FunctionType = _type(_function)
_BuiltinType = _type(len)
_MethodType = _type(_Probe().method)
_ModuleType = _type(sys)
# The builtin types' own descriptors: reading them runs no metaclass, property or __getattr__.
_type_name = type.__dict__["__name__"].__get__
_type_qualname = type.__dict__["__qualname__"].__get__
_function_qualname = _FunctionType.__dict__["__qualname__"].__get__
_builtin_name = _BuiltinType.__dict__["__name__"].__get__
_method_function = _MethodType.__dict__["__func__"].__get__
_module_dict = _ModuleType.__dict__["__dict__"].__get__

_NoneType = _type(None)
_OPENINGS = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    dict: ("{", "}"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}


def _plain(text) -> str:
    """An exact str: a str subclass's value copied out (its methods never called), else '?'."""
    if _type(text) is str:
        return text
    if _issubclass(_type(text), str):
        return _str(text)
    return "?"


def _name_of(cls) -> str:
    return _plain(_type_name(cls))


# Types are compared by identity only (``t in some_set`` would hash ``t``, and a metaclass may
# define ``__hash__``), most common first: this runs for every name before every freeze.
def _scalar(value, t, limit: int):
    """(type name, repr) of a value of an exact builtin scalar type, bounded; None for any other."""
    if t is int:
        return "int", _repr(value) if _bit_length(value) <= 256 else f"<int of {_bit_length(value):,} bits>"
    if t is str:
        if _len(value) <= limit:
            return "str", _repr(value)
        return "str", _repr(value[:limit])[:limit] + f"… ({_len(value):,} chars)"
    if t is bool:
        return "bool", "True" if value is True else "False"
    if t is _NoneType:
        return "NoneType", "None"
    if t is float:
        return "float", _repr(value)
    if t is bytes:
        if _len(value) <= limit:
            return "bytes", _repr(value)
        return "bytes", _repr(value[:limit])[:limit] + f"… ({_len(value):,} bytes)"
    if t is complex:
        return "complex", _repr(value)
    return None


def _item(value) -> str:
    """One item of a container: a short value if its type is a safe exact one, else its type."""
    t = _type(value)
    scalar = _scalar(value, t, ITEM_TEXT)
    if scalar is not None:
        text = scalar[1]
        return text if _len(text) <= ITEM_TEXT * 2 else text[: ITEM_TEXT * 2 - 1] + "…"
    if t is list or t is tuple or t is dict or t is set or t is frozenset:
        return "<" + _name_of(t) + ">"
    return "<" + _name_of(t) + " object>"


def _container(value, t) -> str:
    """``t`` is exactly list, tuple, dict, set or frozenset: their length and iteration run no
    Python code. The first few items, then the length."""
    n = _len(value)
    shown = []
    if t is dict:
        for key, item in _dict_items(value):
            if _len(shown) == ITEMS:
                break
            shown.append(_item(key) + ": " + _item(item))
    else:
        for item in value:
            if _len(shown) == ITEMS:
                break
            shown.append(_item(item))
    opening, closing = _OPENINGS[t]  # t is one of the builtin keys: hashing it runs nothing of the user's
    more = ", …" if n > _len(shown) else ""
    return f"{opening}{', '.join(shown)}{more}{closing} ({n:,} item{'' if n == 1 else 's'})"


def describe(value) -> tuple:
    """(type name, short description) of one value, computed without running user code."""
    t = _type(value)
    scalar = _scalar(value, t, 80)
    if scalar is not None:
        return scalar
    type_name = _name_of(t)
    if t is list or t is tuple or t is dict or t is set or t is frozenset:
        return type_name, _container(value, t)
    if t is _FunctionType:
        return type_name, "<function " + _plain(_function_qualname(value)) + ">"
    if t is _BuiltinType:
        return type_name, "<built-in function " + _plain(_builtin_name(value)) + ">"
    if t is _MethodType:
        function = _method_function(value)
        if _type(function) is _FunctionType:
            return type_name, "<bound method " + _plain(_function_qualname(function)) + ">"
        return type_name, "<bound method>"
    if _issubclass(t, _ModuleType):
        name = None
        for key, item in _dict_items(_module_dict(value)):
            if _type(key) is str and key == "__name__":  # exact strs compared: no user __eq__
                name = _plain(item)
                break
        return type_name, "<module " + _repr(name or "?") + ">"
    if _issubclass(t, type):
        return type_name, "<class " + _repr(_plain(_type_qualname(value))) + ">"
    return type_name, "<" + type_name + " object>"


def take(module, after: str, tasks_fd: int | None = None) -> bytes:
    """The module's top-level names (dunders left out), described, as JSON of at most
    ``STATE_MAX_BYTES``; and the process's thread count (from ``tasks_fd``, its open
    /proc/self/task: a directory's link count is 2 + its threads)."""
    entries = []
    left_out = 0
    room = contract.STATE_MAX_BYTES - 200  # what the envelope around the names may take
    namespace = _module_dict(module) if _issubclass(_type(module), _ModuleType) else {}
    try:
        for scanned, (key, value) in enumerate(_dict_items(namespace)):
            if scanned >= MAX_SCAN:
                left_out += 1
                break
            t = _type(key)
            if t is not str:
                if not _issubclass(t, str):
                    continue
                key = _str(key)
            if key[:2] == "__" and key[-2:] == "__":
                continue
            if _len(entries) >= MAX_NAMES:
                left_out += 1
                continue
            try:
                type_name, text = describe(value)
            except Exception:  # noqa: BLE001 - e.g. a dict another thread resized meanwhile
                type_name, text = "?", "<not described>"
            if _len(key) > 64:
                key = key[:63] + "…"
            if _len(type_name) > 48:
                type_name = type_name[:47] + "…"
            if _len(text) > MAX_TEXT:
                text = text[: MAX_TEXT - 1] + "…"
            entry = "[" + _quote(key) + "," + _quote(type_name) + "," + _quote(text) + "]"
            room -= _len(entry) + 1
            if room < 0:
                room += _len(entry) + 1
                left_out += 1
                continue
            entries.append(entry)
    except RuntimeError:  # the module's dict changed size under us (a thread of the function's)
        left_out += 1
    threads = "null"
    if tasks_fd is not None:
        try:
            threads = _repr(_fstat(tasks_fd).st_nlink - 2)
        except OSError:
            pass
    after = _quote(after[:64])
    names = ",".join(entries)
    return f'{{"v":1,"after":{after},"names":[{names}],"left_out":{left_out},"threads":{threads}}}'.encode()


class Sender:
    """The runtime's end of the agent's state socket (a datagram per description)."""

    def __init__(self, fd: int) -> None:
        self.sock = _socket.socket(fileno=fd)
        self.sock.setblocking(False)  # a full queue drops a description, never stalls a call
        try:
            self.tasks_fd = _open("/proc/self/task", _O_DIRECTORY)
        except OSError:
            self.tasks_fd = None

    @classmethod
    def open(cls, fd):
        """Made before any user code runs (which may close or reuse the descriptor); None if
        there is nothing to send on."""
        if fd is None:
            return None
        try:
            return cls(fd)
        except OSError:
            return None

    def send(self, module, after: str) -> None:
        """Describe ``module`` and hand it to the agent; never raises."""
        try:
            self.sock.send(take(module, after, self.tasks_fd))
        except Exception:  # noqa: BLE001 - the call's own result matters, not its description
            pass
