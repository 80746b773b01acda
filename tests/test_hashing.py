"""GGUF files are hashed by one background thread, once, and never on a request's path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from discovery.hashing import Hasher
from discovery.publishing import publications
from discovery.runs import Workspace, get_run
from sampledata import runs as wb
from sampledata import upload

from .conftest import REPO, started


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


def sparse(path: Path, size: int, age: float = 60.0) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    t = time.time() - age
    os.utime(path, (t, t))
    return path


def test_a_file_is_queued_not_read_and_known_once_hashed(tmp_path):
    hasher = Hasher(settle_s=0)
    path = sparse(tmp_path / "a.gguf", 64 << 20)
    began = time.monotonic()
    assert hasher.digest(path) is None
    assert time.monotonic() - began < 0.05  # it only looked the file up
    assert hasher.wait_idle(10)
    assert hasher.digest(path) == sha256(path)


def test_a_file_written_while_hashed_is_hashed_again_once_quiet(tmp_path):
    hasher = Hasher(settle_s=0.3)
    store = tmp_path / "hashes.json"
    hasher.configure(store, settle_s=0.3)
    path = sparse(tmp_path / "growing.gguf", 1 << 30)
    assert hasher.digest(path) is None
    wait_for(lambda: hasher.current == str(path))
    first_size = path.stat().st_size
    with path.open("ab") as f:  # the converter is still writing
        for _ in range(5):
            f.write(b"\x01" * 4096)
            f.flush()
            time.sleep(0.05)
    assert hasher.wait_idle(30)
    assert hasher.digest(path) == sha256(path)
    saved = json.loads(store.read_text())["sha256"]
    # Only the finished file was remembered: no digest for a size it had while being written.
    assert [int(k.split(":")[2]) for k in saved] == [path.stat().st_size]
    assert path.stat().st_size != first_size


def test_a_just_written_file_waits_until_it_settles(tmp_path):
    hasher = Hasher(settle_s=0.5)
    path = tmp_path / "fresh.gguf"
    path.write_bytes(b"GGUF" * 100)
    assert hasher.digest(path) is None
    time.sleep(0.2)
    assert hasher.digest(path) is None and hasher.current is None  # not read yet
    assert hasher.wait_idle(5)
    assert hasher.digest(path) == sha256(path)


def test_digests_survive_a_restart(tmp_path):
    store = tmp_path / "data" / "gguf-sha256.json"
    path = sparse(tmp_path / "a.gguf", 1 << 20)
    first = Hasher()
    first.configure(store, settle_s=0)
    first.digest(path)
    assert first.wait_idle(10)
    again = Hasher()
    again.configure(store, settle_s=0)
    assert again.digest(path) == sha256(path) and again.idle()
    # A changed file is not taken for the old one.
    os.utime(path, (time.time() - 10, time.time() - 10))
    assert again.digest(path) is None


def test_a_broken_store_is_ignored(tmp_path):
    store = tmp_path / "gguf-sha256.json"
    store.write_text("{not json")
    path = sparse(tmp_path / "a.gguf", 1024)
    hasher = Hasher()
    hasher.configure(store, settle_s=0)
    assert hasher.digest(path) is None
    assert hasher.wait_idle(5) and hasher.digest(path) == sha256(path)


@pytest.fixture
def run_dir(workspace: Path) -> Path:
    return wb.make_run(workspace, "sft", started("20251101_100000"), max_steps=50, save_every=25)


def pubs(workspace: Path, run_dir: Path):
    run = get_run(Workspace.at(workspace), "rtx3090_sft", run_dir.name)
    assert run is not None
    return publications(run)


def test_fifos_and_links_out_of_the_workspace_are_never_listed_or_read(
    workspace, run_dir, tmp_path
):
    out = upload.write_upload(run_dir / "final_model", "me/nexus")
    os.mkfifo(out / "gguf" / "nexus-F16.gguf")  # would block a reader forever
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.gguf").write_bytes(b"secret")
    (out / "gguf" / "leak.gguf").symlink_to(outside / "secret.gguf")
    (run_dir / "linked-out").symlink_to(outside)
    (outside / "upload_manifest.json").write_text(json.dumps({"model_name": "evil/leak"}))
    [pub] = pubs(workspace, run_dir)
    assert [g.name for g in pub.gguf] == ["nexus.gguf", "nexus-Q4_K_M.gguf", "nexus-Q8_0.gguf"]
    hasher = Hasher(settle_s=0)
    fifo = out / "gguf" / "nexus-F16.gguf"
    assert hasher.digest(fifo) is None and hasher.idle()  # not even queued


def test_a_file_named_in_the_manifest_but_missing_is_listed_as_missing(workspace, run_dir):
    out = upload.write_upload(run_dir / "final_model", "me/nexus")
    (out / "gguf" / "nexus-Q8_0.gguf").unlink()
    [pub] = pubs(workspace, run_dir)
    missing = [g for g in pub.gguf if not g.present]
    assert [g.name for g in missing] == ["nexus-Q8_0.gguf"] and missing[0].quantization == "Q8_0"
    assert pub.labels == ("merged 16-bit", "GGUF Q4_K_M")


def test_gguf_files_without_a_manifest_yet_are_listed_and_say_so(workspace, run_dir):
    out = upload.write_upload(run_dir / "final_model", "me/nexus")
    (out / "upload_manifest.json").unlink()
    [pub] = pubs(workspace, run_dir)
    assert pub.repo is None and "no upload_manifest.json yet" in (pub.error or "")
    assert len(pub.gguf) == 3


def test_a_concurrent_lookup_never_starts_a_second_reader(tmp_path):
    hasher = Hasher(settle_s=0)
    path = sparse(tmp_path / "a.gguf", 256 << 20)
    threads = [threading.Thread(target=hasher.digest, args=(path,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hasher.wait_idle(20)
    workers = [t for t in threading.enumerate() if t.name == "sha256"]
    assert len(workers) <= 1 and hasher.digest(path) == sha256(path)


def test_a_file_that_became_a_link_out_of_the_workspace_is_not_read(tmp_path):
    root = (tmp_path / "ws").resolve()
    root.mkdir()
    outside = sparse(tmp_path / "outside.gguf", 1024)
    link = root / "model.gguf"
    link.symlink_to(outside)  # swapped in after the folder was listed
    hasher = Hasher(settle_s=0)
    assert hasher.digest(link, root) is None
    assert hasher.wait_idle(5)
    assert hasher.digest(link, root) is None  # queued again, never read
    assert hasher.wait_idle(5) and hasher.digest(outside) is None


# One web worker's hasher, counting the bytes it reads itself: started together, two of them
# on one file and one store read it once between them.
WORKER = r"""
import os, sys, time
from pathlib import Path
from discovery import hashing
read = [0]
real = os.readv
def counting(fd, buffers):
    n = real(fd, buffers)
    read[0] += n
    return n
hashing.os.readv = counting
path, store, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
hasher = hashing.Hasher(store, settle_s=0.0)
while not go.exists():
    time.sleep(0.005)
deadline = time.monotonic() + 120
while (digest := hasher.digest(path)) is None and time.monotonic() < deadline:
    time.sleep(0.02)
print(digest, read[0])
"""


def test_one_process_on_the_machine_hashes_a_file_the_others_wait_and_find_it(tmp_path):
    big = tmp_path / "model.gguf"
    with big.open("wb") as f:
        f.truncate(256 << 20)  # sparse: about a second of hashing each
    old = time.time() - 60
    os.utime(big, (old, old))
    store, go = tmp_path / "data" / "gguf-sha256.json", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(big), str(store), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    time.sleep(0.5)  # each is waiting for the go
    go.touch()
    results = []
    for w in workers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
        digest, read = out.split()
        results.append((digest, int(read)))
    zeros = hashlib.sha256(b"\0" * (256 << 20)).hexdigest()
    assert {d for d, _ in results} == {zeros}
    assert sum(n for _, n in results) == 256 << 20, results  # read once, by one of them
    assert (tmp_path / "data" / "gguf-sha256.json.lock").exists()
