"""One module per ``edgetrain`` subcommand; see edgetrain/cli.py."""
