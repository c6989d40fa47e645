"""Training and evaluation of the default heads (operator tooling; workers never import it)."""
