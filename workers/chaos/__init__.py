"""Fault injection for operators and CI: run jobs through a real fleet while killing workers and
restarting Redis, then count what was lost, doubled or left undelivered (`textfleet chaos`)."""

from workers.chaos.fleet import Fleet
from workers.chaos.run import ChaosPlan, ChaosReport, run_chaos

__all__ = ["ChaosPlan", "ChaosReport", "Fleet", "run_chaos"]
