"""genstudio's domain: credits, pricing and jobs. Pure: no I/O, no framework."""
