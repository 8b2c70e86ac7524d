"""Sizes in words for people (CLI, log lines, refusals): binary units, labelled as such (KiB, MiB).

The page's `static/format.js` `humanSize` follows the same rules, so both say the same thing.
"""

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size):
    """`size` bytes in words: "1 byte", "512 bytes", "1.5 KiB", "10 MiB".

    Under 10 of a unit one decimal is shown, from 10 on whole numbers; halves round up, exactly
    as `Math.round` does on the page.

    :param size: a whole number of bytes, 0 or more.
    :return: the text.
    """
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if int(value + 0.5) < 1024 or unit == _UNITS[-1]:
            tenths = int(value * 10 + 0.5)
            return f"{tenths // 10}.{tenths % 10} {unit}" if tenths < 100 else \
                f"{int(value + 0.5)} {unit}"
    raise AssertionError("unreachable: the last unit always answers")
