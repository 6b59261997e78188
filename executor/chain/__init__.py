"""The simulated chain: ExecutionService, its ledgers and its faults."""
