"""``python -m ppacer``: the command line."""

from ppacer.cli import main

main()
