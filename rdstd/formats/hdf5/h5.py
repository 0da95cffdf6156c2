"""h5py, opened safely: lazy import, one-line errors for unopenable files, links and filters checked first.

Everything that touches an ``h5py.File`` directly goes through here, so the rules hold in one place:

- a file that h5py cannot open (truncated, not HDF5) is a :class:`CorruptSourceError` naming the file; a Git LFS
  pointer is an :class:`LfsPointerError` with the fetch command; an unreadable file names the OS reason;
- external links and virtual datasets must point at files inside the source folder that exist: h5py would
  follow a link anywhere, and it silently returns fill values for a virtual dataset whose source is missing;
- datasets compressed with a filter plain h5py lacks (blosc, bitshuffle, zstd, …) need ``hdf5plugin``, imported
  only then, with an error naming the extra when it is not installed.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from rdstd.errors import CorruptSourceError, MissingDependencyError, SourceError
from rdstd.formats.files import check_readable
from rdstd.lfs import raise_if_pointer
from rdstd.paths import normalized

#: Filters plain h5py reads: deflate (gzip), shuffle, fletcher32, szip, nbit, scaleoffset, lzf.
_BUILTIN_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})
#: Filter ids hdf5plugin provides (the common ones; any other unknown id also asks for it).
PLUGIN_FILTERS = {32001: "blosc", 32004: "lz4", 32008: "bitshuffle", 32015: "zstd", 32026: "blosc2"}
#: Attribute strings longer than this go once per dataset in ``info().extra`` (not per episode).
LARGE_ATTR_CHARS = 4096
#: Non-per-step arrays up to this many elements are kept in the episode's meta as lists.
SMALL_ARRAY_ELEMENTS = 4096


def import_h5py() -> Any:
    """The ``h5py`` module, or a :class:`MissingDependencyError` naming the ``hdf5`` extra."""
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("h5py", "hdf5", purpose="read HDF5 datasets") from exc
    return h5py


def open_file(path: Path, root: Path) -> Any:
    """Open ``path`` read-only; every way it can fail becomes one line naming the file."""
    check_readable(path, root)
    h5py = import_h5py()
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise_if_pointer(path, root)
        raise CorruptSourceError(
            f"{path}: h5py cannot open it ({_reason(exc)})",
            hint="the file is truncated or not HDF5; re-download or re-copy it",
            situation="hdf5-unreadable",
        ) from exc


@contextmanager
def reading(where: str) -> Iterator[None]:
    """Reads of ``where`` (a file, or ``file:/dataset``): h5py's error on damaged bytes (a B-tree node or a chunk
    that does not decode; it names no file) becomes one line naming it, so ``--on-error skip`` can skip the
    episode instead of stopping on an internal error."""
    try:
        yield
    except OSError as exc:
        raise CorruptSourceError(
            f"{where}: h5py cannot read it ({_reason(exc)})",
            hint="the file is damaged (a bad block or an incomplete copy); re-download or re-copy it",
            situation="hdf5-data-unreadable",
        ) from exc


@contextmanager
def walking(path: Path) -> Iterator[None]:
    """Walks of ``path``'s groups, links and attributes: a damaged object header or link makes h5py raise a
    ``KeyError`` or ``RuntimeError`` ("Unable to ... (unable to determine object type)", or from HDF5's own link
    and object walks "Link visitation failed (...)", naming no file) or an ``OSError``; that becomes one
    line naming the file (as :func:`reading`), so a folder's other files still convert. Other errors pass as they
    are."""
    try:
        with reading(str(path)):
            yield
    except (KeyError, RuntimeError) as exc:
        if not str(exc).strip("'\"").startswith(_H5PY_FAILURES):  # h5py's wording; anything else is not the file's
            raise
        raise CorruptSourceError(
            f"{path}: h5py cannot read its structure ({_reason(exc)})",
            hint="the file is damaged (a bad block or an incomplete copy); re-download or re-copy it",
            situation="hdf5-data-unreadable",
        ) from exc


#: How h5py's errors about a damaged file begin (its object lookups, and HDF5's link and object walks).
_H5PY_FAILURES = ("Unable to", "Iteration operator failed", "Link visitation failed", "Object visitation failed")


def _reason(exc: Exception) -> str:
    """h5py's error message without its wrapper (the part in parentheses, when there is one)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # a KeyError's str quotes it
    return text.split("(", 1)[-1].rstrip(")") if "(" in text else text


def dataset_where(dataset: Any) -> str:
    """``file:/dataset`` of an h5py dataset, for errors."""
    return f"{dataset.file.filename}:{dataset.name}"


def text(value: Any) -> Any:
    """An attribute value made plain: bytes to str, numpy scalars and arrays to Python values."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [text(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    return value


def attrs(obj: Any) -> dict[str, Any]:
    """Every attribute of an HDF5 object, plain (see :func:`text`)."""
    return {str(k): text(v) for k, v in obj.attrs.items()}


def json_attr(obj: Any, name: str) -> tuple[Any, str]:
    """The attribute ``name`` parsed as JSON: (value, "") or (None, why it is not JSON)."""
    if name not in obj.attrs:
        return None, "absent"
    raw = text(obj.attrs[name])
    if not isinstance(raw, str):
        return raw, ""
    try:
        return json.loads(raw), ""
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at {exc.pos})"


def walk(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(relative path, dataset) for every dataset below ``group``, depth first, names sorted naturally."""
    h5py = import_h5py()
    for name in sorted(group.keys(), key=natural_key):
        path = f"{prefix}{name}"
        item = group.get(name)  # one lookup; None for a dangling soft or external link (check_links refuses those)
        if item is None:
            continue
        if isinstance(item, h5py.Dataset):
            yield path, item
        elif isinstance(item, h5py.Group):
            yield from walk(item, f"{path}/")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders ``demo_2`` before ``demo_10`` (numbers compared as numbers)."""
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def check_links(file: Any, path: Path, root: Path) -> None:
    """Refuse external links and virtual-dataset sources outside ``root`` or missing (one line naming the key)."""
    h5py = import_h5py()
    base = normalized(root)

    def target_ok(filename: str, key: str, what: str) -> None:
        if filename in (".", ""):
            return
        candidate = Path(filename)
        resolved = normalized(candidate if candidate.is_absolute() else path.parent / candidate)
        if resolved != base and not resolved.is_relative_to(base):
            raise SourceError(
                f"{path}: {key} is {what} pointing outside the source folder ({filename!r})",
                hint="copy the target file into the dataset folder; rdstd reads nothing outside it",
                situation="link-outside-source",
            )
        if not resolved.is_file():
            raise CorruptSourceError(
                f"{path}: {key} is {what} whose target file is missing ({filename!r})",
                hint="h5py would return fill values for it; copy the missing file next to this one",
                situation="link-target-missing",
            )

    from h5py import h5d, h5l, h5o

    # Hard links are most of a file and need nothing but a look at the datasets' layout: the soft and external
    # links are listed by HDF5's own walk (which follows hard links only), the datasets by its object walk (each
    # object once), and only those two kinds of link and the virtual datasets get an h5py object.
    linked: list[bytes] = []
    file.id.links.visit(lambda name, info: None if info.type == h5l.TYPE_HARD else linked.append(name), info=True)
    for key in (n.decode("utf-8", "surrogateescape") for n in linked):
        link = file.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            target_ok(link.filename, key, "an external link")
        elif isinstance(link, h5py.SoftLink) and file.get(key) is None:
            raise CorruptSourceError(
                f"{path}: {key} is a soft link to {link.path!r}, which does not exist", situation="link-target-missing"
            )
    datasets: list[bytes] = []
    h5o.visit(file.id, lambda name, info: datasets.append(name) if info.type == h5o.TYPE_DATASET else None, info=True)
    for name in datasets:
        if h5d.open(file.id, name).get_create_plist().get_layout() == h5d.VIRTUAL:
            key = name.decode("utf-8", "surrogateescape")
            for source in file[key].virtual_sources():
                target_ok(source.file_name, key, "a virtual dataset")


def check_filters(dataset: Any, path: Path, key: str) -> None:
    """Import ``hdf5plugin`` when ``dataset`` needs a filter plain h5py lacks; error naming the extra otherwise."""
    try:
        plist = dataset.id.get_create_plist()
        ids = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    except (AttributeError, ValueError, OSError):
        return
    needed = [i for i in ids if i not in _BUILTIN_FILTERS]
    if not needed:
        return
    names = ", ".join(PLUGIN_FILTERS.get(i, f"filter {i}") for i in needed)
    try:
        importlib.import_module("hdf5plugin")  # importing it registers its filters with HDF5
    except ImportError as exc:
        raise MissingDependencyError(
            "hdf5plugin", "hdf5", purpose=f"read {path}:{key} (compressed with {names})"
        ) from exc
