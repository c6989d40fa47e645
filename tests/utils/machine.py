"""What else is running on the test machine: a vLLM engine or a textfleet process that an earlier,
killed run left behind (its parent gone) takes the cores this run's engines need, and on two cores
that makes generation many times slower. The session names them in its header and its summary."""

from __future__ import annotations

import os

import psutil

__all__ = ["describe_load", "stray_processes"]

#: Command-line marks of the fleet's own processes (vLLM retitles its engine and worker processes).
MARKS = ("VLLM::", "-m textfleet ", "bin/textfleet ", "weed server")


def stray_processes() -> list[str]:
    """`pid command` of each orphaned (parent is init) fleet process on this machine."""
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "name", "status"]):
        try:
            command = " ".join(proc.info["cmdline"] or [proc.info["name"] or ""])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.info["status"] == psutil.STATUS_ZOMBIE:  # already gone, not yet reaped
            continue
        if proc.info["ppid"] == 1 and any(mark in command for mark in MARKS):
            found.append(f"{proc.info['pid']} {command[:120]}")
    return found


def describe_load() -> str:
    """One line: load average against cores, and any stray fleet processes."""
    one, five, _ = os.getloadavg()
    line = f"machine: {os.cpu_count()} cores, load {one:.2f} (5 min {five:.2f})"
    strays = stray_processes()
    if strays:
        line += f"; {len(strays)} stray fleet process(es) from an earlier run: " + "; ".join(strays)
    return line
