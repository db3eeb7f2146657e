"""Reads of shared links: one by its id, as the API and the page show it."""

from __future__ import annotations

from .models import Share


def share_get(share_id: str) -> Share | None:
    return Share.objects.filter(pk=share_id).first()


def share_dict(share: Share, *, url: str) -> dict:
    """What anyone with the link may see: the snapshot, never who made it or from which function."""
    return {"id": share.id, "url": url, "created": share.created.isoformat(), **share.content}


def run_summary(share: Share) -> dict:
    """The recorded run in numbers: calls, cold and warm starts, environments, failures."""
    run = share.content.get("run") or {}
    ends = [ev for ev in run.get("events", []) if ev.get("type") == "invoke.end"]
    ran = [ev for ev in ends if ev.get("environment")]
    return {
        "calls": len(ends),
        "cold": sum(1 for ev in ran if ev.get("cold")),
        "warm": sum(1 for ev in ran if ev.get("cold") is False),
        "failed": sum(1 for ev in ends if ev.get("status") != "success"),
        "environments": len({ev["environment"] for ev in ran}),
    }


def description(share: Share) -> str:
    """One line for a chat app's preview (Open Graph)."""
    c = share.content
    words = f"A Python Lambda handler ({c['memory_mb']:,} MB, timeout {c['timeout_s']} s)"
    if c.get("run"):
        s = run_summary(share)
        calls = f"{s['calls']} call{'' if s['calls'] == 1 else 's'}"
        words += (
            f" with a recorded run: {calls}, {s['cold']} cold and {s['warm']} warm, "
            f"in {s['environments']} execution environment{'' if s['environments'] == 1 else 's'}"
        )
    return words + ". Replay it, or run it yourself in LambdaLab."
