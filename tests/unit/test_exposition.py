"""A worker's /metrics sums its pool processes' files, even while one is being created."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector

from hive.exposition import _PoolFilesCollector


def _write_counter(directory: Path, pid: int, value: float) -> None:
    values = MmapedDict(str(directory / f"counter_{pid}.db"))
    key = mmap_key("hive_steps_total", "hive_steps_total", ["agent"], ["echo"], "Steps.")
    values.write_value(key, value, 0.0)
    values.close()


def _total(metrics: list[Any]) -> float:
    return sum(
        sample.value
        for metric in metrics
        for sample in metric.samples
        if sample.name == "hive_steps_total"
    )


def test_a_pool_process_file_not_sized_yet_is_left_out_instead_of_failing_the_scrape(
    tmp_path: Path,
) -> None:
    _write_counter(tmp_path, 101, 4)
    _write_counter(tmp_path, 102, 2)
    # A pool process just forked: its file exists, not yet sized (client_python#1199).
    (tmp_path / "counter_103.db").touch()
    with pytest.raises(struct.error):
        MultiProcessCollector.merge([str(f) for f in tmp_path.glob("*.db")], accumulate=True)  # type: ignore[no-untyped-call]

    assert _total(_PoolFilesCollector(tmp_path).collect()) == 6


def test_the_files_of_every_pool_process_are_summed(tmp_path: Path) -> None:
    _write_counter(tmp_path, 201, 1)
    _write_counter(tmp_path, 202, 5)

    assert _total(_PoolFilesCollector(tmp_path).collect()) == 6
