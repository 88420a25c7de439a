"""Reading the list files of dataset layouts (ImageSets/*.txt): one name per line, as users' editors save them."""
from __future__ import annotations

from typing import List, Type


def read_list_lines(path: str, error: Type[Exception] = ValueError) -> List[str]:
    """The non-empty lines of the list file `path`, stripped; UTF-8 with or without a byte order mark.

    Raises `error` naming the file for text that is not UTF-8, and for UTF-16 without a byte order mark (it
    decodes as UTF-8 with a NUL beside every ASCII letter: no name holds one). OSError passes through.
    """
    with open(path, "rb") as f:
        data = f.read()
    try:
        # Decoded whole (a text reader's error offsets count from its chunk, not the file); a leading byte order
        # mark dropped: Windows editors start UTF-8 files with one, which would stay in the first name.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        # A byte order mark says UTF-16; other bytes above 127 are most often an 8-bit code page's letters.
        guess = ("UTF-16, as Windows Notepad's \"Unicode\" saves it" if data[:2] in (b"\xff\xfe", b"\xfe\xff")
                 else "Latin-1 or Windows-1252, as older editors save accented letters")
        before = data[:err.start]  # lines end as a text reader takes them: \n, \r\n or \r
        line = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1
        where = f"byte 0x{data[err.start:err.start + 1].hex()} on line {line}"
        raise error(f"{path}: not UTF-8 text ({where}: {err.reason}; {guess}?); save the file as UTF-8, one "
                    "entry per line.") from err
    # Line ends as a text reader takes them (\n, \r\n, \r); str.splitlines would split at form feeds and more.
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if any("\x00" in line for line in lines):
        raise error(f"{path}: the file holds NUL characters (UTF-16 text without a byte order mark?); save it as "
                    "UTF-8, one entry per line.")
    return lines
