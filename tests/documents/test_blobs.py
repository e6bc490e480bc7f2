"""The blob store: content-addressed, atomic, and nothing left behind by an upload given up."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from service.documents.blobs import BlobStore, upgrade_layout


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_a_committed_file_is_at_its_content_address_and_identical_bytes_are_kept_once(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"%PDF-1.7\n" + b"x" * 3_000_000  # more than one flush
    shas = []
    for _ in range(2):
        writer = store.writer(10**8)
        for start in range(0, len(data), 65536):
            await writer.write(data[start:start + 65536])
        shas.append(await writer.finish())
        writer.commit(shas[-1])
        writer.discard()  # what the request does at its end: nothing left to remove
    sha = hashlib.sha256(data).hexdigest()
    assert shas == [sha, sha]
    assert store.path(sha).read_bytes() == data
    assert _files(tmp_path / "blobs") == ["LAYOUT", f"{sha[:2]}/{sha}"]


async def test_an_upload_discarded_while_its_write_still_runs_leaves_no_file(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    writer = store.writer(10**8)
    await writer.write(b"z" * 1024)
    # The request is cancelled while the write it handed to the thread has not run yet: the
    # temporary file must not appear after the discard removed it.
    finish = asyncio.ensure_future(writer.finish())
    writer.discard()
    await asyncio.gather(finish, return_exceptions=True)
    assert _files(tmp_path / "blobs") == ["LAYOUT"]


def test_a_store_of_the_two_level_layout_is_moved_to_one_level_when_opened(tmp_path) -> None:
    root = tmp_path / "blobs"
    contents = {hashlib.sha256(bytes([n])).hexdigest(): bytes([n]) * 10 for n in range(40)}
    for sha, data in contents.items():  # as an earlier version stored them
        (root / sha[:2] / sha[2:4]).mkdir(parents=True, exist_ok=True)
        (root / sha[:2] / sha[2:4] / sha).write_bytes(data)
    (root / "tmp").mkdir()
    (root / "tmp" / "upload-in-progress").write_bytes(b"partial")
    (root / "ab" / "notes").mkdir(parents=True)  # not a layout folder: left alone
    assert upgrade_layout(root) == len(contents)
    store = BlobStore(root)
    for sha, data in contents.items():
        assert store.path(sha).read_bytes() == data
        assert not (root / sha[:2] / sha[2:4]).exists()
    assert (root / "tmp" / "upload-in-progress").read_bytes() == b"partial"
    assert (root / "ab" / "notes").is_dir()
    assert upgrade_layout(root) == 0  # once only: the store says which layout it is in


async def test_a_restart_sweeps_what_a_killed_process_left_and_nothing_live(settings) -> None:
    from service.api.app import create_app

    scratch = settings.blob_dir / "tmp"
    scratch.mkdir(parents=True)
    ages = {"upload-killed-yesterday": 2 * 86400, "upload-of-a-live-process": 5,
            ".expired.prepared": 3600, ".live.prepared": 60}
    for name, age in ages.items():
        (scratch / name).write_bytes(b"%PDF-1.7\n")
        os.utime(scratch / name, (time.time() - age, time.time() - age))

    (scratch / "a-folder-someone-made").mkdir()  # not a scratch file: left, and start-up goes on
    os.utime(scratch / "a-folder-someone-made", (time.time() - 3 * 86400, time.time() - 3 * 86400))

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        left = sorted(p.name for p in scratch.iterdir())

    assert left == [".live.prepared", "a-folder-someone-made", "upload-of-a-live-process"]


def test_a_file_an_older_instance_wrote_after_the_store_was_moved_is_still_found(tmp_path) -> None:
    # An instance of the earlier release left running while `docexchange db upgrade` (or a new
    # instance) moved the store keeps writing ab/cd/<sha>; the LAYOUT note is there by then, so
    # the store is not walked again. The document's content was a 500 for good.
    root = tmp_path / "blobs"
    store = BlobStore(root)
    assert (root / "LAYOUT").exists()
    data = b"%PDF-1.7\nwritten by the older version\n"
    sha = hashlib.sha256(data).hexdigest()
    (root / sha[:2] / sha[2:4]).mkdir(parents=True)
    (root / sha[:2] / sha[2:4] / sha).write_bytes(data)
    assert store.path(sha).read_bytes() == data
    assert not (root / sha[:2] / sha[2:4] / sha).exists()
    assert BlobStore(root).path(sha).read_bytes() == data
