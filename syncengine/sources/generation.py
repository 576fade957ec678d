"""Which file a file feed's positions belong to: its generation.

A file feed's checkpoint is a byte offset and a line number, which mean
something only in the file they were taken in. A file replaced at the same
path (rotated by rename or by truncation, a nightly export written again)
is a new generation of the feed: it is read from its start, and nothing of
the old file's checkpoint, replay window (high water) or journaled positions
applies to it. The generation is a fingerprint stored with the checkpoint
and the high water:

    v1:<inode>:<length>:<hash of the first <length> bytes>

- The inode, because rotation by rename and an export written to a new file
  and moved into place both put another inode at the path, whatever they
  hold. The device number is left out: it can change for the same file
  across a reboot or a container restart (device enumeration, overlay
  mounts), and would make a restart read a whole feed again.
- A hash of the file's first bytes (up to `FINGERPRINT_BYTES`), because a
  truncation followed by a rewrite keeps the inode (and an old inode number
  can be reused by a new file once the rotated one is deleted), while the
  first lines of the new content differ. The length is part of the
  fingerprint, so it is checked against the same bytes however much the file
  grew since: appending never changes it, and the fingerprint survives a
  restart.

What it cannot see, by design: a copy of the file (restored from a backup,
rewritten by an editor through a new file) is a new inode, so it is read
again from its start (updates are re-sent harmlessly, plain inserts would
be duplicated). A file truncated and rewritten in place whose first bytes
are the same as before is the same generation to the fingerprint; the line
count check at the checkpoint (`base.check_line_number`) still catches most
of those and stops the pass with advice.
"""

from __future__ import annotations

import hashlib
import os

#: Most bytes from the start of the file the fingerprint covers: enough to
#: hold the first rows of any real feed (a CSV header and its first records),
#: little enough to read and hash in microseconds at every check.
FINGERPRINT_BYTES = 64 * 1024

_VERSION = "v1"


def fingerprint(fd: int) -> str:
    """The generation of the open file `fd`: its inode and a hash of its first bytes.

    Covers the first `FINGERPRINT_BYTES` bytes, or the whole file when it is
    shorter; reads with `pread`, so the file's position does not move.
    """
    info = os.fstat(fd)
    length = min(info.st_size, FINGERPRINT_BYTES)
    head = os.pread(fd, length, 0)
    return _format(info.st_ino, len(head), head)


def is_generation(fd: int, generation: str) -> bool:
    """True when the open file `fd` is the file `generation` was taken from.

    Same inode, at least as many bytes as the fingerprint covered, and the
    same bytes there. A fingerprint this engine cannot read counts as another
    file: reading a file again from its start can repeat changes, never lose
    them.
    """
    parts = generation.split(":")
    if len(parts) != 4 or parts[0] != _VERSION:
        return False
    _, inode, length_text, _ = parts
    if not inode.isdigit() or not length_text.isdigit():
        return False
    info = os.fstat(fd)
    length = int(length_text)
    if info.st_ino != int(inode) or info.st_size < length:
        return False
    return _format(info.st_ino, length, os.pread(fd, length, 0)) == generation


def _format(inode: int, length: int, head: bytes) -> str:
    digest = hashlib.blake2b(head, digest_size=16).hexdigest()
    return f"{_VERSION}:{inode}:{length}:{digest}"


def row_source(source_id: str | None, generation: str | None) -> str | None:
    """What a journal row names as the feed its position lies in: the feed and its file.

    A record's row keeps the position of its latest change; the replay
    window trusts that position only for re-read changes of the same file
    (a line number of a rotated-away file says nothing about the new one).
    A short digest of the generation keeps the rows small; positions of
    table feeds (no generation) name the feed alone, as rows always did.
    """
    if source_id is None or generation is None:
        return source_id
    return f"{source_id}@{hashlib.blake2b(generation.encode(), digest_size=6).hexdigest()}"
