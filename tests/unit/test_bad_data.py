"""Broken data files are one line naming the file, cell or key, before a run starts (issue 24, items 5, 6, 11a).

- a corrupt or truncated image (image folder, parquet bytes, a node's `data-path`);
- a text cell in a numeric column (refused, naming the row, column and value), and
  the text columns a table's features leave out (logged);
- a table file without rows (refused, naming the key and the file).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

import sim.__main__ as sim_main
import sim.run as sim_run
from fedapp.data import DataError, SourceSpec, dataset_schema
from fedapp.data.local import load_local_dataset
from tests.helpers import APP_DIR
from tests.hub_schemas import write_table_csv


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data cache, so every test converts its own files."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FEDAPP_CACHE_DIR", str(folder))
    return folder


def _png(size: int = 16) -> bytes:
    """A PNG of noise (large enough that half of it cuts into the pixel data)."""
    pixels = np.random.default_rng(0).integers(0, 255, size=(size, size, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


CORRUPTIONS = {"garbage": b"this is not an image", "truncated": _png(64)[: len(_png(64)) // 2], "empty": b""}


def _image_folder(root: Path, corruption: str) -> tuple[Path, Path]:
    """`root/<class>/<i>.png` with 4 good PNGs per class and one bad one; returns (root, the bad file)."""
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for index in range(4):
            (root / name / f"{index}.png").write_bytes(_png())
    bad = root / "dog" / "2.png"
    bad.write_bytes(CORRUPTIONS[corruption])
    return root, bad


def _one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "allowed:" in message
    return message


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_bad_image_in_an_image_folder_is_one_line_naming_the_file(tmp_path: Path, corruption: str) -> None:
    folder, bad = _image_folder(tmp_path / "pets", corruption)
    with pytest.raises(DataError) as raised:
        dataset_schema(SourceSpec(str(folder), image_size=8))
    assert _one_line(raised).startswith(f"image file {str(bad)!r} cannot be read (")


def test_a_bad_image_in_a_nodes_own_data_names_the_file(tmp_path: Path) -> None:
    """Inside the ClientApp: a node's `data-path` is decoded there, and fails the same way."""
    folder, bad = _image_folder(tmp_path / "node", "truncated")
    with pytest.raises(DataError, match=f"image file {str(bad)!r} cannot be read") as raised:
        load_local_dataset(folder, SourceSpec("none", image_size=8))
    _one_line(raised)


def test_undecodable_image_bytes_in_a_parquet_name_the_column(tmp_path: Path) -> None:
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=["a", "b"])})
    images = [{"bytes": _png(), "path": None}] * 3 + [{"bytes": b"garbage", "path": None}]
    Dataset.from_dict({"img": images, "label": [0, 1, 0, 1]}, features=features).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DataError, match=r"^an image \(embedded bytes\) of column 'img' cannot be read") as raised:
        dataset_schema(SourceSpec(str(tmp_path / "t.parquet")))
    _one_line(raised)


def _with_cell(csv: Path, row: int, column: str, value: str) -> Path:
    """`csv` with the cell of `column` in data row `row` (1 = the first row after the header) set to `value`."""
    lines = csv.read_text().splitlines()
    position = lines[0].split(",").index(column)
    cells = lines[row].split(",")
    cells[position] = value
    lines[row] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    return csv


@pytest.mark.parametrize("listed", [(), ("x1", "x2", "x3")])
def test_a_text_cell_in_a_numeric_column_is_refused_naming_row_column_and_value(
    tmp_path: Path, listed: tuple[str, ...]
) -> None:
    """Before: without feature-columns, 'x2' was dropped silently and the run trained on 2 of 3 features."""
    csv = _with_cell(write_table_csv(tmp_path / "table.csv", count=30), 7, "x2", "oops")
    with pytest.raises(DataError) as raised:
        dataset_schema(SourceSpec(str(csv), task="regression", target_column="y", feature_columns=listed))
    assert _one_line(raised).startswith(
        f"feature column 'x2' of dataset {str(csv)!r} has 1 of 30 cells that are not numbers (row 7 holds 'oops')"
    )


def test_a_text_cell_only_in_the_test_split_is_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    write_table_csv(folder / "train.csv", count=30)
    _with_cell(write_table_csv(folder / "test.csv", count=10, seed=1), 4, "x3", "?")
    with pytest.raises(DataError, match=r"feature column 'x3' .* 1 of 10 cells .* \(row 4 holds '\?'\)") as raised:
        dataset_schema(SourceSpec(str(folder), task="regression", target_column="y"))
    _one_line(raised)


def test_text_columns_left_out_of_the_features_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    csv = write_table_csv(tmp_path / "table.csv", count=30)
    with caplog.at_level(logging.WARNING):
        schema = dataset_schema(SourceSpec(str(csv), task="regression", target_column="y"))
    assert schema.input_shape == (3,)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings == [
        f"[fedapp] dataset {str(csv)!r}: features x1, x2, x3; left out, not numeric: city (text) "
        "(set feature-columns to choose)"
    ]


def test_a_large_csv_with_text_after_its_first_chunk_is_one_line(tmp_path: Path) -> None:
    """The CSV reader types columns from its first 10,000 rows; a later text cell failed in `datasets`."""
    csv = _with_cell(write_table_csv(tmp_path / "big.csv", count=10_050), 10_020, "x1", "oops")
    with pytest.raises(DataError, match=f"^dataset {str(csv)!r} cannot be read as csv .*'oops'") as raised:
        dataset_schema(SourceSpec(str(csv), task="regression", target_column="y"))
    _one_line(raised)


def test_a_header_only_csv_is_refused_naming_the_key_and_the_file(tmp_path: Path) -> None:
    csv = tmp_path / "table.csv"
    csv.write_text("x1,x2,y\n")
    with pytest.raises(DataError, match=f"^dataset {str(csv)!r} holds no rows") as raised:
        dataset_schema(SourceSpec(str(csv), task="regression", target_column="y"))
    _one_line(raised)


def test_an_empty_file_in_a_folder_of_tables_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "tables"
    folder.mkdir()
    write_table_csv(folder / "train.csv", count=20)
    (folder / "test.csv").write_text("")
    with pytest.raises(DataError, match=f"^dataset {str(folder)!r}: file {str(folder / 'test.csv')!r} holds no rows"):
        dataset_schema(SourceSpec(str(folder), task="regression", target_column="y"))


def test_a_nodes_header_only_data_path_names_data_path(tmp_path: Path) -> None:
    csv = tmp_path / "node.csv"
    csv.write_text("x1,x2,y\n")
    with pytest.raises(DataError, match=f"^data-path {str(csv)!r} holds no rows"):
        load_local_dataset(csv, SourceSpec("none", task="regression", target_column="y"))


def _bad_datasets(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """Each broken dataset, the overrides it needs, and the start of the one line `python -m sim run` prints."""
    folder, bad = _image_folder(tmp_path / "pets", "garbage")
    typo = _with_cell(write_table_csv(tmp_path / "typo.csv", count=30), 5, "x1", "abc")
    empty = tmp_path / "empty.csv"
    empty.write_text("x1,x2,y\n")
    table = "task=regression target-column=y model=2nn"
    return {
        "image": (folder, "image-size=8", f"error: image file {str(bad)!r} cannot be read"),
        "text cell": (typo, table, "error: feature column 'x1' of dataset"),
        "no rows": (empty, table, f"error: dataset {str(empty)!r} holds no rows"),
    }


def _no_superlink(request: object) -> None:
    raise AssertionError("the bad dataset was accepted: the run would start")


@pytest.mark.parametrize("case", ["image", "text cell", "no rows"])
def test_the_cli_refuses_bad_data_in_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """`python -m sim run -c dataset=...` (in process: `main` is what the command returns); no SuperLink starts."""
    monkeypatch.setattr(sim_run, "ensure_superlink", _no_superlink)
    dataset, overrides, expected = _bad_datasets(tmp_path)[case]
    capsys.readouterr()
    command = ["run", "--app", str(APP_DIR), "-c", f"dataset={dataset!s} output-dir={tmp_path / 'out'!s} {overrides}"]
    assert sim_main.main(command) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines
    assert captured.out == "" and not (tmp_path / "out").exists()
