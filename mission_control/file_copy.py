"""The kernel copy of a database file into a backup's open file: a child process of `snapshot_copy`.

Run as ``python -I -S file_copy.py SOURCE DEV INO FD LENGTH IO_LIMIT PARENT_PID`` with the
backup's file passed as descriptor FD. It copies the first LENGTH bytes of SOURCE, which must still
be the file (DEV, INO), with `sendfile` (inside the kernel: no read or write call per page, no copy
through this process; unlike `copy_file_range` it never shares the blocks with the source on a
filesystem that can clone, so the backup does not share the live database's fate), hands them to
the disk as it goes, never more than `MAX_UNWRITTEN` ahead of it, at idle I/O priority, and at most
IO_LIMIT bytes a second (0: no limit).

Why a child: closing any descriptor of a file drops every POSIX lock the closing *process* holds
on it, SQLite's included. The server never opens the live database except through SQLite; this
process holds no SQLite lock, so its descriptor of the database is harmless.

It imports the standard library only, plus `linux_io` from its own folder, and prints one line on
failure: ``errno N: message`` for an operating system error (exit 1), or a message (exit 2).
"""
import errno
import os
import sys
import time

#: Bytes per `sendfile` call: the pace of the copy and of its writeback. Under a limit,
#: smaller: a live commit that comes while a chunk is written waits for less.
CHUNK = 256 << 10
LIMITED_CHUNK = 64 << 10
#: Copied bytes not yet on the device before the copy waits for the disk. On ext4 (data=ordered)
#: a live commit's fsync waits for what the copy has pending, so less pending is a faster commit.
MAX_UNWRITTEN = 8 * 2**20


def copy_range(src, dst, length, io, *, io_limit=0, parent=None):
    """Copy bytes [0, length) of descriptor `src` to the same offsets of `dst`.

    :param io: a `LinuxIO` (writeback calls; each falls back to nothing where missing).
    :param parent: stop when this process is no longer our parent (it died: nobody waits).
    :raises OSError: from the copy; EOFError when `src` is shorter than `length`.
    """
    started = time.monotonic()
    done = written = 0
    kernel = hasattr(os, "sendfile")
    if kernel:
        os.lseek(dst, 0, os.SEEK_SET)  # sendfile writes at the file position
    chunk = LIMITED_CHUNK if io_limit else CHUNK
    while done < length:
        count = min(chunk, length - done)
        if kernel:
            try:
                n = os.sendfile(dst, src, done, count)
            except OSError as exc:  # not between these files or on this system: read and write
                if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                kernel = False
                continue
        else:
            n = os.pwrite(dst, os.pread(src, count, done), done)
        if n == 0:
            raise EOFError(f"the source ended after {done} of {length} bytes")
        io.start_writeback(dst, done, n)
        done += n
        # Limited: all of it on the device before the pause, so that a live commit's fsync in
        # the pause finds nothing of ours pending. Unlimited: at most MAX_UNWRITTEN pending.
        if done - written > (0 if io_limit else MAX_UNWRITTEN):
            upto = done if io_limit else done - MAX_UNWRITTEN // 2
            if not io.wait_writeback(dst, written, upto - written):
                os.fdatasync(dst)
            written = upto
        if parent is not None and os.getppid() != parent:
            raise ChildProcessError("the server went away")
        if io_limit:
            ahead = done / io_limit - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def main(argv, io):
    source, dev, ino, fd, length, io_limit, parent = argv[0], *map(int, argv[1:])
    io.idle_io_priority()
    try:
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(src)
            if (st.st_dev, st.st_ino) != (dev, ino):
                print("the database file was replaced during the backup", file=sys.stderr)
                return 2
            if st.st_size < length:
                print(f"the source is shorter than {length} bytes", file=sys.stderr)
                return 2
            io.preallocate(fd, length)
            copy_range(src, fd, length, io, io_limit=io_limit, parent=parent)
        finally:
            os.close(src)
    except OSError as exc:
        print(f"errno {exc.errno}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the parent's log, no traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves it out
    from linux_io import LinuxIO
    sys.exit(main(sys.argv[1:], LinuxIO()))
