"""Sizes in words for people (the CLI, log lines, refusals): binary units, labelled as such (KiB, MiB).

The page's `static/format.js` `humanSize` follows the same rules, so both say the same thing.
"""

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size):
    """`size` bytes in words: "1 byte", "512 bytes", "1.5 KiB", "10 MiB".

    Under 10 of a unit one decimal is shown, from 10 on whole numbers.

    :param size: a whole number of bytes, 0 or more.
    :return: the text.
    """
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1023.95 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"
