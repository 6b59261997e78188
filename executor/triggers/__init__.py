"""The trigger part: waiting orders (limit, stop) indexed by trigger price
per pair and side, and by expiry in one time index, all in Redis and rebuilt
from the database; each pool change costs O(log n + k) for the k orders it
crosses. Firing is the store's compare-and-set OPEN -> ROUTING, then the
order queue, as for a market order."""
