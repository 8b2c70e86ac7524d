"""The kernel copy of a database file into a backup's open file: a child process of `snapshot_copy`.

Run as ``python -I -S kernel_copy.py SOURCE DEV INO FD LENGTH IO_LIMIT PARENT_PID [WAL WAL_DEV
WAL_INO FIRST LAST PAGE_SIZE]`` with the backup's file passed as descriptor FD. It copies the first
LENGTH bytes of SOURCE, which must still be the file (DEV, INO), with `sendfile` (inside the
kernel: no read or write call per page, no copy through this process; unlike `copy_file_range` it
never shares the blocks with the source on a filesystem that can clone, so the backup does not
share the live database's fate), hands them to the disk as it goes, never more than `MAX_UNWRITTEN`
ahead of it, at idle I/O priority, and at most IO_LIMIT bytes a second (0: no limit). Given a WAL,
it then writes the WAL's frames FIRST to LAST over the copy, in order (`overlay_wal`).

Why a child: closing any descriptor of a file drops every POSIX lock the closing *process* holds
on it, SQLite's included. The server never opens the live database or its WAL except through
SQLite; this process holds no SQLite lock, so its descriptors of them are harmless.

It imports the standard library only, plus `linux_io` from its own folder, and prints one line on
failure: ``errno N: message`` for an operating system error (exit 1), or a message (exit 2).
"""
import errno
import os
import struct
import sys
import time

#: Bytes per `sendfile` call: the pace of the copy and of its writeback. Under a limit,
#: smaller: a live commit that comes while a chunk is written waits for less.
CHUNK = 256 << 10
LIMITED_CHUNK = 64 << 10
#: Copied bytes not yet on the device before the copy waits for the disk. On ext4 (data=ordered)
#: a live commit's fsync waits for what the copy has pending, so less pending is a faster commit.
MAX_UNWRITTEN = 8 * 2**20
#: A WAL file's first four bytes (big- or little-endian checksums), and its header's size.
WAL_MAGIC = (0x377F0682, 0x377F0683)
WAL_HEADER = 32
FRAME_HEADER = 24


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


def overlay_wal(wal, dst, first, last, page_size, length):
    """Write the WAL's frames `first` to `last` (1-based) over the copy `dst`, in order, so that
    each page ends as its version in the last of them: the snapshot's.

    :raises ValueError: not this database's WAL, a frame of another generation of it (its salts),
        or frame `last` does not commit a database of `length` bytes.
    :raises EOFError: the WAL ends before frame `last`.
    """
    header = os.pread(wal, WAL_HEADER, 0)
    if len(header) < WAL_HEADER:
        raise EOFError("the WAL has no header")
    magic, _, size_field, _, salt1, salt2 = struct.unpack(">6I", header[:24])
    if magic not in WAL_MAGIC or (size_field if size_field != 1 else 65536) != page_size:
        raise ValueError("not this database's WAL")
    frame = FRAME_HEADER + page_size
    per_read = max(1, CHUNK // frame)
    i = first
    while i <= last:
        count = min(per_read, last - i + 1)
        block = memoryview(os.pread(wal, count * frame, WAL_HEADER + (i - 1) * frame))
        if len(block) < count * frame:
            raise EOFError(f"the WAL ends before frame {last}")
        for k in range(count):
            base = k * frame
            page, commit, s1, s2 = struct.unpack_from(">4I", block, base)
            if (s1, s2) != (salt1, salt2) or page == 0:
                raise ValueError(f"frame {i + k} is not part of this WAL")
            if page * page_size <= length:
                os.pwrite(dst, block[base + FRAME_HEADER:base + frame], (page - 1) * page_size)
            if i + k == last and commit * page_size != length:
                raise ValueError("the WAL's last frame does not commit the snapshot")
        i += count


def _open_checked(path, dev, ino):
    """`path` opened for reading, when it is still the file (dev, ino); else None."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (dev, ino):
        os.close(fd)
        return None
    return fd


def main(argv, io):
    source, (dev, ino, fd, length, io_limit, parent) = argv[0], map(int, argv[1:7])
    wal = argv[7:]
    io.idle_io_priority()
    opened = []
    try:
        src = _open_checked(source, dev, ino)
        if src is None:
            print("the database file was replaced during the backup", file=sys.stderr)
            return 2
        opened.append(src)
        size = os.fstat(src).st_size
        if not wal and size < length:
            print(f"the source is shorter than {length} bytes", file=sys.stderr)
            return 2
        io.preallocate(fd, length)
        # With a WAL, pages past the file's end are all in the frames.
        copy_range(src, fd, min(size, length), io, io_limit=io_limit, parent=parent)
        if wal:
            wal_fd = _open_checked(wal[0], int(wal[1]), int(wal[2]))
            if wal_fd is None:
                print("the WAL was replaced during the backup", file=sys.stderr)
                return 2
            opened.append(wal_fd)
            overlay_wal(wal_fd, fd, *map(int, wal[3:6]), length)
        os.ftruncate(fd, length)
    except OSError as exc:
        print(f"errno {exc.errno}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the parent's log, no traceback
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        for each in opened:
            os.close(each)
    return 0


if __name__ == "__main__":
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # -I leaves it out
    from linux_io import LinuxIO
    sys.exit(main(sys.argv[1:], LinuxIO()))
