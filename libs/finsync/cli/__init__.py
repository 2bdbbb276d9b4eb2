"""The `finsync` command, one module per command group."""
