"""What runs or measures the whole system on one machine: the ``make run``
supervisor, the embedded Redis, free ports, the simulated other traders and
the benchmark. No service imports this package."""
