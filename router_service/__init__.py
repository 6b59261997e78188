"""QuoteService: prices a swap on every venue and picks the route."""
