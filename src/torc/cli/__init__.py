"""The `torc` command tree."""
