"""Fault injection for operators and CI: run jobs through a real fleet while killing workers and
restarting Redis, then count what was lost, doubled or left undelivered (`textfleet chaos`).

`fleet.Fleet` runs the processes, `run.run_chaos` the plan; `cli.chaos` is the command. Nothing is
imported here, so registering the command costs nothing (and `textfleet api` needs no worker code)."""
