"""One module per `textfleet bench --scenario`: what each scenario runs and measures."""
