"""Annotations in the formats datasets ship in, read into metadata fields per image key.

The same reader serves both places annotations live: `data/incoming/`, where they arrive
with their images, and `data/annotations/`, tracked by git, where they are kept and
corrected. An annotation file at `FOLDER/file` speaks of the images under `FOLDER/`
(paths inside it are relative to FOLDER), in either place, so a dataset's files can be
moved from one to the other as they are.

One module per format, each the reference's reading of it:

- `tables`: CSV, TSV, JSON Lines, Parquet (Hugging Face's `metadata.*`); `imagetables`:
  the rows that name images by path (a second `*_file_name` column a paired image), lists
  of image pairs, and what a table no reader places looks like;
- `sidecars`: `NAME.json` beside an image;
- `coco`: COCO instances, keypoints, captions, panoptic (pycocotools);
- `yolo`: YOLO labels, class names, data.yaml (ultralytics; CVAT, Label Studio);
- `voc`: Pascal VOC XML (torchvision);
- `cvat`: CVAT for images and CVAT for video XML (CVAT's exporter, datumaro);
- `labelme`: LabelMe's JSON, its embedded image too (labelme's loader);
- `fiftyone`: FiftyOne's image detection and classification datasets (its importers);
- `labelstudio`: Label Studio's JSON export (label-studio-sdk's converter);
  `labelstudio_min`: its CSV, TSV and JSON_MIN exports;
- `openimages`: Open Images' CSVs (FiftyOne's importer);
- `lists`: image lists that give a split (VOC's ImageSets, YOLO's train.txt);
- `kitti`, `dota`, `widerface`, `celeba`, `ocr` (ICDAR 2015, PaddleOCR), `mot`: the
  datasets whose annotations are text files; `texts`: which of them a `.txt` is, and
  `looks`: what one none of them places looks like;
- `folders`: the split and label an image's folders give (HF, torchvision);
- `reader`: the order they are read in; `reach`: which images each file reaches (what
  a change to it can change, for ingest's cache); `values`: how a table's cells are typed.

The format modules stand side by side: none imports another (pyproject's contract for
this folder). What several share lies below them: `base` (keys, files, `resolve`,
`parse_xml`), `tables` (a table's rows), `lines`, `embedded` (LabelMe's imageData),
`labelstudio_results` (Label Studio's regions), `pairs` (paired images, class names).

Boxes from every format become COCO's: `objects: [{"bbox": [x, y, width, height],
"category": NAME, ...}, ...]` in pixels.
"""

from .base import (
    EVERYTHING,
    AnnotationError,
    Annotations,
    Below,
    Everything,
    KeyIndex,
    Limits,
    Own,
    Reach,
    Reader,
    Rows,
)
from .folders import folder_fields, split_of_name
from .kinds import ANNOTATION_SUFFIXES, IgnoreRules, annotation_kind
from .reach import gives_meaning, gives_rows, own_reach, reach
from .reader import place_reader, read_annotations, read_place
from .tables import KNOWN_FIELDS, PATH_COLUMNS
from .values import strict_json, typed, typed_column

__all__ = [
    "ANNOTATION_SUFFIXES",
    "EVERYTHING",
    "KNOWN_FIELDS",
    "PATH_COLUMNS",
    "AnnotationError",
    "Annotations",
    "Below",
    "Everything",
    "IgnoreRules",
    "KeyIndex",
    "Limits",
    "Own",
    "Reach",
    "Reader",
    "Rows",
    "annotation_kind",
    "folder_fields",
    "gives_meaning",
    "gives_rows",
    "own_reach",
    "place_reader",
    "reach",
    "read_annotations",
    "read_place",
    "split_of_name",
    "strict_json",
    "typed",
    "typed_column",
]
