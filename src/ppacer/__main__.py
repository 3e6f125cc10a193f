"""``python -m ppacer`` and the ``ppacer`` command."""

import gc
import sys


def run() -> None:
    """Run the command line: its modules and the command's load with the cyclic garbage
    collector off, and what they made is left out of its later passes.

    Loading ``ppacer run`` makes about 100,000 objects that live as long as the process
    (modules, classes, functions: SQLAlchemy's, Starlette's, ppacer's); with the
    collector on, every 700 of them set off a pass, and the full ones walk all of
    them again: about a tenth of the start (BENCHMARKS.md). The few hundred objects
    the imports leave in cycles stay (``gc.freeze``: tens of KiB).
    """
    gc.disable()
    try:
        from ppacer.cli import load_command, main

        load_command(sys.argv[1:])
    finally:
        gc.freeze()
        gc.enable()
    main()


if __name__ == "__main__":
    run()
