"""``python -m polybus``: the polybus command."""

from polybus.cli.main import main

main()
