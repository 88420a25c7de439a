"""Per-sequence optical-flow cache: every flow is computed once and stored on disk.

Format: `<cache_dir>/<backend.tag>/<sequence.dataset>/<sequence.name>/<stem_a>_<stem_b>.npy`, one float16
NumPy array [H, W, 2] (u, v) per direction of each consecutive frame pair. float16 keeps 1/32-pixel
precision up to 64-pixel displacements and halves the disk cost: 4 * H * W bytes per flow, so one frame
(forward + backward) costs 8 * H * W bytes = 3.3 MB at 854x480 (about 11 GB for DAVIS-2017 trainval 480p,
4 GB for DAVIS-2016). Files are written to a temporary name and renamed, so an interrupted run leaves no
half-written file and a rerun resumes where it stopped.

A cache file is used only when it holds what a flow must be: a float array [H, W, 2] with the frames' H and
W and only finite values. Anything else (a zero-byte or truncated file from a full disk or a cut-short copy,
another shape, NaN) is recomputed and rewritten, and counted in `repaired`.

Each sequence folder also holds `frames.json`: the name, size and SHA-1 of the whole file of every frame its flows
were computed from (under the key `whole/sha1`; older versions hashed some of each file's bytes and missed frames
rewritten in the others). It is compared with the frames given when a process first uses the folder, and
again whenever the file changed since (another tree's sequence of the same name, in this process or another); when a
frame of the same name differs (frames re-extracted in place, another tree with a sequence of the same name sharing
the cache), the folder's flows are deleted and recomputed, with a warning, and counted in `stale`. Content decides:
`frames.json` also keeps, under `whole/stat`, each file's size, mtime, ctime and inode when it was hashed (by its
absolute path), and a file whose stat is still that one is taken as its recorded hash; the others are read whole
(the first check of a folder, a tree of other mtimes, a file rewritten). So a later process's check of an
unchanged folder costs one stat() per file: 2-10 ms for 60 frames and 118 .flo files of 480p, where reading them
whole (~400 MB) took 0.4-1.3 s from the page cache and 1-2.8 s from disk. The first check still reads every file
whole (0.1-0.3 s per 1,000 DAVIS 480p JPEGs in the page cache; a 480p .flo file is 3.3 MB). It reads, merges and
rewrites `frames.json` under an exclusive flock on the folder, so processes checking one folder at once (two
clips of a sequence) keep each other's frames. A folder without `frames.json` (written before it existed) is
trusted and gets one. A `.flo` folder's files are fingerprinted the same way (flows exported again in place).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from maskrnn_tf.data.flow_backends import FlowBackend
from maskrnn_tf.data.sequences import Sequence, image_size
from maskrnn_tf.io import read_frame
from maskrnn_tf.io.atomic_file import atomic_write

log = logging.getLogger(__name__)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


class FlowCacheError(ValueError):
    """The cache folder cannot be used, or the flow backend gave a flow that does not fit the frames."""


def flow_problem(flow: np.ndarray, height: int, width: int) -> Optional[str]:
    """What is wrong with `flow` as the flow of a height x width frame (None when nothing is)."""
    if flow.dtype.kind != "f":
        return f"dtype {flow.dtype} is not a float type"
    if flow.shape != (height, width, 2):
        return f"shape {flow.shape} is not {(height, width, 2)} (the frames' height, width, then u, v)"
    bad = int(np.size(flow) - np.count_nonzero(np.isfinite(flow)))
    if bad:
        return f"{bad} non-finite values (NaN or Inf)"
    return None


FINGERPRINT = "frames.json"
# frames.json's key for the current fingerprints (whole files). No frame stem holds a "/": the top level's other
# keys are frame stems, recorded by older versions by some of each file's bytes (see `_check_record`).
WHOLE_FILES = "whole/sha1"
# frames.json's key for what spares hashing a file again: {absolute path: [size, mtime_ns, ctime_ns, inode, SHA-1]}
# as stat() gave them when the file was hashed. Beside WHOLE_FILES, not in its entries: a process of the version
# that added WHOLE_FILES, still running on a shared cache, compares those entries as [size, sha1] (other ones
# would be frames of other content to it: flows deleted) and carries unknown top-level keys along unread.
# ctime, because no tool sets it back (cp -p, rsync -a, tar, unzip and os.utime restore mtimes: a frame rewritten
# in place with its old mtime still differs); the inode, for a file replaced by a rename within one clock tick;
# not the device number, which changes across reboots on NFS and overlay mounts (everything hashed again).
FILE_STATS = "whole/stat"
# A file changed less than this before it was hashed is not recorded by its stat: a rewrite of the same size within
# the same tick of the file system's clock (1-2 s on ext3, FAT, some NFS) would keep its stat whole (git's "racily
# clean" entries). It is hashed again at the next check, until it is older.
_RACY_NS = 2_000_000_000


def _stat_key(st: os.stat_result) -> List[int]:
    """[size, mtime_ns, ctime_ns, inode]: what tells a file changed since it was hashed (see FILE_STATS)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _hashed(path: str) -> Tuple[List[object], Optional[List[object]]]:
    """(`_file_fingerprint` of `path`, its FILE_STATS entry), the entry None when the file changed while read or
    less than `_RACY_NS` before (its stat would not tell a rewrite in the same clock tick)."""
    started = time.time_ns()
    digest, size = hashlib.sha1(), 0
    with open(path, "rb") as f:  # in blocks (hashlib.file_digest needs Python 3.11; setup.py allows 3.10)
        before = os.fstat(f.fileno())
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
        after = os.fstat(f.fileno())
    print_: List[object] = [size, digest.hexdigest()]
    recent = max(after.st_mtime_ns, after.st_ctime_ns) >= started - _RACY_NS
    if recent or _stat_key(after) != _stat_key(before) or size != after.st_size:
        return print_, None
    return print_, _stat_key(after) + [print_[1]]


def _file_fingerprint(path: str) -> List[object]:
    """[size in bytes, SHA-1 of every byte] of a frame file (or .flo source file)."""
    return _hashed(path)[0]


def _stat_entries(record: Optional[dict]) -> Dict[str, List[object]]:
    """The well-formed FILE_STATS entries of a frames.json record (none in records of older versions)."""
    entries = (record or {}).get(FILE_STATS)
    if not isinstance(entries, dict):
        return {}
    return {path: entry for path, entry in entries.items()
            if isinstance(entry, list) and len(entry) == 5 and isinstance(entry[4], str)
            and all(type(value) is int for value in entry[:4])}


def _fingerprints(paths: Iterable[str],
                  known: Dict[str, List[object]]) -> Tuple[Dict[str, List[object]], Dict[str, List[object]]]:
    """({frame stem: [size, SHA-1]}, {absolute path: FILE_STATS entry}) of frame files: a file whose stat is the one
    `known` holds for its path is taken as the hash recorded with it (one stat() call), the others read whole."""
    prints: Dict[str, List[object]] = {}
    stats: Dict[str, List[object]] = {}
    for path in paths:
        where = os.path.abspath(path)
        entry = known.get(where)
        if entry is not None:
            try:
                unchanged = entry[:4] == _stat_key(os.stat(path))
            except OSError:
                unchanged = False  # hashing it raises the error, as it did
            if unchanged:
                prints[_stem(path)], stats[where] = [entry[0], entry[4]], entry
                continue
        prints[_stem(path)], entry = _hashed(path)
        if entry is not None:
            stats[where] = entry
    return prints, stats


def _frame_fingerprint(paths) -> Dict[str, List[object]]:
    """{frame stem: `_file_fingerprint`} of frame files. Whole files: a sample of their bytes missed changes (a
    BMP's rows between two sampled chunks). 0.1-0.3 ms per DAVIS 480p JPEG (~120 KB) read from the page cache.
    Blind to modification times on purpose: DAVIS-2016 and DAVIS-2017 trees hold the same frames of a sequence
    under one cache folder, extracted at other times, and must not recompute each other's flows (FILE_STATS only
    spares reading a file again; a file of other stat is hashed and compared by content)."""
    return {_stem(path): _file_fingerprint(path) for path in paths}


# How older versions fingerprinted a file, to read their records: the last 4 KB of every file, then the last
# 4 KB of a JPEG or PNG and `_CHUNKS` chunks of 4 KB spread over the others (BMP, .flo).
_TAIL_BYTES = 4096
_TAIL_HASHED = (".jpg", ".jpeg", ".png")
_CHUNKS = 32


def _tail_fingerprint(path: str) -> List[object]:
    """[size, SHA-1 of the last 4 KB] of a file: the first fingerprint of older versions."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - _TAIL_BYTES))
        return [size, hashlib.sha1(f.read()).hexdigest()]


def _sampled_fingerprint(path: str) -> List[object]:
    """[size, SHA-1 of the bytes read] of a file: the second fingerprint of older versions (the tail of a JPEG or
    PNG, 32 chunks of 4 KB spread over other files)."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        last = max(0, size - _TAIL_BYTES)
        if os.path.splitext(path)[1].lower() in _TAIL_HASHED:
            starts = [last]
        else:
            starts = sorted({last * i // (_CHUNKS - 1) for i in range(_CHUNKS)})
        digest = hashlib.sha1()
        for start in starts:
            f.seek(start)
            digest.update(f.read(_TAIL_BYTES))
        return [size, digest.hexdigest()]


def _other_files_stats(record: dict, paths: Tuple[str, ...]) -> Dict[str, List[object]]:
    """The FILE_STATS entries of `record` to keep beside those of `paths`: other trees' files (DAVIS-2016 beside
    2017), so that neither is hashed again at every switch; not those of folders gone since (one stat() per
    folder), or the record would only grow."""
    checked = {os.path.abspath(p) for p in paths}
    others = {p: entry for p, entry in _stat_entries(record).items() if p not in checked}
    gone = {d for d in {os.path.dirname(p) for p in others} if not os.path.isdir(d)}
    return {p: entry for p, entry in others.items() if os.path.dirname(p) not in gone}


def _frame_dirs(sequence: Sequence) -> Tuple[str, ...]:
    """The folders `sequence`'s frames are in (which tree they come from)."""
    return tuple(sorted({os.path.dirname(p) for p in sequence.frame_paths}))


def _stat_of(path: str) -> Optional[Tuple[int, int, int]]:
    """(inode, size, mtime_ns) of `path`, None when it does not exist: tells a rewritten frames.json."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """Holds an exclusive flock on `folder` itself (created if missing) for the duration: processes, and FlowCache
    instances of one process (each open() is its own lock), read-merge-write its frames.json one at a time.

    The folder, not a lock file in it: a folder holds flows and frames.json only. A folder that cannot be
    created (a read-only cache) is not locked: frames.json cannot be written there either, and a reader sees a
    whole one (it is replaced by a rename)."""
    try:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as err:  # a file system without flock on folders: the check still runs, unguarded
            log.warning("flow cache: could not lock %s (%s); processes recording its frames at once may drop "
                        "each other's", folder, err)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_fingerprint(path: str) -> Optional[Dict[str, List[int]]]:
    """The fingerprint stored at `path`, or None when missing or unreadable (treated as absent): the record
    compared and merged under the folder's lock (`_check_frames` reads it unlocked, for its stats only, by
    `_read_record`)."""
    return _read_record(path)


def _read_record(path: str) -> Optional[dict]:
    """The JSON object stored at `path`, or None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            prints = json.load(f)
    except (OSError, ValueError):
        return None
    return prints if isinstance(prints, dict) else None


class FlowCache:
    """Flows of sequences from `backend`, stored under `cache_dir` (None: computed, never stored).

    Raises FlowCacheError when `cache_dir` is a file or cannot be created.
    """

    def __init__(self, backend: FlowBackend, cache_dir: Optional[str] = None) -> None:
        self.backend = backend
        self.cache_dir = cache_dir
        self.repaired = 0  # damaged cache files found and rewritten
        self.stale = 0  # sequence folders whose flows were of other frames, deleted and recomputed
        # Per cache folder: the frame folders its frames.json was last compared with in this process, and that
        # file's stat then. Another tree's sequence of the same name (this process or another) rewrites it: the
        # folder is compared again before its flows are read or written.
        self._checked: Dict[str, Tuple[Tuple[str, ...], Optional[Tuple[int, int, int]]]] = {}
        self._lock = threading.Lock()  # tf.data's parallel map reads flows from several threads
        if cache_dir is not None:
            if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):
                raise FlowCacheError(f"flow cache folder {cache_dir} is a file, not a folder: give a folder "
                                     "(it is created if missing), or move the file away.")
            try:
                os.makedirs(cache_dir, exist_ok=True)
            except OSError as err:
                raise FlowCacheError(f"flow cache folder {cache_dir} cannot be created ({err}); give a folder "
                                     "that can be written.") from err

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def folder(self, sequence: Sequence) -> Optional[str]:
        """Cache folder of `sequence`'s flows (None without a cache dir)."""
        if self.cache_dir is None:
            return None
        return os.path.join(self.cache_dir, self.backend.tag, sequence.dataset, sequence.name)

    def path(self, sequence: Sequence, a: int, b: int) -> Optional[str]:
        """Cache file of the flow from frame a to frame b of `sequence` (None without a cache dir)."""
        folder = self.folder(sequence)
        if folder is None:
            return None
        if self._checked.get(folder) != (_frame_dirs(sequence), _stat_of(os.path.join(folder, FINGERPRINT))):
            self._check_frames(sequence, folder)
        stem_a, stem_b = _stem(sequence.frame_paths[a]), _stem(sequence.frame_paths[b])
        return os.path.join(folder, f"{stem_a}_{stem_b}.npy")

    def _check_frames(self, sequence: Sequence, folder: str) -> None:
        """Compares `sequence`'s frames with those the folder's flows were computed from (again whenever the
        folder's frames.json changed since, or another tree's sequence used it); deletes the flows when a frame
        differs, and records the frames."""
        fingerprint = os.path.join(folder, FINGERPRINT)
        dirs = _frame_dirs(sequence)
        with self._lock:
            if self._checked.get(folder) == (dirs, _stat_of(fingerprint)):
                return
            # The backend's own inputs (a .flo folder's files) too: stems "00000_00001" never meet frame stems.
            paths = tuple(sequence.frame_paths) + tuple(self.backend.source_files(sequence.name))
            # Hashed before the folder lock, which other processes wait on; the record read unlocked (a rename
            # replaces it whole) only spares hashing files unchanged since: the comparison re-reads it locked.
            current, stats = _fingerprints(paths, _stat_entries(_read_record(fingerprint)))
            # Another process's read-merge-write between this one's read and write would be lost: its frames
            # unrecorded, a later change of them unnoticed.
            with _folder_lock(folder):
                self._check_record(sequence, folder, fingerprint, paths, current, stats)
            self._checked[folder] = (dirs, _stat_of(fingerprint))

    def _check_record(self, sequence: Sequence, folder: str, fingerprint: str, paths: Tuple[str, ...],
                      current: Dict[str, List[object]], stats: Dict[str, List[object]]) -> None:
        """The comparison and record of `_check_frames`, under the folder's lock; `stats` are the FILE_STATS
        entries of `paths` to record.

        A frame recorded only by an older version (a top-level entry: some of the file's bytes) is the same if
        those bytes are, which is all that record can tell: its flows are kept and the frame recorded whole. The
        older entries stay, so a process of an older version still running on this cache finds its frames
        recorded and leaves the flows alone."""
        stored = _read_fingerprint(fingerprint) or {}  # None: a new folder, or cached before records: trusted
        whole = stored.get(WHOLE_FILES)
        whole = dict(whole) if isinstance(whole, dict) else {}
        # Keys with a "/" are this version's (no frame stem holds one); the others are older versions' frames.
        older = {stem: print_ for stem, print_ in stored.items() if "/" not in stem}
        by_stem = {_stem(p): p for p in paths}
        changed, upgraded = [], []
        for stem, print_ in sorted(current.items()):
            if stem in whole:
                if whole[stem] != print_:
                    changed.append(stem)
            elif stem in older:
                if older[stem] in (_sampled_fingerprint(by_stem[stem]), _tail_fingerprint(by_stem[stem])):
                    upgraded.append(stem)
                else:
                    changed.append(stem)
        if changed:
            log.warning("flow cache folder %s holds flows of other frames (%d of %s's frames or source flow "
                        "files differ in size or content, e.g. %s); deleting its flows and recomputing them",
                        folder, len(changed), sequence.name, changed[0])
            for name in os.listdir(folder):
                # Only the cache's own flows: a hidden ".<name>.npy.tmp-...npy" is another process's write in
                # flight (its rename would fail).
                if name.endswith(".npy") and not name.startswith("."):
                    os.remove(os.path.join(folder, name))
            self.stale += 1
            whole, older, stored_stats = {}, {}, {}
        else:
            stored_stats = _other_files_stats(stored, paths)
            if upgraded:
                log.info("flow cache folder %s: %d of %s's frames were recorded by an older version from some of their "
                         "bytes, and those match; their flows are kept and the frames now recorded whole (a change "
                         "in bytes the old record did not read is not seen: delete the folder to recompute its flows)",
                         folder, len(upgraded), sequence.name)
        # A subset of the frames (a clip) keeps the others' entries.
        merged = {**older, WHOLE_FILES: {**whole, **current}}
        if stored_stats or stats:  # no empty key: records of files all too recent stay as the version before wrote
            merged[FILE_STATS] = {**stored_stats, **stats}
        if merged == stored:
            return

        def write(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(merged, f, sort_keys=True)

        try:
            atomic_write(fingerprint, write, suffix=".json")
        except OSError as err:  # a shared read-only cache: its flows are still good to read
            log.warning("flow cache: could not record the frames in %s (%s); flows of changed frames in "
                        "this folder will not be noticed", fingerprint, err)

    def _load(self, path: Optional[str], sequence: Sequence, a: int) -> Optional[np.ndarray]:
        """The cached flow at `path` as float32, or None when it is missing or damaged (damage is logged and
        counted: the caller recomputes and rewrites it)."""
        if path is None or not os.path.isfile(path):
            return None
        try:
            # Mapped, not read: a damaged header claiming a huge shape is then a ValueError (longer than the file)
            # naming the file, not an allocation of that size; np.array() below copies it into memory.
            flow = np.load(path, mmap_mode="r", allow_pickle=False)
            problem = flow_problem(flow, *image_size(sequence.frame_paths[a]))
        except (ValueError, OSError, EOFError) as err:  # EOFError: a zero-byte file
            problem = f"unreadable ({type(err).__name__}: {err})"
        if problem is None:
            return np.array(flow, dtype=np.float32)  # a plain in-memory array (astype would keep the memmap type)
        log.warning("flow cache file %s: %s; recomputing it", path, problem)
        self.repaired += 1
        return None

    def _compute(self, sequence: Sequence, a: int, b: int, frames: dict) -> np.ndarray:
        def frame(i):
            if not self.backend.needs_frames:
                return None
            if i not in frames:
                frames[i] = read_frame(sequence.frame_paths[i])
            return frames[i]

        stem_a, stem_b = _stem(sequence.frame_paths[a]), _stem(sequence.frame_paths[b])
        flow = np.asarray(self.backend.flow(frame(a), frame(b), sequence=sequence.name, stem_a=stem_a,
                                            stem_b=stem_b))
        problem = flow_problem(flow, *image_size(sequence.frame_paths[a]))
        if problem is not None:  # stored, it would be rejected and recomputed on every load
            source = getattr(self.backend, "root", None)  # a folder of .flo files: name the file
            where = f" ({os.path.join(source, sequence.name, f'{stem_a}_{stem_b}.flo')})" if source else ""
            raise FlowCacheError(f"{self.backend.tag} flow from frame {stem_a} to {stem_b} of {sequence.name}{where}: "
                                 f"{problem}; fix the flow source.")
        path = self.path(sequence, a, b)
        if path is not None:
            largest = float(np.abs(flow).max()) if flow.size else 0.0
            # Stored as inf, it would be "damaged" and recomputed at every read.
            if largest > float(np.finfo(np.float16).max):
                raise FlowCacheError(
                    f"{self.backend.tag} flow from frame {stem_a} to {stem_b} of {sequence.name}: a displacement of "
                    f"{largest:g} pixels, beyond what the cache's float16 holds (65504); a .flo file's 'unknown "
                    "flow' marker (1e10)? Replace such values by a real flow in the flow source.")
            stored = flow.astype(np.float16)
            atomic_write(path, lambda tmp: np.save(tmp, stored), suffix=".npy")
            # What every later read gives: a run that fills the cache sees the flows its rerun and resume see.
            return stored.astype(np.float32)
        return flow.astype(np.float32)

    def flow(self, sequence: Sequence, a: int, b: int, frames: Optional[dict] = None) -> np.ndarray:
        """float32 [H, W, 2] flow from frame a to frame b (cached, or computed and stored)."""
        cached = self._load(self.path(sequence, a, b), sequence, a)
        if cached is not None:
            return cached
        return self._compute(sequence, a, b, {} if frames is None else frames)

    def is_complete(self, sequence: Sequence, t: int) -> bool:
        """True when both flows between frames t and t+1 are on disk and intact."""
        return all(self._load(self.path(sequence, a, b), sequence, a) is not None
                   for a, b in ((t, t + 1), (t + 1, t)))

    def precompute(self, sequence: Sequence, on_pair: Optional[Callable[[bool], None]] = None) -> int:
        """Computes every missing or damaged flow of a sequence (both directions); returns the pairs computed.

        `on_pair(skipped)` is called once per consecutive pair (for a progress bar).
        """
        computed = 0
        frames: dict = {}
        for t in range(sequence.num_frames - 1):
            missing = [(a, b) for a, b in ((t, t + 1), (t + 1, t))
                       if self._load(self.path(sequence, a, b), sequence, a) is None]
            if not missing:
                if on_pair:
                    on_pair(True)
                continue
            for a, b in missing:
                self._compute(sequence, a, b, frames)
            frames.pop(t, None)  # keep at most two decoded frames in memory
            computed += 1
            if on_pair:
                on_pair(False)
        return computed

    def flows_for(self, sequence: Sequence, indices) -> Tuple[np.ndarray, np.ndarray]:
        """(flows_to_prev, flows_to_next) float32 [n, H, W, 2] for frame `indices` (zeros at the ends)."""
        to_prev, to_next = [], []
        frames: dict = {}
        last = sequence.num_frames - 1
        for t in indices:
            t = int(t)
            prev = self.flow(sequence, t, t - 1, frames) if t > 0 else None
            nxt = self.flow(sequence, t, t + 1, frames) if t < last else None
            reference = prev if prev is not None else nxt
            if reference is None:  # a one-frame sequence: no flow at all
                h, w = image_size(sequence.frame_paths[t])
                reference = np.zeros((h, w, 2), np.float32)
            to_prev.append(prev if prev is not None else np.zeros_like(reference))
            to_next.append(nxt if nxt is not None else np.zeros_like(reference))
        return np.stack(to_prev), np.stack(to_next)
