"""A unit's system-call filter, built the way systemd builds it and loaded for real in front of a
command (libseccomp through `pyseccomp`): what PID 1 would do before exec'ing ExecStart=.

`unit_filter(text)` reads SystemCallFilter=, SystemCallErrorNumber= and SystemCallArchitectures=
and returns the filter as plain data; `python tests/unit_seccomp.py SPEC.json -- COMMAND ARGS...`
loads that filter (setting no_new_privs first, as systemd does) and execs the command under it,
as an ordinary user (User=) and, when the spec lists writable paths, with ProtectSystem=strict
played in a mount namespace.
Groups (`@system-service`, ...) are expanded by `systemd-analyze syscall-filter`, so the test
uses the same tables as the systemd on this machine.

systemd's rules (src/shared/seccomp-util.c, src/core/execute.c), mirrored here:
- The first SystemCallFilter= decides the mode: without `~` it is an allow-list (and `@default`
  is added to it); an empty assignment starts over.
- In an allow-list a `~` entry is taken out of the list, so it gets the default action: kill the
  process, or fail with SystemCallErrorNumber='s errno when that is set. A `~name:ERRNO` entry
  stays in, failing with that errno.
- SystemCallArchitectures=native: only native system calls (libseccomp's default filter kills
  calls made through another ABI).
"""
import errno
import functools
import json
import os
import shutil
import subprocess
import sys

KILL = "kill"


def _errno(word):
    """`EPERM`, `1` or `kill` -> 1 / "kill", as systemd's parse_errno accepts them."""
    if word == KILL:
        return KILL
    if word.isdigit():
        return int(word)
    value = getattr(errno, word, None)
    if not isinstance(value, int):
        raise ValueError(f"not an errno name: {word}")
    return value


@functools.cache
def syscall_group(name, analyze=None):
    """The syscall names in group `name` (`@resources`), nested groups expanded."""
    analyze = analyze or shutil.which("systemd-analyze")
    listing = subprocess.run([analyze, "syscall-filter", name], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    names = set()
    for line in listing.splitlines()[1:]:  # the first line repeats the group's name
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        names |= syscall_group(word, analyze) if word.startswith("@") else {word}
    return frozenset(names)


def _names(word):
    return syscall_group(word) if word.startswith("@") else {word}


def unit_filter(text):
    """The filter the unit `text` asks for: {"default": action, "rules": {syscall: action},
    "native_only": bool}, an action being "allow", "kill" or an errno number."""
    settings = {"SystemCallFilter": [], "SystemCallErrorNumber": [],
                "SystemCallArchitectures": []}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key in settings:
            settings[key].append(value.strip())
    allow_list, rules = None, {}
    for value in settings["SystemCallFilter"]:
        if not value:  # an empty assignment resets the list
            allow_list, rules = None, {}
            continue
        invert = value.startswith("~")
        if allow_list is None:
            allow_list = not invert
            if allow_list:
                rules.update(dict.fromkeys(syscall_group("@default"), "allow"))
        for word in value.lstrip("~").split():
            name, _, number = word.partition(":")
            action = _errno(number) if number else None
            keep = invert != allow_list or (invert and allow_list and action is not None)
            for syscall in _names(name):
                if keep:
                    rules[syscall] = action if action is not None else (
                        "allow" if allow_list else None)
                else:
                    rules.pop(syscall, None)
    refusal = _errno(settings["SystemCallErrorNumber"][-1]) \
        if settings["SystemCallErrorNumber"] and settings["SystemCallErrorNumber"][-1] else KILL
    if allow_list is None:
        return {"default": "allow", "rules": {}, "native_only": _native(settings)}
    rules = {name: (refusal if action is None else action) for name, action in rules.items()}
    return {"default": refusal if allow_list else "allow", "rules": rules,
            "native_only": _native(settings)}


def _native(settings):
    archs = settings["SystemCallArchitectures"]
    if archs and archs[-1] not in ("", "native"):
        raise ValueError(f"only SystemCallArchitectures=native is modelled, not {archs[-1]}")
    return bool(archs and archs[-1])


def wrapped(spec_path, argv):
    """The argv that runs `argv` as the unit would, from the spec saved at `spec_path`:
    {"filter": unit_filter(...), "read_write": None or [paths]}."""
    return [sys.executable, "-I", os.path.abspath(__file__), str(spec_path), "--", *argv]


def _action(seccomp, action):
    if action == "allow":
        return seccomp.ALLOW
    if action == KILL:
        return seccomp.KILL_PROCESS
    return seccomp.ERRNO(action)


def load(spec):
    """Load the filter `spec` (from `unit_filter`) into this process, for good."""
    import pyseccomp as seccomp
    if not spec["native_only"]:
        raise ValueError("only SystemCallArchitectures=native is modelled")
    filt = seccomp.SyscallFilter(_action(seccomp, spec["default"]))  # sets no_new_privs on load
    for name, action in sorted(spec["rules"].items()):
        if action == spec["default"]:
            continue
        try:
            filt.add_rule_exactly(_action(seccomp, action), name)
        except OSError as exc:  # unknown here, or not a call of this architecture: systemd
            if exc.errno not in (errno.EDOM, errno.EINVAL):  # skips those as well
                raise
    filt.load()


_CLONE_NEWNS, _CLONE_NEWUSER = 0x00020000, 0x10000000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
_PSEUDO = ("/proc", "/sys", "/dev")  # ProtectSystem=strict leaves these to other settings


def _libc_call(name, *args):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{name}{args}: {os.strerror(err)}")


def _mount(source, target, flags):
    _libc_call("mount", None if source is None else os.fsencode(source), os.fsencode(target),
               None, flags, None)


def protect_system(read_write):
    """ProtectSystem=strict with ReadWritePaths=`read_write`, in a mount namespace of this
    process: every mount read-only (but /proc, /sys, /dev), then each path writable again."""
    _libc_call("unshare", _CLONE_NEWNS)
    _mount(None, "/", _MS_REC | _MS_PRIVATE)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    for point in points:
        if any(point == top or point.startswith(top + "/") for top in _PSEUDO):
            continue
        try:  # keep nosuid, nodev, noexec, *atime: statvfs's flags are the mount flags
            flags = os.statvfs(point).f_flag
        except OSError:  # hidden under a later mount
            continue
        _mount(None, point, flags | _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
    for path in read_write:
        _mount(path, path, _MS_BIND)  # a mount of its own, copied read-only: make it writable
        _mount(None, path, (os.statvfs(path).f_flag & ~_MS_RDONLY) | _MS_REMOUNT | _MS_BIND)


def unprivileged():
    """Run on as an ordinary user (User=): a user namespace maps this uid and gid to 1000, so
    the process is not root (SQLite, for one, calls fchown only as root) and has no capability
    outside, yet still owns the files it owned."""
    uid, gid = os.geteuid(), os.getegid()
    _libc_call("unshare", _CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"1000 {uid} 1"),
                       ("gid_map", f"1000 {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(text)


def main(argv):
    spec_path, dash, *command = argv
    assert dash == "--" and command, "usage: unit_seccomp.py SPEC.json -- COMMAND ARGS..."
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    if spec.get("read_write") is not None:
        protect_system(spec["read_write"])
    if os.geteuid() == 0:
        unprivileged()
    load(spec["filter"])
    os.execv(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
