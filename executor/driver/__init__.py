"""The order driver: the RQ job, the confirmation tracker, the reconciler
and the leases that keep each order in one pair of hands."""
