"""Reading the list files of dataset layouts (ImageSets/*.txt): one name per line, as users' editors save them."""
from __future__ import annotations

from typing import List, Type


def read_list_lines(path: str, error: Type[Exception] = ValueError) -> List[str]:
    """The non-empty lines of the list file `path`, stripped; UTF-8 with or without a byte order mark.

    Raises `error` naming the file for text that is not UTF-8, and for UTF-16 without a byte order mark (it
    decodes as UTF-8 with a NUL beside every ASCII letter: no name holds one). OSError passes through.
    """
    try:
        # utf-8-sig: Windows editors start UTF-8 files with a BOM, which would stay in the first name.
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as err:
        # A byte order mark says UTF-16; other bytes above 127 are most often an 8-bit code page's letters.
        guess = ("UTF-16, as Windows Notepad's \"Unicode\" saves it" if err.object[:2] in (b"\xff\xfe", b"\xfe\xff")
                 else "Latin-1 or Windows-1252, as older editors save accented letters")
        raise error(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}; {guess}?); save the file as UTF-8, one "
                    "entry per line.") from err
    if any("\x00" in line for line in lines):
        raise error(f"{path}: the file holds NUL characters (UTF-16 text without a byte order mark?); save it as "
                    "UTF-8, one entry per line.")
    return lines
