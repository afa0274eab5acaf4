"""Job runners: claim jobs that fit, run them as subprocesses, report results."""
