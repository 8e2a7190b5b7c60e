"""``python -m flowcli``: the command line."""

from .cli import main

main()
