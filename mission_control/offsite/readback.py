"""Reading an incremental copy back from a storage: its chain's signed records, their objects, the copy rebuilt.

A delta copy (`codec.is_delta`) is its manifest object; rebuilding it needs every copy down to its
full copy. Each of them must be authentic on its own (a record here, a verified signed manifest,
or a verified catalog entry: the caller's `lookup`), and each object is read as its record says
it was sent: the full copy and every manifest by their record's size and SHA-256, each pack by
its record's ``objects``. `StorageSource` gives `reassembly` those objects, one chosen version
each, and what each must be; `rebuild_copy` rebuilds the copy and checks it against its record.
Fetches and drills (`targets`, `drill`) and recovery (`recovery`) share this.
"""
from contextlib import closing
from dataclasses import dataclass

from .codec import AGE_MAGIC, CHUNK, CopyDamaged, Digesting, is_delta, parse_remote_name
from .delta import MAX_CHAIN, DeltaError
from .reassembly import Expected, rebuild_into
from .signing import NotAuthentic


class ChainBroken(CopyDamaged):
    """A copy of the chain is missing, not what was sent, or the chain does not hold together."""


def chain_records(lookup, record):
    """The signed records of the chain of copy `record`, its full copy first, `record` last.

    :param lookup: ``lookup(remote_name)``: that copy's authentic record; raises `NotAuthentic`
        (planted, or no record at all) or returns None (not known).
    :raises NotAuthentic: an ancestor is not authentic (the message names it).
    :raises ChainBroken: an ancestor is not known, or the chain loops or does not add up.
    """
    name = record["remote_name"]
    records = [record]
    while records[-1].get("parent") is not None:
        child = records[-1]
        parent = child["parent"]
        if len(records) > MAX_CHAIN or any(r["remote_name"] == parent for r in records):
            raise ChainBroken(f"the chain of {name} loops or is too long at {parent}")
        try:
            found = lookup(parent)
        except NotAuthentic as exc:
            raise NotAuthentic(f"{name} needs {parent}, its ancestor, which is refused: "
                               f"{getattr(exc, 'message', None) or exc}") from None
        if found is None:
            raise ChainBroken(f"{name} needs {parent}, its ancestor, which has no signed record")
        if (found.get("chain_length") or 0) != child["chain_length"] - 1 \
                or (found.get("parent") is None) == is_delta(parent):
            raise ChainBroken(f"{name} needs {parent}, its ancestor, whose signed record does "
                              "not fit in its chain")
        records.append(found)
    if is_delta(records[-1]["remote_name"]):
        raise ChainBroken(f"the chain of {name} does not start with a full copy")
    records.reverse()
    return records


def expected_objects(records):
    """`{object name: (Expected, copy name)}` of every object of the chain `records`."""
    found = {}
    for record in records:
        copy = record["remote_name"]
        plain = None if record.get("parent") is not None else record["plain_size"]
        found[copy] = (Expected(record["size"], record["sha256"], plain), copy)
        for pack, sent in (record.get("objects") or {}).items():
            found[pack] = (Expected(sent["size"], sent["sha256"]), copy)
    return found


@dataclass
class StorageSource:
    """The objects of one chain in a storage, for `reassembly`: only those, each read at its
    chosen version (`versions`: `{name: version id}`; absent or None: the current one).

    :param objects: `expected_objects` of the chain.
    :param present: the names of those objects the storage holds.
    """

    storage: object
    objects: dict
    present: set
    versions: dict = None

    def exists(self, name):
        return name in self.present and name in self.objects

    def open(self, name):
        return self.storage.open(name, (self.versions or {}).get(name))

    def expected(self, name):
        found = self.objects.get(name)
        return found[0] if found else None


def present_objects(objects, listed):
    """The names of `objects` (`expected_objects`) in `listed` (`{key: stored size}`).

    :raises ChainBroken: one is missing or has another size than sent (named, with its copy).
    """
    for name, (expected, copy) in sorted(objects.items()):
        whose = "" if name == copy else f" (of {copy})"
        if name not in listed:
            raise ChainBroken(f"{name}{whose} is missing at the target: the chain cannot be "
                              "completed")
        if listed[name] != expected.size:
            raise ChainBroken(f"{name}{whose} holds {listed[name]} bytes, its signed record "
                              f"says {expected.size}")
    return set(objects)


def rebuild_copy(source, record, f, identities):
    """Rebuild the delta copy `record` from `source` into the open, empty file `f`.

    :return: `(size, plain SHA-256)`.
    :raises CopyDamaged: an object is damaged, missing or not what was sent (the message names
        the copy and the object). :raises NotAuthentic: the rebuilt backup is not the one sent.
    :raises MissingExtra: zstandard or pyrage is not installed.
    """
    name = record["remote_name"]
    try:
        done = rebuild_into(f, source, parse_remote_name(name)[0], identities,
                            plain_size=record["plain_size"])
    except DeltaError as exc:
        raise CopyDamaged(f"{name} cannot be rebuilt from its chain: {exc}") from None
    if done.sha256 != record["plain_sha256"]:
        raise NotAuthentic("the rebuilt backup's SHA-256 differs from the signed record of the "
                           "backup that was sent")
    return done.size, done.sha256


class _Discard:
    def write(self, data):
        return len(data)


def check_stored(storage, objects, versions=None):
    """Read every object of a chain whole and compare it with what was sent, without decrypting.

    :param objects: `expected_objects`. :param versions: `{name: version id}`, as
        `StorageSource`.
    :raises CopyDamaged: one differs (named, with its copy), or an encrypted one does not start
        with an age header.
    """
    for name, (expected, copy) in sorted(objects.items()):
        whose = "" if name == copy else f" (of {copy})"
        out = Digesting(_Discard())
        with closing(storage.open(name, (versions or {}).get(name))) as reader:
            head = reader.read(len(AGE_MAGIC))
            out.write(head)
            for chunk in iter(lambda: reader.read(CHUNK), b""):
                out.write(chunk)
        if name.endswith(".age") and head != AGE_MAGIC:
            raise CopyDamaged(f"{name}{whose} does not start with an age header")
        if out.size != expected.size or out.sha256 != expected.sha256:
            raise CopyDamaged(f"{name}{whose}: the stored bytes' SHA-256 differs from what was "
                              "sent")
