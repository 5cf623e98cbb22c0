"""What a `.txt` (or MOT's `seqinfo.ini`) is, and the module that reads it.

An image's own file, found by where it lies (`text_image`): YOLO's rule (`labels/` for
`images/`, or beside the image), KITTI's (`label_2/` for `image_2/`, `calib/`), DOTA's
(`labelTxt/` for `images/`), ICDAR 2015's (`gt_NAME.txt` for NAME). Its lines then say
which format it is, in this order: YOLO rows (numbers only), KITTI objects (a type, 14
numbers), DOTA objects (8 numbers, a category), ICDAR words (8 numbers and a text,
comma-separated); a file in KITTI's or DOTA's folders is read as that format whatever
it holds (a line that is not rejects the image, naming the line), a `gt_NAME.txt` as
ICDAR's if its first line is (else it is reported, its image kept), one under `labels/`
or below YOLO class names as YOLO; anything else beside an image is its `text`.

A file of a dataset's (`read_shared`), by its name: WIDER FACE's `wider_face_*_bbx_gt.txt`
and test file list, MOT's `gt/gt.txt`, `det/det.txt`, `gt/labels.txt`, `seqinfo.ini`,
PPOCRLabel's `fileState.txt`; then by its lines: WIDER FACE's shape under any name,
PaddleOCR's `path<TAB>label` lines, a list named for a split (`lists`). A file none of
these places is reported alone, with what it looks like (`looks`); none is called a list
unless its lines name images here.
"""

from __future__ import annotations

from collections.abc import Callable

from . import dota, kitti, mot, ocr, widerface
from .base import AnnotationError, Annotations, KeyIndex, Own, folder_of, resolve, text_of
from .lines import Lines, numbered_lines, numbers
from .lists import list_split, read_list
from .looks import looks_like
from .yolo import Yolo, label_image, under_labels


def text_image(rel: str, keys: KeyIndex) -> tuple[str, str] | None:
    """The image a `.txt` is the own file of, and by which layout: "yolo" (under
    `labels/`), "beside", "kitti", "calib", "dota", "icdar"; None for a file that may
    speak of any image."""
    if not rel.endswith(".txt"):
        return None
    image = label_image(rel, keys)
    if image is not None:
        return image, "yolo" if under_labels(rel) else "beside"
    found = kitti.label_image(rel, keys)
    if found is not None:
        return found
    image = dota.label_image(rel, keys)
    if image is not None:
        return image, "dota"
    image = ocr.icdar_image(rel, keys)
    return None if image is None else (image, "icdar")


def reach(rel: str, keys: KeyIndex) -> Own | None:
    """An image's own `.txt` (text_image) reaches that image alone; None for a text file
    of a dataset's, which may speak of any image."""
    found = text_image(rel, keys)
    return None if found is None else Own(found[0])


# ------------------------------------------------------------------ an image's own


def read_own(
    rel: str, data: bytes, image: str, layout: str, yolo: Yolo, result: Annotations
) -> None:
    """An image's own `.txt`, read as the format its place and lines say; a file that
    does not parse rejects that one image, with the reason."""
    try:
        lines = numbered_lines(rel, data)
        fmt = _own_format(rel, lines, layout, yolo)
        if fmt is None:
            result.unused.append(
                f"{rel}: {looks_like(lines)}; named as ICDAR 2015's gt_NAME.txt are, but not "
                "its lines (x1,y1,x2,y2,x3,y3,x4,y4,transcription)"
            )
            return
        result.files.append(rel)
        if fmt == "yolo":
            yolo.read_label(rel, data, image)
        elif fmt == "text":
            result.set(image, {"text": text_of(rel, data).rstrip("\r\n")})
        else:
            _OWN[fmt](rel, lines, image, result)
    except AnnotationError as exc:
        result.files.append(rel)
        result.broken[image] = str(exc)


_OWN: dict[str, Callable[[str, Lines, str, Annotations], None]] = {
    "kitti": kitti.read_label,
    "calib": kitti.read_calib,
    "dota": dota.read_label,
    "icdar": ocr.read_icdar,
}


def _own_format(rel: str, lines: Lines, layout: str, yolo: Yolo) -> str | None:
    """The format of an image's own file; None for a `gt_NAME.txt` that is not ICDAR's
    (ICDAR 2013's boxes, say): reported, and its image kept."""
    if layout == "icdar":
        return "icdar" if not lines or ocr.is_icdar(lines[:1]) else None
    if layout in _OWN:
        return layout  # KITTI's and DOTA's own folders: their lines must be theirs
    yolo_place = layout == "yolo" or yolo.names_for_label(rel) is not None
    # Where YOLO's labels are (a dataset has one per image), the first lines tell the
    # format: its reader then reads every line, and rejects the image at a bad one.
    # Beside an image, a caption may start with numbers: every line must be a format's.
    sample = lines[:3] if yolo_place else lines
    if all(_yolo_row(line) for _n, line in sample):
        return "yolo"
    for fmt, test in (("kitti", kitti.is_kitti), ("dota", dota.is_dota), ("icdar", ocr.is_icdar)):
        if test(sample):
            return fmt
    return "yolo" if yolo_place else "text"  # YOLO's reader rejects the image, naming the line


def _yolo_row(line: str) -> bool:
    """A line of a YOLO label file: a class and at least four numbers."""
    cells = line.split()
    return len(cells) >= 5 and numbers(cells) is not None


# ------------------------------------------------------------------ a dataset's


def read_shared(
    rel: str, whole: Callable[[str], bytes], keys: KeyIndex, files: list[str], result: Annotations
) -> None:
    """A text file that may speak of any image: read by the format its name or lines
    say, or reported with what it looks like."""
    data = whole(rel)
    try:
        lines = numbered_lines(rel, data)
    except AnnotationError:
        result.not_text.append(rel)  # an image named x.txt, maybe: ingest looks
        return
    if rel.lower().endswith(".ini"):
        _read_ini(rel, data, keys, result)
    elif not _by_name(rel, lines, whole, keys, files, result):
        _by_lines(rel, data, lines, keys, result)


def _read_ini(rel: str, data: bytes, keys: KeyIndex, result: Annotations) -> None:
    if rel.rpartition("/")[2] != mot.SEQINFO:
        result.unused.append(f"{rel}: an INI file, and only MOT's seqinfo.ini is read")
        return
    result.files.append(rel)
    mot.read_seqinfo(rel, data, keys, result)


def _by_name(
    rel: str,
    lines: Lines,
    whole: Callable[[str], bytes],
    keys: KeyIndex,
    files: list[str],
    result: Annotations,
) -> bool:
    """Read a file its name places (True), or leave it (False)."""
    wider = widerface.subset_of(rel)
    kind = mot.kind_of(rel)
    if wider is not None:
        reader = widerface.read_bbx if wider[0] == "bbx" else widerface.read_file_list
        reader(rel, lines, wider[1], keys, result)
    elif kind == "labels":
        if rel.removesuffix("labels.txt") + "gt.txt" not in files:
            return False  # not CVAT's MOT export: read by its lines
    elif kind is not None:  # gt.txt or det.txt (CVAT's labels.txt: read by gt.txt's reader)
        if not mot.is_mot(lines):
            return False
        mot.read_tracks(rel, lines, keys, files, whole, result)
    elif rel.rpartition("/")[2] == ocr.PPOCRLABEL_STATE:
        result.note(f"{rel}: PPOCRLabel's record of which images were checked: not stored")
    else:
        return False
    result.files.append(rel)
    return True


def _by_lines(rel: str, data: bytes, lines: Lines, keys: KeyIndex, result: Annotations) -> None:
    rows = ocr.tab_rows(lines)
    split = list_split(rel)
    if widerface.looks_like_bbx(lines):
        result.files.append(rel)
        widerface.read_bbx(rel, lines, "", keys, result)
    elif rows is not None and ocr.read_paddle(rel, rows, keys, result):
        result.files.append(rel)
    elif split is not None and rows is None:
        result.files.append(rel)
        read_list(rel, data, split, keys, result)
    else:
        result.unused.append(_unplaced(rel, lines, keys))


def _unplaced(rel: str, lines: Lines, keys: KeyIndex) -> str:
    """Why a text file gives nothing: what it looks like, and where its image would be
    for a file laid out as an image's own."""
    listed = sum(resolve(folder_of(rel), line, keys) is not None for _n, line in lines)
    if listed:
        return (
            f"{rel}: a list of images ({listed} of its {len(lines)} line(s) name one here), "
            "but its name says no split: name it train.txt, val.txt or test.txt for the split "
            "it stands for"
        )
    looks = looks_like(lines)
    rows = ocr.tab_rows(lines)
    if rows is not None:
        return (
            f"{rel}: {looks}, but none of its paths names an image here (first: {rows[0][1][:80]})"
        )
    for fmt, where in (("KITTI", kitti.where(rel)), ("DOTA", dota.where(rel))):
        if where is not None:
            return f"{rel}: {looks}; in {fmt}'s layout, but no image {where}"
    if under_labels(rel):
        return f"{rel}: {looks}; no image of that name where YOLO puts its labels"
    if rel.rpartition("/")[2].startswith("gt_"):
        return f"{rel}: {looks}; no one image NAME beside it or in a folder beside its own"
    return (
        f"{rel}: {looks}; not read: not an image's labels or text (no image of its name), "
        "nor a file a reader knows by its name or lines"
    )
