"""`textfleet bench`: workloads (`bench.workloads`), load generation (`loadgen`), reporting (`report`)."""
