"""ExecutionService (the simulated chain) and the jobs that drive orders."""
