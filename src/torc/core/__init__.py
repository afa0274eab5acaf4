"""Pure domain logic: statuses, units, claim selection, errors. Standard library only."""
