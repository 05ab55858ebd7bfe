"""Writing generated data to JSON lines and reading it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from medallion.lakehouse.errors import ConfigError
from medallion.platform.generate import (
    DATASETS,
    GeneratedData,
    GeneratorConfig,
    generate,
    read_generated,
    write_generated,
)


def _files(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` by name, as bytes."""
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_round_trip_reads_back_equal_data(data: GeneratedData, tmp_path: Path) -> None:
    written = write_generated(data, tmp_path / "out")

    assert written == tmp_path / "out"
    assert read_generated(written) == data


def test_writes_are_byte_identical(tmp_path: Path) -> None:
    config = GeneratorConfig(seed=7, scale=0.1, days=3)
    first = _files(write_generated(generate(config), tmp_path / "first"))
    second = _files(write_generated(generate(config), tmp_path / "second"))

    assert first == second
    assert sorted(first) == sorted([f"{dataset}.jsonl" for dataset in DATASETS] + ["manifest.json"])


def test_rewrite_of_read_data_is_byte_identical(tmp_path: Path) -> None:
    original = write_generated(generate(GeneratorConfig(scale=0.1)), tmp_path / "a")
    rewritten = write_generated(read_generated(original), tmp_path / "b")

    assert _files(original) == _files(rewritten)


def test_jsonl_line_counts_match_records(data: GeneratedData, tmp_path: Path) -> None:
    directory = write_generated(data, tmp_path)

    for dataset in DATASETS:
        lines = (directory / f"{dataset}.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == len(data.records(dataset))


def test_reading_a_directory_without_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a generated-data manifest, found none"):
        read_generated(tmp_path)
