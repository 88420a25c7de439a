"""Parse-time checks of the CLIs' numeric flags, and flag parsing that exits with status 2 on bad values.

absl ends a failed parse with status 1; a bad flag value is a usage error, status 2 like the other usage
errors of the CLIs. Register the checks after defining the flags, then `app.run(main, flags_parser=parse_flags)`.
"""
from __future__ import annotations

import math
import sys
from typing import List, Optional, Sequence

from absl import flags

# The smallest frame side the network takes: VGG-16's conv5 stage sees 1/16 of it, and below 32 pixels
# the pooled maps of the localization head collapse (MaxPool / crop_and_resize errors inside TensorFlow).
MIN_FRAME_SIZE = 32


def parse_flags(argv: Sequence[str]) -> List[str]:
    """`absl.app.run`'s flags_parser: parses argv, and on a bad value prints one line and exits with 2."""
    try:
        return flags.FLAGS(list(argv))
    except flags.Error as err:
        print(f"error: {err}\nPass --helpshort or --helpfull to see help on flags.", file=sys.stderr)
        sys.exit(2)


def check_number(name: str, minimum: Optional[float] = None, above: Optional[float] = None,
                 zero_or_at_least: Optional[int] = None, hint: str = "") -> None:
    """Registers a parse-time check of the numeric flag `--name`: finite, and `>= minimum`, `> above`, or
    `0 or >= zero_or_at_least`. An unset (None) flag passes. `hint` ends the error message."""

    def check(value) -> bool:
        if value is None:
            return True
        wanted = None
        if isinstance(value, float) and not math.isfinite(value):
            wanted = "a finite number"
        elif minimum is not None and value < minimum:
            wanted = f">= {minimum}"
        elif above is not None and value <= above:
            wanted = f"> {above}"
        elif zero_or_at_least is not None and value != 0 and value < zero_or_at_least:
            wanted = f"0 or >= {zero_or_at_least}"
        if wanted is None:
            return True
        raise flags.ValidationError(f"--{name}={value}: must be {wanted}{'; ' + hint if hint else ''}.")

    flags.register_validator(name, check)
