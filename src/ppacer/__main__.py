"""``python -m ppacer`` and the ``ppacer`` command."""

import gc
import sys


def run() -> None:
    """Run the command line: its modules and the command's load with the cyclic garbage
    collector off, and what they made is left out of its later passes.

    Loading ``ppacer run`` makes about 100,000 objects that live as long as the process
    (modules, classes, functions: SQLAlchemy's, Starlette's, ppacer's); with the
    collector on, every 700 of them set off a pass, and the full ones walk all of
    them again: 131 passes, 22 ms of a 0.28 s start here (BENCHMARKS.md). What the
    imports leave in cycles (693 objects after ``ppacer run``'s) stays frozen until a
    server collects as it starts (:func:`ppacer.scheduler.frozen_heap.frozen_heap`).
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
