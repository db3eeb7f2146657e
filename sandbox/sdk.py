"""The AWS SDK for Python in the jail's /var/runtime, as Lambda's Python runtimes ship it.

Lambda's python3.11 has boto3, botocore and their dependencies in /var/runtime,
after /var/task and /opt/python on ``sys.path``, so ``import boto3`` works
without bundling it (and a bundled copy wins). We give jails the distributions
installed for this host's interpreter (``requirements.txt`` pins boto3): their
files are hard-linked into the runtime folder, with the ``__pycache__`` that pip
compiled (the jail's interpreter is the same binary, so they are valid: the
read-only /var/runtime could not hold new ones, and compiling botocore on every
cold start would cost a small function seconds of CPU) and the ``.dist-info``
folders, so ``importlib.metadata.version("boto3")`` answers in the jail too.
The SDK is only files on disk: nothing here or in our runtime imports it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import sys
from importlib import metadata
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

ROOTS = ("boto3",)  # what Lambda's runtime offers; the rest is their dependency closure
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# pip's record of where a wheel came from: a host path, of no use in the jail
_SKIPPED_FILES = frozenset({"direct_url.json"})


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dependencies(dist: metadata.Distribution) -> list[tuple[str, bool]]:
    """(name, unconditional) per requirement, leaving out those only an extra asks for.

    Markers other than extras (``python_version < "3.10"``) are not evaluated
    (the standard library has no evaluator): such a dependency is taken if installed.
    """
    found = []
    for requirement in dist.requires or ():
        requirement_text, _, marker = requirement.partition(";")
        if "extra" in marker:
            continue
        match = _NAME.match(requirement_text)
        if match:
            found.append((_normalize(match.group(1)), not marker.strip()))
    return found


def distributions(roots: tuple[str, ...] = ROOTS) -> list[metadata.Distribution]:
    """The installed ``roots`` and everything they require, sorted by name.

    Without boto3 installed (a host that skipped ``requirements.txt``) jails get no
    SDK, as before; the pool still works, so this warns rather than fails.
    """
    seen: dict[str, metadata.Distribution] = {}
    pending = [(_normalize(name), True) for name in roots]
    while pending:
        name, required = pending.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            if required:
                log.warning("%s is not installed: jails get no copy of it in /var/runtime", name)
            continue
        seen[name] = dist
        pending += _dependencies(dist)
    return [seen[name] for name in sorted(seen)]


def fingerprint(dists: list[metadata.Distribution]) -> str:
    """``name==version`` lines: part of the runtime folder's hash, so an upgrade makes a new folder."""
    return "".join(f"{_normalize(d.metadata['Name'])}=={d.version}\n" for d in dists)


def _files(dist: metadata.Distribution) -> list[tuple[Path, PurePosixPath]]:
    """(installed path, path under /var/runtime) for the distribution's importable files.

    From its RECORD, which lists the ``.dist-info`` folder and the pyc pip
    compiled; entries outside site-packages (scripts in ``bin/``) are left out.
    Any pyc compiled later, beside a listed source, is taken as well.
    """
    out = []
    seen = set()
    for entry in dist.files or ():
        relative = PurePosixPath(entry)
        if relative.is_absolute() or ".." in relative.parts or relative.name in _SKIPPED_FILES:
            continue
        source = Path(dist.locate_file(entry))
        if relative not in seen and source.is_file():
            seen.add(relative)
            out.append((source, relative))
        if relative.suffix == ".py":
            cached = relative.parent / "__pycache__" / f"{relative.stem}.{sys.implementation.cache_tag}.pyc"
            cached_source = Path(dist.locate_file(str(cached)))
            if cached not in seen and cached_source.is_file():
                seen.add(cached)
                out.append((cached_source, cached))
    return out


def install(dists: list[metadata.Distribution], target: Path) -> int:
    """Hard-link every file of ``dists`` into ``target`` (copy across filesystems); the count.

    Links share the installed file's inode, so their mode is the installed
    file's: one not readable by all (jail uids are not the host's) is copied
    and made 0644 instead. Modification times survive either way, and the
    pyc files' validity with them. Directories are left to the caller's chmod.
    """
    count = 0
    for dist in dists:
        for source, relative in _files(dist):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_IMODE(source.stat().st_mode) & 0o444 == 0o444:
                try:
                    os.link(source, destination)
                    count += 1
                    continue
                except OSError:  # another filesystem, or protected_hardlinks for another user's file
                    pass
            shutil.copy2(source, destination)
            os.chmod(destination, 0o644)
            count += 1
    return count
