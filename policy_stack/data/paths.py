"""The `data_path` / `video_path` templates of meta/info.json, validated before anything is opened.

info.json is input from disk, so its templates are untrusted: str.format would evaluate
`{chunk_index.__class__.__mro__}`, build a gigabyte string from `{chunk_index:>1000000000}`, and an
absolute or `..` template opens files anywhere. A template here may hold only the fields LeRobot v3.0
uses (`chunk_index`, `file_index`, and `video_key` in video_path), with at most an integer format spec
such as LeRobot's `:03d`; literal text must be a relative path without `..`. Every formatted path is
then resolved (symlinks included) and must stay inside the dataset root.
"""
from __future__ import annotations

import re
import string
from pathlib import Path, PurePosixPath

TEMPLATE_FIELDS = {"data_path": ("chunk_index", "file_index"),
                   "video_path": ("chunk_index", "file_index", "video_key")}
INT_SPEC = re.compile(r"0?[1-9]?[0-9]?d")      # "", "d", "3d", "03d": widths up to 99
MAX_TEMPLATE_CHARS = 512
MAX_INDEX = 10**9                                # chunk/file numbers an episodes table may name


class PathTemplateError(ValueError):
    """A path template or a formatted path breaks the rules above; the message names the key."""


def validate_template(template, key: str, where: str) -> None:
    """Raise PathTemplateError unless `template` is a LeRobot-style relative path template for `key`."""
    if not isinstance(template, str) or not template:
        raise PathTemplateError(f"{where}: {key} must be a non-empty string, got {template!r}")
    if len(template) > MAX_TEMPLATE_CHARS or "\x00" in template or "\\" in template:
        raise PathTemplateError(f"{where}: {key} is not a plain relative path template")
    allowed = TEMPLATE_FIELDS[key]
    literal = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PathTemplateError(f"{where}: {key} {template[:80]!r} is not a valid template ({exc})") from exc
    for text, field, spec, conversion in parts:
        literal.append(text)
        if field is None:
            continue
        if field not in allowed:
            raise PathTemplateError(f"{where}: {key} uses field {{{field[:40]}}}; allowed: "
                                    f"{', '.join('{' + f + '}' for f in allowed)}")
        if conversion is not None:
            raise PathTemplateError(f"{where}: {key} field {{{field}}} has a conversion (!{conversion})")
        if field == "video_key" and spec:
            raise PathTemplateError(f"{where}: {key} field {{video_key}} takes no format spec")
        if field != "video_key" and spec and not INT_SPEC.fullmatch(spec):
            raise PathTemplateError(f"{where}: {key} field {{{field}}} has format spec {spec[:20]!r}; "
                                    f"only integer widths such as '03d' are allowed")
        literal.append("X")
    path = PurePosixPath("".join(literal))
    if path.is_absolute() or ".." in path.parts:
        raise PathTemplateError(f"{where}: {key} {template[:80]!r} must be a path inside the dataset "
                                f"(relative, without '..')")
    for field in allowed:
        if "{" + field not in template:
            raise PathTemplateError(f"{where}: {key} {template[:80]!r} lacks {{{field}}}")


def format_confined(root: Path, template: str, key: str, **fields) -> Path:
    """root / template.format(**fields), refusing field values that are not small non-negative ints
    (video_key: a plain name) and any result that resolves outside root."""
    for name, value in fields.items():
        if name == "video_key":
            if not isinstance(value, str) or not value or "/" in value or value in (".", "..") or "\x00" in value:
                raise PathTemplateError(f"{root}: video key {str(value)[:40]!r} is not a plain name")
        elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INDEX:
            raise PathTemplateError(f"{root}: {name} {str(value)[:40]!r} in the episodes table is not an "
                                    f"integer in 0..{MAX_INDEX}")
    path = Path(root) / template.format(**fields)
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise PathTemplateError(f"{path}: {key} resolves outside the dataset folder {base}")
    return path
