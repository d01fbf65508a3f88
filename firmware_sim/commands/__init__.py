"""The subcommands firmware_sim adds to the ``edgetrain`` command line (entry-point group
``edgetrain.commands``): ``verify-commit`` and ``firmware``."""
