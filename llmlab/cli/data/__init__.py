"""`llmlab data <name>`: one module per subcommand, `<name>.py` with a click command `command`
(found by cli/cmd_data.py, imported only when run)."""
