"""Linux writeback and I/O priority calls (through libc), each a no-op where they do not exist."""
import ctypes
import errno
import logging
import os
import platform

log = logging.getLogger(__name__)

_SFR_WAIT_BEFORE, _SFR_WRITE, _SFR_WAIT_AFTER = 1, 2, 4
_IOPRIO_WHO_PROCESS = 1  # with id 0: the calling thread (each thread has its own I/O context)
_IOPRIO_CLASS_SHIFT = 13
_IOPRIO_CLASS_IDLE = 3
_SYS_IOPRIO_SET = {"x86_64": 251, "aarch64": 30}.get(platform.machine())


def _libc():
    if not hasattr(os, "posix_fadvise"):  # not Linux-like: none of the calls below exist
        return None
    try:  # the symbols already loaded into Python, libc's among them (no ldconfig run)
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class LinuxIO:
    """`sync_file_range` and `ioprio_set`, or nothing where the platform lacks them.

    `start_writeback` and `wait_writeback` return False when the call is not available, so the
    caller falls back to `fdatasync`.
    """

    def __init__(self):
        libc = _libc()
        self._sfr = getattr(libc, "sync_file_range", None)
        if self._sfr is not None:
            self._sfr.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        self._syscall = getattr(libc, "syscall", None) if _SYS_IOPRIO_SET else None
        self._fallocate = getattr(libc, "fallocate", None)
        if self._fallocate is not None:
            self._fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)

    def _range(self, fd, offset, length, flags):
        if self._sfr is None:
            return False
        if self._sfr(fd, offset, length, flags) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return True

    def start_writeback(self, fd, offset, length):
        """Queue the dirty pages of `fd` in the range for writing, without waiting for them."""
        return self._range(fd, offset, length, _SFR_WRITE)

    def wait_writeback(self, fd, offset, length):
        """Write the range's dirty pages and wait until they are on the device (no metadata:
        the final `fdatasync` still makes the file durable)."""
        return self._range(fd, offset, length, _SFR_WAIT_BEFORE | _SFR_WRITE | _SFR_WAIT_AFTER)

    def preallocate(self, fd, length):
        """Reserve `length` bytes of disk for `fd` at once (`fallocate`, the file's size grows
        too): a full disk is known before anything is copied, and writing the file later
        allocates nothing. Returns False where the filesystem or platform cannot (nothing was
        done); raises OSError for anything else (ENOSPC among them)."""
        if self._fallocate is None:
            return False
        if self._fallocate(fd, 0, 0, length) != 0:
            err = ctypes.get_errno()
            if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise OSError(err, os.strerror(err))
        return True

    def idle_io_priority(self):
        """Put the calling thread's I/O in the idle class: served when the disk has nothing else
        to do (by schedulers that honour classes: BFQ, mq-deadline, which also ages requests so
        they are never starved for good). Returns whether the call succeeded."""
        if self._syscall is None:
            return False
        value = _IOPRIO_CLASS_IDLE << _IOPRIO_CLASS_SHIFT
        if self._syscall(_SYS_IOPRIO_SET, _IOPRIO_WHO_PROCESS, 0, value) != 0:
            log.debug("ioprio_set failed: %s", os.strerror(ctypes.get_errno()))
            return False
        return True
