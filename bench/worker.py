"""``python -m bench.worker [hive worker options]``: a Hive worker that also runs the raw tasks.

Hive has no setting to import extra task modules, so this imports :mod:`bench.rawtasks`
(registering its tasks on Hive's app) and then runs ``hive worker`` unchanged.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import bench.rawtasks  # noqa: F401 - registers bench.noop and bench.stamp
    from hive.cli import main as hive_main

    args = sys.argv[1:] if argv is None else argv
    hive_main(args=["worker", *args], standalone_mode=True)


if __name__ == "__main__":
    main()
