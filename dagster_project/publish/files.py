"""Writing output files: each written whole or not at all, JSON in one canonical form, a folder
holding exactly the documents given."""

import json
import os
import secrets
from pathlib import Path

import orjson


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside the target, then rename: a killed run never leaves half a file.

    The file gets the mode a plain `open()` gives (0666 less the umask), not the 0600 of
    `tempfile`'s files: the kernel applies the umask to the mode asked for at creation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        partial = path.with_name(f"{path.name}.{secrets.token_hex(6)}.partial")
        try:
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:  # another writer's name: draw again
            continue
    try:
        with open(fd, "wb") as tmp:
            tmp.write(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)  # (a full disk, a folder in the way: no partial file left)
        raise


# orjson writes the canonical form below (two-space indent, sorted keys, UTF-8, `str()` of what
# JSON has no type for, a final newline) byte for byte, at a tenth of the cost of the standard
# library's encoder, which is pure Python once `indent` is set.
_ORJSON_CANONICAL = (orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
                     | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS)


def json_bytes(document: dict) -> bytes:
    """The canonical JSON of `document`: `json.dumps(indent=2, sort_keys=True, ensure_ascii=False,
    default=str)` and a newline, as UTF-8. Written by orjson; what orjson refuses (an integer
    beyond 64 bits, a key that is not a string) by the standard library, with the same result.
    (The one difference: a float below 0.0001 prints as `0.00001`, not `1e-05`. The only floats
    published are tax rates in percent, such as 19.6.)"""
    try:
        return orjson.dumps(document, default=str, option=_ORJSON_CANONICAL)
    except orjson.JSONEncodeError:
        return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def write_json_atomically(path: Path, document: dict) -> None:
    write_atomically(path, json_bytes(document))


def write_changed(folder: Path, documents: dict[str, dict | bytes]) -> None:
    """Write every document (JSON, or bytes as they are) whose file in `folder` does not already
    hold exactly those bytes; other files are left as they are."""
    folder.mkdir(parents=True, exist_ok=True)
    base = os.fspath(folder)  # (plain paths: tens of thousands of files a run)
    for name, document in documents.items():
        data = document if isinstance(document, bytes) else json_bytes(document)
        if _content(os.path.join(base, name), len(data)) != data:
            write_atomically(folder / name, data)


def replace_folder(folder: Path, documents: dict[str, dict | bytes], keep=frozenset()) -> None:
    """Write every document (JSON, or bytes as they are) whose file does not already hold exactly
    those bytes, and remove files no longer produced: all but `documents` and the names in `keep`
    (files still published, recognized unchanged without being built)."""
    write_changed(folder, documents)
    with os.scandir(os.fspath(folder)) as entries:
        for stale in entries:
            if (stale.is_file() and stale.name not in documents and stale.name not in keep
                    and not stale.name.endswith(".partial")):
                os.unlink(stale.path)


def _content(path: str, size: int) -> bytes | None:
    """The bytes of the file at `path` if it is `size` long (a file of another size cannot hold
    the same bytes: it is not read); None when there is no such file."""
    try:
        with open(path, "rb") as file:
            if os.fstat(file.fileno()).st_size != size:
                return None
            return file.read()
    except (FileNotFoundError, IsADirectoryError):
        return None
