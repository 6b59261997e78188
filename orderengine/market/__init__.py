"""The market model: the pools of each venue, their math and their shared
state in Redis. QuoteService prices swaps with it; ExecutionService lands them."""
