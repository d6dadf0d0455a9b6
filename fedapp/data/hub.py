"""Reading a dataset's rows: the hub and local files through `FederatedDataset`, image folders through torchvision.

`read(location)` returns the dataset's `train` split and, when it has one, its `test`
split, as `datasets.Dataset`s whose columns `rows.py` turns into arrays:

- `owner/name`: a hub dataset (online users), via flwr-datasets' `FederatedDataset`;
- a `.parquet` or `.csv` file, or a folder of them: the same `FederatedDataset`, with the
  `parquet` or `csv` builder and the files as `data_files` (files whose name starts with
  `test`, or that sit in a `test` folder, are the test split). A CSV's image column may
  hold image paths, relative to the CSV's folder. A file without rows is refused before
  it is read, and one the builder cannot parse is one line, not a `datasets` traceback;
- any other folder: an image folder read with torchvision's `ImageFolder`
  (`<folder>/<class>/<image>`, or `<folder>/train/<class>/<image>` and
  `<folder>/test/<class>/<image>`); its images and class names become the `image` and
  `label` columns of a `datasets.Dataset`, decoded like the hub's.

Every split is shuffled with a fixed seed (`FederatedDataset` does it for the first
two; the image folder's class-sorted listing is shuffled the same way), so a public
slice carved from the front of the pool draws from every class.
"""

from __future__ import annotations

import csv
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedapp.data.spec import DataError

SHUFFLE_SEED = 42
TABLE_SUFFIXES = {".parquet": "parquet", ".csv": "csv"}
TEST = "test"
OFFLINE_DATASETS = "mnist, diabetes, synthetic, or the absolute path of a local dataset"


@dataclass(frozen=True)
class Splits:
    """A dataset's rows: the train split, the test split if it has one, and the folder relative paths start from.

    Rows read from an image folder always have the columns `image` and `label`.
    """

    train: Any
    test: Any | None
    base: Path | None
    image_folder: bool = False


def is_local(location: str) -> bool:
    """True for a path on this machine (absolute), False for a hub id `owner/name`."""
    return os.path.isabs(location)


def read(location: str, key: str = "dataset") -> Splits:
    """The rows of the dataset at `location` (a hub id, a table file, a folder of tables, an image folder).

    `key` is the config key that named `location` (`dataset`, or a node's `data-path`),
    for the messages.

    Raises
    ------
    DataError
        If a hub dataset cannot be reached (e.g. offline), or a local path holds
        nothing fedapp can read (a table file without rows included).
    """
    if not is_local(location):
        return _hub(location)
    path = Path(location)
    if not path.exists():
        raise DataError(f"dataset path {location!r} does not exist on this machine")
    if path.is_file():
        builder = TABLE_SUFFIXES.get(path.suffix.lower())
        if builder is None:
            raise DataError(
                f"dataset file {location!r} is neither .parquet nor .csv; allowed: a parquet or CSV file, "
                "a folder of them, or an image folder"
            )
        check_rows(path, [path], key)
        return _federated(builder, {"train": [str(path)]}, path, key)
    for suffix, builder in TABLE_SUFFIXES.items():
        files = table_files(path, suffix)
        if files:
            check_rows(path, files, key)
            return _federated(builder, _split_files(path, files), path, key)
    return _image_folder(path)


def check_rows(path: Path, files: list[Path], key: str) -> None:
    """Refuse a table file of the dataset at `path` without a single row (a header-only CSV, an empty parquet).

    Such a file would otherwise surface much later as `datasets`' 'Instruction "train"
    corresponds to no data!'. Cheap: a CSV is read up to its first row, a parquet
    file's row count is in its footer.
    """
    for file in files:
        if not _has_rows(file):
            where = f"{key} {str(path)!r}" + (f": file {str(file)!r}" if file != path else "")
            raise DataError(
                f"{where} holds no rows (a header at most); allowed: CSV or parquet files with at least one row"
            )


def _has_rows(file: Path) -> bool:
    """True if the CSV or parquet `file` holds at least one row beyond a CSV's header."""
    if file.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415 (only for local parquet files)

        return pq.ParquetFile(file).metadata.num_rows > 0
    with file.open(newline="", encoding="utf-8", errors="replace") as handle:
        return any(any(cell.strip() for cell in row) for row in itertools.islice(csv.reader(handle), 1, None))


def dataset_files(path: Path) -> list[Path]:
    """The files `read(path)` reads: the file itself, a folder's tables, or an image folder's images."""
    if path.is_file():
        return [path]
    for suffix in TABLE_SUFFIXES:
        files = table_files(path, suffix)
        if files:
            return files
    return [Path(file) for file, _ in image_folder_files(path)]


def table_files(folder: Path, suffix: str) -> list[Path]:
    """The files with `suffix` anywhere under `folder`, sorted."""
    return sorted(file for file in folder.rglob(f"*{suffix}") if file.is_file())


def _split_files(folder: Path, files: list[Path]) -> dict[str, list[str]]:
    """`data_files` for `FederatedDataset`: test files (name or folder `test...`) apart from the rest."""
    splits: dict[str, list[str]] = {}
    for file in files:
        parts = file.relative_to(folder).parts
        split = TEST if file.stem.lower().startswith(TEST) or TEST in parts[:-1] else "train"
        splits.setdefault(split, []).append(str(file))
    if "train" not in splits:
        raise DataError(f"dataset folder {str(folder)!r} holds only test files; allowed: train files beside them")
    return splits


def _hub(name: str) -> Splits:
    """A hub dataset through `FederatedDataset`; an unreachable hub is one line, not a traceback."""
    try:
        return _load_federated({"dataset": name}, None)
    except OSError as error:  # ConnectionError, HTTP errors: offline or no such dataset
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"dataset {name!r} is on the Hugging Face hub and could not be loaded ({reason}): this machine may be "
            f"offline; allowed offline: {OFFLINE_DATASETS}"
        ) from None


def _federated(builder: str, data_files: dict[str, list[str]], path: Path, key: str) -> Splits:
    """The table files at `path` (a file, or a folder of them) through `FederatedDataset`.

    Relative paths in them start from the file's folder. A file its builder cannot
    parse is one line naming `key` and `path`, not a `datasets` traceback.
    """
    from datasets.exceptions import DatasetGenerationError  # noqa: PLC0415 (heavy import, only on a cache miss)

    try:
        return _load_federated({"dataset": builder, "data_files": data_files}, path.parent if path.is_file() else path)
    except DatasetGenerationError as error:  # e.g. text in a column whose first rows were numbers
        cause = error.__cause__ or error
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise DataError(
            f"{key} {str(path)!r} cannot be read as {builder} ({reason}); allowed: one type per column "
            "(numbers only in a numeric column)"
        ) from None


def _load_federated(arguments: dict[str, Any], base: Path | None) -> Splits:
    """Load the splits with `FederatedDataset` (shuffled with `SHUFFLE_SEED`), as for a hub dataset."""
    from datasets import disable_progress_bars  # noqa: PLC0415 (heavy import, only on a cache miss)
    from flwr_datasets import FederatedDataset  # noqa: PLC0415

    disable_progress_bars()
    federated = FederatedDataset(partitioners={"train": 1}, shuffle=True, seed=SHUFFLE_SEED, **arguments)
    train = federated.load_split("train")
    try:
        test = federated.load_split(TEST)
    except ValueError:  # the dataset has no test split (it is loaded by now, so nothing else raises here)
        test = None
    return Splits(train, test, base)


def _image_folder(path: Path) -> Splits:
    """`<path>/[train|test/]<class>/<image>` through torchvision's `ImageFolder`, as `image`/`label` rows."""
    if (path / "train").is_dir():
        test = _folder_rows(path / TEST) if (path / TEST).is_dir() else None
        return Splits(_folder_rows(path / "train"), test, path, image_folder=True)
    return Splits(_folder_rows(path), None, path, image_folder=True)


def image_folder_files(path: Path) -> list[tuple[str, str]]:
    """(image path, class name) of every image in an image folder, as torchvision's `ImageFolder` lists them."""
    from torchvision.datasets import ImageFolder  # noqa: PLC0415 (only when reading an image folder)

    try:
        folder = ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as error:
        raise DataError(
            f"dataset folder {str(path)!r} is not an image folder ({str(error).splitlines()[0]}); allowed: parquet or "
            "CSV files, or images in <folder>/<class>/<image>"
        ) from None
    return [(file, folder.classes[index]) for file, index in folder.samples]


def _folder_rows(path: Path) -> Any:
    """An image folder's listing as a shuffled `datasets.Dataset` with `image` (decoded lazily) and `label` columns."""
    from datasets import Dataset, Features, Image, Value  # noqa: PLC0415 (heavy import, only on a cache miss)

    files = image_folder_files(path)
    features = Features({"image": Image(), "label": Value("string")})
    rows = Dataset.from_dict({"image": [file for file, _ in files], "label": [name for _, name in files]}, features)
    return rows.shuffle(seed=SHUFFLE_SEED)
