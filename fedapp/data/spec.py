"""What a run's data is: which dataset and columns to read (`SourceSpec`), and what a model sees (`Schema`)."""

from __future__ import annotations

from dataclasses import dataclass

from fedapp.choices import CLASSIFICATION, REGRESSION

IMAGE, TABLE, VECTOR = "image", "table", "vector"
"""Kinds of data: images (C, H, W), table rows (F,), or feature vectors used as they are (Synthetic)."""


class DataError(ValueError):
    """A dataset cannot be read as the run asks (a missing column, mixed image sizes, ...): one line says why."""


@dataclass(frozen=True)
class SourceSpec:
    """Which dataset to read and how: the name, the task, the columns and the image size.

    Every field changes the arrays a dataset is reduced to, so the whole spec is part
    of the cache key: reading the same files with other columns is another source.
    """

    name: str
    task: str = CLASSIFICATION
    image_column: str = ""
    label_column: str = ""
    target_column: str = ""
    feature_columns: tuple[str, ...] = ()
    image_size: int = 0
    partition_by: str = ""


@dataclass(frozen=True)
class Schema:
    """What a model of the run takes and gives: the shape of one input, the classes (0: regression), the kind."""

    input_shape: tuple[int, ...]
    num_classes: int
    task: str
    kind: str

    @property
    def num_outputs(self) -> int:
        """Outputs of the model: one logit per class, or one value for regression."""
        return 1 if self.task == REGRESSION else self.num_classes

    def describe_input(self) -> str:
        """The input shape as people write it: `3x32x32`, or `10 features`."""
        if self.kind == IMAGE:
            return "x".join(str(size) for size in self.input_shape) + " images"
        return f"{self.input_shape[0]} features"
