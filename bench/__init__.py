"""Hive's benchmark harness (not part of the test suite): ``python -m bench.throughput``.

Modules:
    setup         the bench's own database, Redis db index, pipelines and worker process
    keys          every Redis key and task name the bench uses
    stats         percentiles and rates
    rawtasks      ``bench.noop`` and ``bench.stamp``, raw Celery tasks on Hive's own app
    worker        ``python -m bench.worker``: a Hive worker that also has the raw tasks
    hive_phases   single-step, idle-latency, chain and fan-out runs through ``hive.Client``
    raw_phases    the same shapes as raw Celery tasks on the same broker and worker
    throughput    the command line: runs every phase and reports
"""
