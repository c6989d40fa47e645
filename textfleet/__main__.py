"""`python -m textfleet ...`: the `textfleet` command line (what tests and child processes run)."""

from textfleet.cli import main

if __name__ == "__main__":  # vLLM's engine process re-imports the main module: keep this guard
    main()
