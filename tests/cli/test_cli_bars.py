"""The bars of `backup create` on a terminal: the backup's bar is sized by the database and its
write-ahead log (rows not yet checkpointed are backed up too), then each off-site target gets a
bar of its own, labelled with its name and relabelled with its result."""
import io
import sqlite3
from contextlib import contextmanager

from mission_control.cli import Context, cli_actor
from mission_control.cli.backup import backed_up
from mission_control.cli.output import Output


class Terminal(io.StringIO):
    def isatty(self):
        return True


class Watched(Output):
    """The real output on a (pretend) terminal, keeping each bar's label and total as added and
    the labels the bars end with."""

    def __init__(self):
        super().__init__(Terminal(), io.StringIO())
        self.added, self.ended = [], []

    @contextmanager
    def bars(self):
        with super().bars() as bars:
            add = bars.add

            def recorded(description, total=None):
                self.added.append((description, total))
                return add(description, total)
            bars.add = recorded
            yield bars
            self.ended = [task.description for task in bars._progress.tasks]


def test_the_backup_bar_counts_the_wal_and_each_target_has_its_own(mc, tmp_path):
    (tmp_path / "nas").mkdir()
    mc.settings.update({"offsite.dir.path": str(tmp_path / "nas")}, "test")
    db = mc.config.db_path
    # A writer that keeps its rows in the WAL: no checkpoint while it stays open.
    writer = sqlite3.connect(db)
    try:
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.execute("CREATE TABLE filler (x BLOB)")
        writer.executemany("INSERT INTO filler VALUES (?)", [(b"x" * 4000,)] * 200)
        writer.commit()
        main_file, wal = db.stat().st_size, (db.parent / f"{db.name}-wal").stat().st_size
        assert wal > 500_000 > main_file  # most of the data is in the WAL only
        out = Watched()
        ctx = Context(None, mc.config, {}, out, None, cli_actor())
        made, _, results = backed_up(ctx, lambda service: service.backups.create("test"))
    finally:
        writer.close()
    assert made.size > 500_000  # the WAL's rows are in the backup
    [(label, total), *targets] = out.added
    assert label == "backup" and total == main_file + wal, (total, main_file, wal)
    assert targets == [("off-site dir", None)]
    assert [r.ok for r in results] == [True]
    assert out.ended == ["backup", "off-site dir: copied"]
