"""Clearing a dead pool's cgroups survives everyone else clearing them at the same moment.

Every pool clears the leftovers of dead pools when it starts, so several pools
starting together (or a pool whose owner is finishing its own cleanup) remove
the same folders concurrently: a folder listed a moment ago may be gone by the
time it is used, and that must never make a pool fail to start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import cgroup

PROJECT = Path(__file__).resolve().parents[2]
HIERARCHIES = tuple(h for h, ok in cgroup.available().items() if ok)

pytestmark = pytest.mark.skipif(not HIERARCHIES, reason="no cgroup hierarchy we can manage here")

MAKE_LEFTOVERS = """
import json, sys
sys.path.insert(0, {project!r})
from sandbox import cgroup
tag = cgroup.pool_tag()
for i in range({envs}):
    cgroup.EnvironmentCgroup(tag, f"env{{i}}", {hierarchies!r}).create(pids_max=8)
print(json.dumps(tag))
"""

CLEANER = """
import os, sys
sys.path.insert(0, {project!r})
from sandbox import cgroup
os.read({gate}, 1)  # every cleaner blocks here until the test closes the gate's write end
for _ in range({rounds}):
    cgroup.clean_stale({hierarchies!r})
"""


def make_leftovers(envs: int) -> str:
    """Cgroups as a pool leaves them when it dies: made by a process that has since exited."""
    script = MAKE_LEFTOVERS.format(project=str(PROJECT), envs=envs, hierarchies=HIERARCHIES)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    tag = json.loads(done.stdout)
    assert not cgroup.owner_alive(tag)
    return tag


def pool_dirs(tag: str) -> list[Path]:
    return [cgroup.ROOT / h / cgroup.TOP / tag for h in HIERARCHIES]


def clean_as_someone_else(tag: str, envs: int) -> None:
    """Remove a dead pool's folders the way another pool would, meanwhile (tests running
    elsewhere on this host may be clearing them too, so nothing here may insist)."""
    for i in range(envs):
        cgroup.EnvironmentCgroup(tag, f"env{i}", HIERARCHIES).destroy()
    for folder in pool_dirs(tag):
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass


def test_a_dead_pools_leftovers_are_there_to_clean_in_every_hierarchy():
    tag = make_leftovers(envs=2)
    try:
        for folder in pool_dirs(tag):
            assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["env0", "env1"]
    finally:
        cgroup.clean_stale(HIERARCHIES)
    assert not any(folder.exists() for folder in pool_dirs(tag))


def test_six_cleaners_released_together_all_succeed_and_leave_nothing_behind():
    for _ in range(3):  # a few rounds: each is a fresh chance for the race
        tags = [make_leftovers(envs=3) for _ in range(12)]
        gate_r, gate_w = os.pipe()
        script = CLEANER.format(project=str(PROJECT), gate=gate_r, rounds=40, hierarchies=HIERARCHIES)
        try:
            cleaners = [
                subprocess.Popen(
                    [sys.executable, "-c", script],
                    pass_fds=(gate_r,),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(6)
            ]
        finally:
            os.close(gate_r)
        os.close(gate_w)  # every cleaner's read returns at once
        outcomes = [(c.wait(timeout=120), c.stderr.read()) for c in cleaners]
        for c in cleaners:
            c.stdout.close()
            c.stderr.close()
        assert [code for code, _ in outcomes] == [0] * 6, "\n".join(err for _, err in outcomes)
        left = [str(folder) for tag in tags for folder in pool_dirs(tag) if folder.exists()]
        assert left == []


def test_a_pool_folder_removed_just_after_its_owner_is_found_dead_is_skipped(monkeypatch):
    """Deterministic: another cleaner removes the folder between our listing and our use of it."""
    tag = make_leftovers(envs=2)
    real_owner_alive = cgroup.owner_alive

    def owner_alive_after_someone_else_cleaned(name: str) -> bool:
        if name == tag:
            clean_as_someone_else(tag, envs=2)
        return real_owner_alive(name)

    monkeypatch.setattr(cgroup, "owner_alive", owner_alive_after_someone_else_cleaned)
    removed = cgroup.clean_stale(HIERARCHIES)
    assert not any(r.startswith(f"{tag}/") for r in removed)  # someone else removed them
    assert not any(folder.exists() for folder in pool_dirs(tag))


def test_an_environment_removed_between_listing_and_destroying_it_is_skipped(monkeypatch):
    """Deterministic: the environment's folders vanish after the pool folder was listed."""
    tag = make_leftovers(envs=2)
    real_iterdir = Path.iterdir

    def iterdir_then_someone_else_cleans(self: Path):
        listed = list(real_iterdir(self))
        if self.name == tag:
            for i in range(2):
                cgroup.EnvironmentCgroup(tag, f"env{i}", HIERARCHIES).destroy()
        return iter(listed)

    monkeypatch.setattr(Path, "iterdir", iterdir_then_someone_else_cleans)
    cgroup.clean_stale(HIERARCHIES)
    monkeypatch.undo()
    assert not any(folder.exists() for folder in pool_dirs(tag))
