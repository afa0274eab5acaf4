"""The TUI's screens: workflows, one workflow, one job, plus the confirmation and help dialogs."""
