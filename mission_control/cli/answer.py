"""One line of standard input for a question, without waiting on a stream nobody writes to."""
import os
import select

#: How long a standard input that is not a terminal may stay silent before the question counts
#: as unanswered: a piped answer (`echo y | ...`) is there long before; ssh without -t or a CI
#: job keep stdin open and never write, and the command must not wait for them forever.
GRACE = 0.5


def answer_line(stdin, grace=GRACE):
    """The line typed or piped in, or "" when there is none to read.

    :param stdin: the command's standard input: None when it was closed (`<&-`), a terminal, a
        pipe or file, or an in-memory stream (tests).
    :param grace: seconds a silent stdin that is not a terminal is waited for; None waits
        as long as it takes (a password piped from a slow command).
    :return: the line with its newline; "" when stdin is closed, at its end, or silent.
    """
    if stdin is None or getattr(stdin, "closed", False):
        return ""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):  # in memory: reading never waits
        return stdin.readline()
    if grace is not None and not os.isatty(fd):
        readable, _, _ = select.select([fd], [], [], grace)
        if not readable:
            return ""
    try:
        return stdin.readline()
    except (OSError, ValueError):  # not readable after all (a write-only descriptor)
        return ""
