"""Hostile conditions for stores: a truncated LMDB file (no SIGBUS), a full disk during build and export
(an injected ENOSPC, and a real small tmpfs where mounting is allowed), edited manifests, flipped bytes."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest
import test_builder_support as support
from click.testing import CliRunner
from disk_support import grow, small_tmpfs

from babyvlm.cli import cli as babyvlm_cli
from babyvlm.core.errors import BabyVLMError, DataError
from babyvlm.plugins.lmdb_store import envs, writer
from babyvlm.plugins.pretraining_set import llava_io
from babyvlm.plugins.pretraining_set.builder import BuildPlan, build_pretraining_set
from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset
from babyvlm.plugins.pretraining_set.stores import open_store

# shared fixture: the fake source registered for every test (autouse)
fake_source = support.fake_source

SUPPORT = Path(support.__file__)
SHARD = "00000-of-00001"


def cli(*args: object) -> subprocess.CompletedProcess:
    """``babyvlm ARGS`` in its own process: a SIGBUS there shows as a negative return code, not a dead pytest."""
    return subprocess.run([sys.executable, str(SUPPORT), *map(str, args)], capture_output=True, text=True, timeout=120)


def build(root: Path, out: Path, commit_every: int = 256):
    return build_pretraining_set(BuildPlan(source="fake", root=root, out=out, commit_every=commit_every),
                                 log=lambda _: None)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("damage")
    support.register_fake_source()
    build(support.write_corpus(base / "corpus", recordings=3, seconds=6), base / "store")
    return base / "store"


def copy_of(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(store, target)
    return target


# ---- a truncated shard ----------------------------------------------------------------------------
def test_truncated_shard_is_reported_by_every_command_without_sigbus(store, tmp_path):
    damaged = copy_of(store, tmp_path)
    data = damaged / "shards" / SHARD / "data.mdb"
    os.truncate(data, data.stat().st_size // 3)
    root = Path(json.loads((store / "build_config.json").read_text())["root"])
    read = ("import sys; from babyvlm.plugins.pretraining_set.dataset import PretrainingDataset as D; "
            "print(len(D(sys.argv[1])))")
    commands = {  # all at once: they only read the damaged store (the resume is refused before writing)
        "verify": ["data", "verify", damaged],
        "stats": ["data", "stats", damaged],
        "export": ["data", "export", damaged, tmp_path / "llava"],
        "merge": ["data", "merge", damaged, "--out", tmp_path / "merged"],
        "resume": ["data", "build", "--source", "fake", "--root", root, "--out", damaged],
    }
    started = {name: subprocess.Popen([sys.executable, str(SUPPORT), *map(str, args)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for name, args in commands.items()}
    started["read"] = subprocess.Popen([sys.executable, "-c", read, str(damaged)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    runs = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=120)
        runs[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    for name, run in runs.items():
        assert run.returncode == 1, (name, run.returncode, run.stdout, run.stderr)  # -7 would be SIGBUS
        output = run.stdout + run.stderr
        assert f"{damaged}/shards/{SHARD}: data.mdb is truncated" in output, (name, output)
        assert "the shard is damaged" in output, name
        if name == "read":  # the Python API raises DataError (a traceback is how Python shows it)
            assert "babyvlm.core.errors.DataError: " in output
        else:
            assert "Traceback" not in output, (name, output)
    assert "delete this shard folder and rerun the build" in runs["resume"].stderr
    assert not (tmp_path / "llava").exists() and not (tmp_path / "merged").exists()

    shutil.rmtree(damaged / "shards" / SHARD)  # what the message says: then the store completes again
    build(root, damaged)
    assert open_store(damaged).verify().ok


@pytest.mark.parametrize("content, problem", [(b"", "only 0 bytes"), (b"x" * 4096, "no LMDB header")])
def test_a_data_file_that_is_not_lmdb_is_refused_before_mapping(tmp_path, content, problem):
    (tmp_path / "shard").mkdir()
    (tmp_path / "shard" / "data.mdb").write_bytes(content)
    with pytest.raises(DataError, match=f"data.mdb is not a complete LMDB file \\({problem}\\)"):
        envs.check_data_file(tmp_path / "shard")


# ---- a full disk --------------------------------------------------------------------------------
class _FullDiskEnv:
    """An LMDB environment whose write commits fail with ENOSPC after ``allowed`` of them."""

    def __init__(self, env: lmdb.Environment, allowed: int):
        self._env, self.allowed = env, allowed

    def __getattr__(self, name):
        return getattr(self._env, name)

    def begin(self, write: bool = False, **kwargs):
        txn = self._env.begin(write=write, **kwargs)
        if not write:
            return txn
        self.allowed -= 1
        return _FailingCommit(txn) if self.allowed < 0 else txn


class _FailingCommit:
    def __init__(self, txn):
        self._txn = txn

    def __getattr__(self, name):
        return getattr(self._txn, name)

    def __enter__(self):
        return self._txn

    def __exit__(self, *exc):
        self._txn.abort()
        raise lmdb.DiskError("mdb_txn_commit: No space left on device")


def test_enospc_during_build_names_the_device_and_the_store_resumes(tmp_path, monkeypatch):
    root = support.write_corpus(tmp_path / "corpus", recordings=3, seconds=6)
    real_open = writer.open_writer_env
    monkeypatch.setattr(writer, "open_writer_env", lambda path, size: _FullDiskEnv(real_open(path, size), 8))
    with pytest.raises(BabyVLMError) as caught:
        build(root, tmp_path / "store", commit_every=3)
    message = str(caught.value)
    assert message.startswith("no space left on device ") and f"(writing {tmp_path}/store/shards/{SHARD})" in message
    assert "the same command resumes" in message and "\n" not in message
    assert not (tmp_path / "store" / "manifest.json").exists()
    monkeypatch.undo()
    support.register_fake_source()
    result = build(root, tmp_path / "store", commit_every=3)
    assert result.resumed >= 1 and open_store(tmp_path / "store").verify().ok


def test_enospc_during_export_leaves_the_older_export_whole(store, tmp_path, monkeypatch):
    out = tmp_path / "llava"
    llava_io.export_llava(store, out, log=lambda _: None)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_write, calls = llava_io._write_images, []

    def filling_disk(folder, ordinal, images):
        calls.append(ordinal)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(folder / "images"))
        return real_write(folder, ordinal, images)

    monkeypatch.setattr(llava_io, "_write_images", filling_disk)
    result = CliRunner().invoke(babyvlm_cli, ["data", "export", str(store), str(out)])
    assert result.exit_code == 1 and "no space left on device " in result.output, result.output
    assert "an older export there is unchanged" in result.output
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".llava.lock", "llava"]  # no temp folder left


def test_export_replaces_an_older_export_whole_and_refuses_other_folders(store, tmp_path):
    out = tmp_path / "llava"
    llava_io.export_llava(store, out, log=lambda _: None)
    (out / "images" / "stray.jpg").write_bytes(b"from an older export")
    llava_io.export_llava(store, out, log=lambda _: None, image_lists=True)
    assert not (out / "images" / "stray.jpg").exists()
    records = json.loads((out / "data.json").read_text())
    assert all(isinstance(r["image"], list) for r in records)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BabyVLMError, match="refusing to replace a folder that is not a LLaVA export"):
        llava_io.export_llava(store, tmp_path / "mine", log=lambda _: None)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_real_small_tmpfs_fills_during_build_then_the_build_resumes(tmp_path):
    with small_tmpfs(tmp_path / "small", "120k") as disk:
        root = support.write_corpus(tmp_path / "corpus", recordings=3, seconds=6)
        args = ["data", "build", "--source", "fake", "--root", root, "--out", disk / "store", "--commit-every", "3"]
        full = cli(*args)
        assert full.returncode == 1, full.stdout + full.stderr
        assert full.stderr.strip() == (f"Error: no space left on device {disk} (writing {disk}/store/shards/{SHARD}): "
                                       "free some space there and run the same command again (what was written "
                                       "before is kept and the same command resumes)")
        grow(disk)
        resumed = cli(*args)
        assert resumed.returncode == 0, resumed.stderr
        assert "already done" in resumed.stdout
        assert cli("data", "verify", disk / "store").returncode == 0  # in a subprocess: no handle keeps it busy


# ---- integrity ------------------------------------------------------------------------------------
def test_stats_cross_checks_an_edited_manifest(store, tmp_path):
    edited = copy_of(store, tmp_path)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["counts"]["by_format"]["image"] += 1000
    manifest["counts"]["total"] += 1000
    (edited / "manifest.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(babyvlm_cli, ["data", "stats", str(edited)])
    assert result.exit_code == 1
    assert "unverified manifest:" in result.output and "differ from the shards'" in result.output
    true_total = json.loads((store / "manifest.json").read_text())["counts"]["total"]
    assert f"samples: {true_total} " in result.output  # the shards' counts, not the edited ones
    stats = open_store(store).stats()
    assert stats["manifest_verified"] and stats["problems"] == []


def flip_a_byte_of_a_record(store: Path) -> bytes:
    """Change one byte inside one record's value (in place, through LMDB: the file stays valid LMDB)."""
    env = lmdb.open(str(store / "shards" / SHARD), max_dbs=4)
    samples = env.open_db(b"samples")
    with env.begin(write=True) as txn:
        key, value = next(iter(txn.cursor(db=samples)))
        changed = bytearray(value)
        changed[len(changed) // 2] ^= 0xFF
        txn.put(key, bytes(changed), db=samples)
    env.close()
    return bytes(key)


def test_verify_on_read_catches_a_flipped_byte_and_merge_refuses_the_shard(store, tmp_path):
    damaged = copy_of(store, tmp_path)
    key = flip_a_byte_of_a_record(damaged)
    data = PretrainingDataset(damaged, verify_on_read=True)
    position = [bytes(k) for k in data.keys].index(key)
    with pytest.raises(DataError, match=f"shard {SHARD} record '{key.decode()}': content differs from the checksum"):
        data[position]
    plain = PretrainingDataset(damaged)
    assert plain[position + 1 if position + 1 < len(plain) else 0]["sample_id"]  # others still read
    checked = PretrainingDataset(store, verify_on_read=True)
    assert len([checked[i] for i in range(len(checked))]) == len(checked)  # an intact store reads through

    result = CliRunner().invoke(babyvlm_cli, ["data", "merge", str(damaged), "--out", str(tmp_path / "merged")])
    assert result.exit_code == 1 and f"merge: {damaged} fails verify" in result.output, result.output
    assert "nothing was merged" in result.output and not (tmp_path / "merged").exists()
