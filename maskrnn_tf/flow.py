"""Precomputes and caches the optical flow of a data set (both directions of every consecutive frame pair).

    python -m maskrnn_tf.flow --dataset=davis --year=2016 --manual_dir=DAVIS --cache_dir=flow_cache
    python -m maskrnn_tf.flow --dataset=segtrack_v2 --manual_dir=SegTrackv2 --cache_dir=flow_cache --backend=farneback
    python -m maskrnn_tf.flow --dataset=davis --year=2017 --manual_dir=DAVIS --cache_dir=c --backend=flo --flo_dir=raft
    python -m maskrnn_tf.flow --dataset=davis --manual_dir=DAVIS --cache_dir=flow_cache --splits=val --warp_iou

Writes `<cache_dir>/<backend>/<dataset>/<sequence>/<from>_<to>.npy` (float16 [H, W, 2] (u, v); 3.3 MB per
frame at 854x480, see maskrnn_tf/data/flow_cache.py). Rerunning skips finished pairs, so an interrupted run
resumes where it stopped; every file is written atomically. Damaged cache files (empty, truncated, wrong
shape, NaN) are recomputed. `--warp_iou` then prints, per sequence, the J of the annotated masks carried one
frame by the flows (`maskrnn_tf.metrics.warp_iou`): what the flow alone keeps of each object; `--motion_contrast`
how well flow magnitude, raw and relative to the frame's median flow, tells each object from its background
(`maskrnn_tf.metrics.motion_contrast`).
Exit status: 0 done, 1 bad or missing data, 2 bad flags.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.flag_validation import defined_once

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """flow's flags and their checks (see defined_once)."""
    flags.DEFINE_enum("dataset", "davis", ["davis", "segtrack_v2"], "Which layout --manual_dir holds.")
    flags.DEFINE_integer("year", None, "DAVIS year (2016 or 2017); default: the folder's (ImageSets/2017 or not, or "
                         "the official zip found).")
    flags.DEFINE_list("splits", None, "DAVIS splits (default: every split present in ImageSets).")
    flags.DEFINE_string("resolution", "480p", "DAVIS resolution folder (480p or Full-Resolution).")
    flags.DEFINE_string("manual_dir", None, "The extracted data set folder.")
    flags.DEFINE_string("cache_dir", None, "Where the flows go: a folder outside the data set (created if missing).")
    flags.DEFINE_string("backend", "dis", "dis (DIS medium), dis-fast, dis-ultrafast, farneback, or flo (--flo_dir).")
    flags.DEFINE_string("flo_dir", None, "With --backend=flo: folder of <sequence>/<from>_<to>.flo files.")
    flags.DEFINE_list("sequences", None, "Only these sequences.")
    flags.DEFINE_bool("warp_iou", False, "Then score how well the flows carry the annotated masks: each object's "
                      "mask warped from frame t-1 into frame t by the flow t -> t-1 (as the model warps its "
                      "previous mask), J against frame t's mask, per sequence (no network involved).")
    flags.DEFINE_bool("motion_contrast", False, "Then score how well flow magnitude tells each annotated object "
                      "from its background: per sequence, the mean over objects and frames of the AUC of |flow to "
                      "t-1| and of |flow - its median| (at the cache's resolution; "
                      "--set=model.flow_reference=median feeds the flow stream the latter at its working size) "
                      "ranking object above background pixels.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.register_validator("year", lambda year: year in (None, 2016, 2017),
                             message="must be 2016 or 2017 (DAVIS years).")


def main(argv) -> int:
    """Lists the sequences, then fills the cache pair by pair with a progress bar."""
    del argv
    # No TensorFlow here (OpenCV flows, NumPy caches): its start-up would add seconds to every call.
    from tqdm import tqdm

    from maskrnn_tf.data.flow_backends import make_backend
    from maskrnn_tf.data.flow_cache import FlowCache, FlowCacheError
    from maskrnn_tf.data.sequences import (davis_split_names, davis_splits, find_davis_root, find_segtrack_root,
                                           read_davis_sequence_list, read_segtrack_sequence_list, resolve_davis_dir)

    if not FLAGS.manual_dir or not FLAGS.cache_dir:
        print("Error: --manual_dir and --cache_dir are required.", file=sys.stderr)
        return 2
    # `--cache_dir=~/...` reaches us unexpanded (the shell expands ~ only at the start of a word); training
    # expands it, so the flows must land where training looks for them.
    from maskrnn_tf.flag_validation import expand_user_paths

    expand_user_paths(("manual_dir", "cache_dir", "flo_dir"))
    if FLAGS.flo_dir and FLAGS.backend != "flo":  # else the cache fills with flows the user did not ask for
        print(f"Error: --flo_dir is read only with --backend=flo (this run would compute --backend={FLAGS.backend} "
              "flows from the frames): add --backend=flo or drop --flo_dir.", file=sys.stderr)
        return 2
    backend = make_backend(FLAGS.backend, FLAGS.flo_dir)
    # Before a zip's extraction and the slow listing of the data set: a bad --cache_dir is a usage error.
    problem = _cache_dir_problem(FLAGS.cache_dir)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    if FLAGS.dataset == "davis":
        if not FLAGS.year and _both_years(FLAGS.manual_dir, FLAGS.resolution):
            print(f"Error: --manual_dir={FLAGS.manual_dir} holds DAVIS-2016 and DAVIS-2017: give --year=2016 or "
                  "--year=2017 (run both to cache the flows of both; training reads the year of its flag file).",
                  file=sys.stderr)
            return 2
        year = FLAGS.year or _folder_year(FLAGS.manual_dir, FLAGS.resolution)
        # The official zip is read as training reads it: extracted once into the cache.
        root = find_davis_root(resolve_davis_dir(FLAGS.manual_dir, year, FLAGS.resolution), FLAGS.resolution,
                               year=year)
    else:
        root = find_segtrack_root(FLAGS.manual_dir)
    problem = _cache_overlap(FLAGS.cache_dir, root, FLAGS.manual_dir,
                             "DAVIS" if FLAGS.dataset == "davis" else "SegTrack v2")
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 2
    if FLAGS.dataset == "davis":
        splits = FLAGS.splits or davis_splits(root, year, FLAGS.resolution) + _test_splits(root, year)
        listed = list(dict.fromkeys(name for split in splits  # every split's names, in order, each once
                                    for name in davis_split_names(root, year, split, FLAGS.resolution)))
        if not listed:  # "0 sequences: 0 frame pairs computed" would read as a full cache
            print(f"Error: {root}: no sequences of DAVIS-{year} {FLAGS.resolution} there (ImageSets/"
                  f"{'2017' if year == 2017 else FLAGS.resolution}/ lists no split); check --manual_dir and --year.",
                  file=sys.stderr)
            return 2
    else:
        sequences = read_segtrack_sequence_list(root)
        listed = [s.name for s in sequences]
    if FLAGS.sequences:
        unknown = sorted(set(FLAGS.sequences) - set(listed))
        if unknown:  # a bad flag (exit 2), not bad data
            print(f"Error: --sequences: {unknown} not in the data set ({len(listed)} sequences listed: "
                  f"{', '.join(listed[:5])}{', ...' if len(listed) > 5 else ''}).", file=sys.stderr)
            return 2
    if FLAGS.dataset == "davis":
        by_name = {}
        for split in splits:
            # Flows need the frames only: test-dev and test-challenge ship the first frame's mask alone. Only the
            # sequences named are opened: another one's broken files must not stop work on them.
            for sequence in read_davis_sequence_list(root, year, split, FLAGS.resolution, validate="first_mask",
                                                     names=FLAGS.sequences):
                by_name.setdefault(sequence.name, sequence)
        sequences = list(by_name.values())
    elif FLAGS.sequences:
        sequences = [s for s in sequences if s.name in FLAGS.sequences]
    try:  # created only now that the inputs checked out: a refused run leaves no empty cache folder behind
        cache = FlowCache(backend, FLAGS.cache_dir)
    except FlowCacheError as err:
        print(f"Error: --cache_dir: {err}", file=sys.stderr)
        return 2
    total = sum(s.num_frames - 1 for s in sequences)
    skipped = computed = 0
    with tqdm(total=total, unit="pair", disable=not FLAGS.progress, desc="flow") as bar:
        for sequence in sequences:
            bar.set_postfix_str(sequence.name)

            def on_pair(was_cached: bool) -> None:
                nonlocal skipped, computed
                skipped += was_cached
                computed += not was_cached
                bar.update(1)

            cache.precompute(sequence, on_pair)
    repaired = f"; {cache.repaired} damaged cache files recomputed" if cache.repaired else ""
    print(f"{len(sequences)} sequences: {computed} frame pairs computed, {skipped} already cached "
          f"({cache.backend.tag} in {FLAGS.cache_dir}){repaired}")
    if FLAGS.warp_iou:
        print(warp_iou_table(sequences, cache))
    if FLAGS.motion_contrast:
        print(motion_contrast_table(sequences, cache))
    return 0


def _cache_dir_problem(cache_dir: str) -> Optional[str]:
    """What keeps `cache_dir` from holding the flow cache (None when nothing does), checked without creating it:
    it must be a folder, or be creatable where this user may write."""
    if os.path.exists(cache_dir):
        if os.path.isdir(cache_dir):
            return None
        return (f"--cache_dir: flow cache folder {cache_dir} is a file, not a folder: give a folder (it is created "
                "if missing), or move the file away.")  # as FlowCache words it
    from maskrnn_tf.io.output_paths import UnwritableOutputError, check_writable_location

    try:
        check_writable_location(cache_dir, "--cache_dir")
    except UnwritableOutputError as err:
        return str(err)
    return None


def _cache_overlap(cache_dir: str, root: str, manual_dir: str, dataset: str) -> Optional[str]:
    """Segment's refusal of an output overlapping an input (None when there is none) for a `cache_dir` that is,
    contains or lies inside the data set folder `root` found from `manual_dir`: the cache writes into
    <cache_dir>/<backend>/<dataset>/<sequence>/ and deletes the .npy files there to recompute them."""
    real_root, real_manual = os.path.realpath(root), os.path.realpath(manual_dir)
    if real_root == real_manual:
        flag = "--manual_dir"
    elif real_root.startswith(real_manual.rstrip(os.sep) + os.sep):
        flag = f"--manual_dir's {dataset} folder"
    else:  # the official zip's extraction under the user's cache folder
        flag = f"{dataset} folder extracted from --manual_dir's zip"
    from maskrnn_tf.io.output_paths import UnsafeOutputError, check_no_overlap

    try:
        check_no_overlap(cache_dir, [(flag, root)], "--cache_dir")
    except UnsafeOutputError as err:
        return str(err)
    return None


def _test_splits(root: str, year: int) -> list:
    """The DAVIS-2017 test splits (test-dev, test-challenge) whose ImageSets file is under `root`: segment reads
    their flows from the cache too, and a test-dev tree has no other split."""
    if year != 2017:
        return []
    folder = os.path.join(root, "ImageSets", "2017")
    return [s for s in ("test-dev", "test-challenge") if os.path.isfile(os.path.join(folder, s + ".txt"))]


def _os_error_message(err: OSError, cache_dir: str) -> str:
    """One line for an OS error: a write into the flow cache (the rerun resumes), or another path's."""
    path = err.filename or ""
    reason = err.strerror or str(err)
    cache = os.path.realpath(cache_dir) if cache_dir else None
    if path and cache and os.path.realpath(path).startswith(cache + os.sep):
        return (f"cannot write the flow cache at {path} ({reason}); free space or fix that path, then rerun: the flows "
                "cached so far are kept and the rerun computes the rest.")
    return _console.os_error_line(err)


def _both_years(manual_dir: str, resolution: str) -> bool:
    """Whether `manual_dir` holds DAVIS-2016 and DAVIS-2017 apart: two extracted trees side by side, or the official
    zips of both years (or one extracted, the other zipped)."""
    from maskrnn_tf.data.sequences import DAVIS_ARCHIVES, DatasetLayoutError, find_davis_root

    found = set()
    for year in (2016, 2017):
        try:
            found.add(os.path.realpath(find_davis_root(manual_dir, resolution, year=year, strict=True)))
            continue
        except DatasetLayoutError:
            pass
        name = DAVIS_ARCHIVES.get((year, resolution))
        if name and os.path.isfile(os.path.join(manual_dir, name)):
            found.add(os.path.join(manual_dir, name))
    return len(found) == 2


def _folder_year(manual_dir: str, resolution: str) -> int:
    """The DAVIS year of `manual_dir`: its extracted tree's (ImageSets/2017 or not), else its official zip's."""
    from maskrnn_tf.data.sequences import DAVIS_ARCHIVES, DatasetLayoutError, davis_year

    try:
        return davis_year(manual_dir, resolution)  # a Full-Resolution tree has no JPEGImages/480p
    except DatasetLayoutError:
        pass
    for year in (2017, 2016):
        name = DAVIS_ARCHIVES.get((year, resolution))
        if name and os.path.isfile(os.path.join(manual_dir, name)):
            return year
    return 2016  # nothing there: the reader's layout error follows


def _annotated(sequences, lines: list):
    """The sequences with a mask for every frame, in order; each other one is listed in `lines` as not scored."""
    for sequence in sequences:
        if all(os.path.isfile(path) for paths in sequence.mask_paths for path in paths):
            yield sequence
        else:
            lines.append(f"| {sequence.name} | - | not scored: frames without a mask | |")


def _readers(sequence, cache):
    """(read_ids(t), flow(a, b)) of one sequence: its frame t's object ids and its cached flow a -> b."""
    from maskrnn_tf.data.sequences import read_ids

    return (lambda t: read_ids(sequence, t)), (lambda a, b: cache.flow(sequence, a, b))


def warp_iou_table(sequences, cache) -> str:
    """A Markdown table: per sequence, the mean and lowest J (%) of its masks carried one frame by the cached
    flows, and the mean over all scored pairs. Sequences without a mask for every frame are listed unscored."""
    import numpy as np

    # The warp is TensorFlow's (maskrnn_tf.ops): imported with its start-up noise hidden, as segment and train do.
    _console.import_tensorflow_quietly()
    from maskrnn_tf.metrics.warp_iou import sequence_warp_ious

    lines = [f"Masks carried one frame by the flows ({cache.backend.tag}): J of mask t-1 warped into frame t",
             "", "| sequence | pairs | J-Mean | lowest J |", "|---|--:|--:|--:|"]
    scored = []
    for sequence in _annotated(sequences, lines):
        ious = sequence_warp_ious(*_readers(sequence, cache), sequence.num_frames, sequence.num_objects)
        ious = ious[~np.isnan(ious)]
        scored.append(ious)
        if ious.size:
            lines.append(f"| {sequence.name} | {ious.size} | {100 * ious.mean():.1f} | {100 * ious.min():.1f} |")
        else:
            lines.append(f"| {sequence.name} | 0 | no object in two consecutive frames | |")
    everything = np.concatenate(scored) if scored else np.zeros(0)
    if everything.size:
        lines.append(f"| **all** | {everything.size} | **{100 * everything.mean():.1f}** | "
                     f"{100 * everything.min():.1f} |")
    return "\n".join(lines)


def motion_contrast_table(sequences, cache) -> str:
    """A Markdown table: per sequence, the number of (object, frame) pairs scored (frames 1..T-1, each object
    present with background beside it) and their mean AUC with which |flow| and |flow - median| rank object pixels
    above background pixels (`maskrnn_tf.metrics.motion_contrast`); then the mean over the sequences and how many
    are above 0.5. Sequences without a mask for every frame are listed unscored."""
    import numpy as np

    from maskrnn_tf.metrics.motion_contrast import sequence_motion_aucs

    lines = [f"Flow magnitude as an object-vs-background score ({cache.backend.tag}, flow t -> t-1): AUC, 1 = the "
             "object moves faster than its background, 0 = slower", "",
             "| sequence | object-frames | AUC of abs(flow) | AUC of abs(flow - median) |", "|---|--:|--:|--:|"]
    means = []
    for sequence in _annotated(sequences, lines):
        aucs = sequence_motion_aucs(*_readers(sequence, cache), sequence.num_frames,
                                    sequence.num_objects).reshape(-1, 2)
        aucs = aucs[~np.isnan(aucs).any(axis=1)]
        if not aucs.size:
            lines.append(f"| {sequence.name} | 0 | no object with background beside it | |")
            continue
        means.append(aucs.mean(axis=0))
        lines.append(f"| {sequence.name} | {len(aucs)} | {means[-1][0]:.2f} | {means[-1][1]:.2f} |")
    if means:
        mean, above = np.mean(means, axis=0), np.sum(np.array(means) > 0.5, axis=0)
        lines.append(f"| **mean of {len(means)}** | | **{mean[0]:.2f}** ({above[0]} above 0.5) | "
                     f"**{mean[1]:.2f}** ({above[1]} above 0.5) |")
    return "\n".join(lines)


def run() -> None:
    """Entry point: absl flags, one-line errors for bad inputs."""
    _console.quiet_startup()

    def guarded(argv):
        from maskrnn_tf.io import ImageReadError

        try:
            return main(argv)
        except (ImageReadError, ValueError, FileNotFoundError) as err:
            print(f"Error: {err}", file=sys.stderr)
            return 1
        except OSError as err:  # a full disk, a file where a folder goes, no permission
            print(f"Error: {_os_error_message(err, FLAGS.cache_dir)}", file=sys.stderr)
            return 1

    from maskrnn_tf.flag_validation import parse_flags_or_exit

    define_flags()
    app.run(guarded, flags_parser=parse_flags_or_exit)


if __name__ == "__main__":
    run()
