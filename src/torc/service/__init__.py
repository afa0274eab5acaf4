"""Use cases that own transactions: create, initialize, claim, complete, reset, cancel ..."""
