"""Export a trained MaskRNN as a TF-Serving version: `<export_base>/<version>/` written atomically.

Layout (what `tensorflow_model_server --model_base_path=<export_base>` polls):
  <export_base>/<version>/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests,
  assets.extra/maskrnn_export.json (config, precision, signatures; for people and clients; and the files the
  export wrote, with their sizes: `--overwrite` replaces a version only while it holds nothing else).
Everything is written into `<export_base>/.tmp-<version>-<owner>-XXXX` (the server ignores non-numeric folders;
the owner is `<pid>.<pidns>.<boot>@<host>`, see maskrnn_tf.io.tmp_dirs) and renamed into place at the end, so the
server never sees a half-written version; any failure removes it, and the temporaries of killed exports (their
process gone from this pid namespace, or of an earlier boot of this host) are removed by the next
export of that version.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import zipfile
from typing import Dict, List, Optional, Tuple, Union


from maskrnn_tf.export.ops_audit import audit_saved_model, check_ops
from maskrnn_tf.export.batching_check import batching_problems, check_batching_warmup_shapes
from maskrnn_tf.export.serving_module import (BATCHED_STEP_SIGNATURE, PRECISIONS, STEP_SIGNATURE, Servable,
                                              rebuild_with_precision, signature_tables)
from maskrnn_tf.export.warmup import (WARMUP_FILENAME, WarmupConfig, WarmupReplayError, check_warmup_record_count,
                                     first_line, replay_warmup_file, write_warmup_file)
from maskrnn_tf.export.session_model import SessionModel
from maskrnn_tf.export.versions import MAX_VERSION, served_children, version_of
from maskrnn_tf.inference.model_loading import MODEL_FILE, ModelLoadError
from maskrnn_tf.inference.model_loading import load_model as load_trained_model
from maskrnn_tf.io.tmp_dirs import (clean_stale_tmp_dirs, make_owned_tmp_dir, path_matches, replace_dir,
                                   restore_interrupted_replace)
from maskrnn_tf.model import MaskRNN

METADATA_FILENAME = "maskrnn_export.json"
# What an export wrote before its metadata record listed its files: the SavedModel (nothing in assets/), the
# warmup file and the record. `--overwrite` may delete these in such a version, no more.
_LEGACY_FILES = ("saved_model.pb", "fingerprint.pb", "variables/variables.index",
                 "variables/variables.data-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]",
                 f"assets.extra/{METADATA_FILENAME}", f"assets.extra/{WARMUP_FILENAME}")
_LEGACY_FOLDERS = ("assets", "assets.extra", "variables")


class ExportError(RuntimeError):
    """The export cannot be written (bad version, existing version, unreadable model)."""


class ExportUsageError(ExportError):
    """The export was asked for something it refuses whatever the model and the disk (export_main: a usage error,
    exit 2): an export base inside a SavedModel version folder."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How to export: precision of the computation, overwrite policy, warmup requests, ops audit."""

    precision: str = "float32"  # float32 | bfloat16 | float16 (mixed policy; outputs stay float32)
    overwrite: bool = False  # replace an existing <export_base>/<version>
    model_name: str = "maskrnn"  # model_spec.name written into the warmup requests
    warmup: Optional[WarmupConfig] = dataclasses.field(default_factory=WarmupConfig)  # None: no warmup file
    audit_ops: bool = True  # refuse (and remove) an export with non-core ops
    # For a model server with --enable_batching: only the `step_batched` signature (the server batches every
    # signature of a model, and the per-video ones cannot be batched; see export/batching_check.py).
    batching: bool = False
    # With `batching`: rows a warmup request may have, the max_batch_size of the batching server's parameters
    # file (None: the shipped export/batching_parameters.txt's); it refuses larger ones, and the version with them.
    max_batch_size: Optional[int] = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"ExportConfig.precision {self.precision!r}: choose one of {PRECISIONS}.")
        if self.batching and self.warmup is not None:
            check_batching_warmup_shapes(self.warmup.shapes, self.max_batch_size)


def load_model(path: str) -> MaskRNN:
    """Loads a trained MaskRNN as the segment CLI does: a `.keras` file, a run folder or a checkpoint.

    Raises ExportError naming the path: missing, truncated or corrupt `.keras` file, nothing loadable.
    """
    keras_file = path if path.endswith(".keras") else os.path.join(path, MODEL_FILE)
    if os.path.isfile(keras_file) and not zipfile.is_zipfile(keras_file):
        # Keras reports a cut-off archive as "File not found"; a .keras file is a zip archive.
        raise ExportError(
            f"{keras_file} is truncated or corrupt (not a complete .keras zip archive, "
            f"{os.path.getsize(keras_file)} bytes); copy it again or save it again from training."
        )
    try:
        return load_trained_model(path)
    except (ModelLoadError, ValueError) as e:
        raise ExportError(str(e)) from e


def version_dir(export_base: str, version: int) -> str:
    """`<export_base>/<version>` after checking that the version is a positive integer."""
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise ExportError(f"Version {version!r} must be a positive integer: TF-Serving only loads numeric version folders.")
    if version > MAX_VERSION:
        raise ExportError(f"Version {version} must be at most {MAX_VERSION}: TF-Serving reads version folder names as "
                          "int64 and never serves a larger one.")
    return os.path.join(export_base, str(version))


def unserved_notice(export_base: str, version: int) -> Optional[str]:
    """A warning when `<export_base>` holds a version above `version`: the model server's default version policy
    (`latest`, one version) serves only the highest, so this one would never be loaded; None otherwise.

    A version is any child the model server takes for one (export/versions.py), a file with a numeric name too:
    the server tries to load it, fails, and serves nothing newer; such files are named, with what to do.
    """
    try:
        children = served_children(export_base)
    except OSError:
        return None
    higher = sorted((number, name) for name, number in children.items() if number > version)
    if not higher:
        return None
    shown = ", ".join(str(number) for number, _ in higher[:3]) + (" ..." if len(higher) > 3 else "")
    highest = higher[-1][0]
    files = [name for _, name in higher if not os.path.isdir(os.path.join(export_base, name))]
    files_note = ""
    if files:
        it, is_a_file = ("it", "is a file") if len(files) == 1 else ("them", "are files")
        listed = ", ".join(os.path.join(export_base, name) for name in files[:3]) + (" ..." if len(files) > 3 else "")
        files_note = (f" {listed} {is_a_file}, not a version folder, but the model server takes every numeric name in "
                      f"its base path for a version and fails to load {it}: move {it} out of {export_base} or rename "
                      f"{it} to a name that is not a number (e.g. {files[0].strip()}.txt).")
    return (f"warning: {export_base} also holds version(s) {shown} above {version}: a model server with the default "
            f"version policy serves only the highest, {highest}, so version {version} is not served.{files_note} "
            f"Export a version above {highest}, remove the higher ones, or name it in the server's model config "
            f"(model_version_policy {{ specific {{ versions: {version} }} }}).")


def _signature_table(inputs, outputs) -> dict:
    def describe(table):
        return {k: {"dtype": d.name, "shape": [-1 if s is None else s for s in shape]} for k, (d, shape) in table.items()}

    return {"inputs": describe(inputs), "outputs": describe(outputs), "method_name": "tensorflow/serving/predict"}


def _contents(folder: str) -> Tuple[Dict[str, int], List[str], List[str]]:
    """(files {path: size}, folders, links) under `folder`, as '/'-separated relative paths; links not followed."""
    files: Dict[str, int] = {}
    folders: List[str] = []
    links: List[str] = []
    for root, dirs, names in os.walk(folder):  # os.walk lists links to folders in `dirs` but does not enter them
        for name in dirs + names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if os.path.islink(path):
                links.append(relative)
            elif name in dirs:
                folders.append(relative)
            else:
                files[relative] = os.lstat(path).st_size
    return files, sorted(folders), sorted(links)


def _write_metadata(export_dir: str, model: MaskRNN, config: ExportConfig, version: int) -> None:
    """Writes assets.extra/maskrnn_export.json, listing every other file of `export_dir` (so it is written last)."""
    folder = os.path.join(export_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    files, folders, _ = _contents(export_dir)
    files.pop(f"assets.extra/{METADATA_FILENAME}", None)
    tables = dict(signature_tables(config.batching, bool(model.config.color_prior_input)))
    if STEP_SIGNATURE not in tables:
        # A batching export also serves step_batched as serving_default (see Servable).
        tables[STEP_SIGNATURE] = tables[BATCHED_STEP_SIGNATURE]
    metadata = {
        "format": "maskrnn_tf serving export 1",
        "version": version,
        "precision": config.precision,
        "model_config": model.config.to_dict(),
        "batching": config.batching,
        "signatures": {key: _signature_table(inputs, outputs) for key, (inputs, outputs) in tables.items()},
        # What --overwrite may replace later: these files at these sizes, these folders, nothing else.
        "files": files,
        "folders": folders,
    }
    with open(os.path.join(folder, METADATA_FILENAME), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)


def _write_saved_model(export_dir: str, model: MaskRNN, config: ExportConfig, version: int) -> None:
    """Everything that goes into one version folder (called on the temporary folder)."""
    import tensorflow as tf

    Servable(rebuild_with_precision(model, config.precision), config.batching).write_out(export_dir)
    if config.warmup is not None:
        write_warmup_file(export_dir, config.model_name, config.warmup, config.batching,
                          color_prior=bool(model.config.color_prior_input))
    # The model server loads the version, then replays the warmup file; a failing record makes it refuse the version.
    with _load_as_the_server_does(export_dir) as served:
        if config.warmup is not None:
            try:
                replay_warmup_file(served)
            except WarmupReplayError as e:
                raise ExportError(f"{e} Change --warmup_shapes.") from e
            except tf.errors.OpError as e:  # the records' own errors are WarmupReplayErrors: the file's reading
                raise ExportError(f"the warmup file just written does not read back ({first_line(e.message)}); "
                                  "check the disk of --export_base and export again.") from e
    if config.batching:
        problems = batching_problems(export_dir, config.max_batch_size)
        if problems:
            raise ExportError("a model server with --enable_batching would refuse this export: " + "; ".join(problems))
    if config.audit_ops:
        check_ops(audit_saved_model(export_dir), f"The export {export_dir}")
    _write_metadata(export_dir, model, config, version)  # last: it lists the files written


_LOAD_FAILED = ("the export does not load through the model server's loader (SavedModelBundle), so the server "
                "would refuse this version: ")


def _load_as_the_server_does(export_dir: str) -> SessionModel:
    """`export_dir` loaded through the model server's loader (the TF1 loader of SavedModelBundle, which runs the
    saver's restore op): an export whose restore misses a variable would otherwise first fail at the server.
    Raises ExportError; the caller closes the session."""
    import tensorflow as tf

    try:
        return SessionModel(export_dir)
    except tf.errors.ResourceExhaustedError as e:  # this machine's memory, not the server's
        raise ExportError(f"loading the version as the model server does ran out of memory on this machine "
                          f"({first_line(e.message)}); export on a machine with the memory to hold it.") from e
    except (tf.errors.OpError, OSError, RuntimeError, ValueError) as e:
        raise ExportError(f"{_LOAD_FAILED}{e}") from e


def _repair_base(export_base: str, log: logging.Logger) -> None:
    """Repairs what killed exports of any version left in `export_base`: a version an --overwrite export had moved
    away goes back (a server pinned to it would serve nothing), and temporary folders are removed."""
    try:
        names = os.listdir(export_base)
    except OSError:
        return
    for kind in ("old", "tmp"):
        versions = sorted({int(m.group(1)) for m in (re.match(rf"\.{kind}-([0-9]+)-", n) for n in names) if m})
        for number in (n for n in versions if 0 < n <= MAX_VERSION):  # what version_dir takes
            if kind == "old":
                notes = restore_interrupted_replace(export_base, f".old-{number}-", version_dir(export_base, number))
            else:
                notes = [f"removed {path}, the temporary folder of an interrupted export"
                         for path in clean_stale_tmp_dirs(export_base, f".tmp-{number}-")]
            for note in notes:
                log.warning("%s", note)


def export_saved_model(
    model: Union[MaskRNN, str], export_base: str, version: int, config: Optional[ExportConfig] = None
) -> str:
    """Exports `model` (a MaskRNN, or a path: .keras file or run folder) to `<export_base>/<version>`; returns that path.

    An existing version is refused (and left untouched) unless `config.overwrite`, and even then unless it is
    an export of this project (its metadata record) that does not hold `model` and holds only what that export
    wrote (`foreign_files`). The export base must not be a file (checked before `model` is loaded). The
    version appears only when complete: it is written to a temporary sibling folder and renamed; a version
    that an export killed while replacing it had moved away (any version) is put back first.
    """
    config = config or ExportConfig()
    if export_base.startswith("file://"):  # TensorFlow's spelling of a local path: the folder it names
        export_base = export_base[len("file://"):]
    _check_export_base(export_base)
    final = version_dir(export_base, version)
    log = logging.getLogger(__name__)
    _repair_base(export_base, log)
    _check_target(final, config.overwrite, model if isinstance(model, str) else None)
    if isinstance(model, str):
        model = load_model(model)
    if config.warmup is not None:  # the record count depends on the network (a colour prior's requests)
        try:
            color_prior = bool(getattr(getattr(model, "config", None), "color_prior_input", False))
            check_warmup_record_count(len(config.warmup.shapes), config.batching, color_prior)
        except ValueError as e:
            raise ExportUsageError(f"--warmup_shapes: {e}") from e
    try:
        os.makedirs(export_base, exist_ok=True)
        tmp = make_owned_tmp_dir(export_base, f".tmp-{version}-")
    except OSError as e:  # e.g. a read-only file system or no write permission
        raise ExportError(f"cannot create --export_base {export_base} or write in it: {e.strerror or e}. Choose a "
                          "folder you can write to.") from e
    try:
        _write_saved_model(tmp, model, config, version)
        sync_tree(tmp)  # on disk before the rename: after a power loss the version is whole or absent
        if os.path.lexists(final) and not config.overwrite:
            raise ExportError(f"{final} appeared while exporting; it was left as it is. Choose another version.")
        _check_target(final, config.overwrite, None)  # it may have appeared or changed meanwhile
        replaced = replace_dir(tmp, final, f".old-{version}-")
        sync_tree(export_base, files=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replaced:
        # A model server watches the base folder for version numbers, not for changed files.
        log.warning(
            "replaced version %d in place (%s): a model server that had already loaded version %d may keep "
            "serving the old model; to roll a new model out to a running server, export a new --version "
            "(it loads the highest) or restart the server.", version, final, version)
    return final


def sync_tree(folder: str, files: bool = True) -> None:
    """fsyncs `folder`'s entry list and, with `files`, every file and folder under it, so that what a rename
    then publishes is on disk (POSIX; folders that cannot be opened, as on Windows, are skipped)."""
    folders = [root for root, _, _ in os.walk(folder)] if files else [folder]
    for root in folders:
        if files:
            for name in os.listdir(root):
                path = os.path.join(root, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
        try:
            fd = os.open(root, os.O_RDONLY)
        except OSError:  # pragma: no cover - Windows cannot open folders
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_export_base(export_base: str) -> None:
    """Refuses, before the model is loaded, an export base that is (or lies under) a file: no folder can be made; a
    remote one (gs://, s3://): the atomic rename into place and the ops audit work on local folders only; and one
    that is or lies inside a SavedModel version folder (ExportUsageError)."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", export_base)  # two letters at least: not a drive, "C://"
    if scheme:
        raise ExportError(f"--export_base {export_base} is not a local folder ({scheme.group(1)}:// is not written "
                          "here: a version is made whole in a local folder, then renamed into place). Export to a "
                          "local folder, then copy the finished version folder to the bucket while the model server "
                          "does not poll that path (a bucket has no atomic folder rename: a copy appears object by "
                          "object).")
    existing = os.path.abspath(export_base)
    while not os.path.lexists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        kind = "a broken link" if os.path.islink(existing) else "a file"
        raise ExportError(f"--export_base {export_base}: {existing} is {kind}, not a folder, so the version folders "
                          "cannot be made there; it was left as it is. Choose a folder (it is created if missing), "
                          "e.g. exports/maskrnn.")
    _check_not_in_a_version(export_base, existing)


_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")  # what TF-Serving's SavedModel loader looks for


def _ancestors(path: str) -> List[str]:
    """`path` and every folder above it, up to the root."""
    found = [path]
    while os.path.dirname(found[-1]) != found[-1]:
        found.append(os.path.dirname(found[-1]))
    return found


def _check_not_in_a_version(export_base: str, existing: str) -> None:
    """Refuses an export base that holds a SavedModel or lies inside a version folder holding one (`existing`: the base or its
    nearest existing parent, absolute). `--export_base=exp/1 --version=2` wrote exp/1/2 inside the live version 1:
    the model server polling exp never sees it, and version 1 gets files its metadata record does not list."""
    # As spelled first (the folder the user knows), then resolved: a link into a version folder is inside it too.
    # Above the base only a version-named folder counts: a saved_model.pb in a home or project folder is no version.
    base = os.path.realpath(export_base)
    for folder in _ancestors(existing) + _ancestors(os.path.realpath(existing)):
        held = [name for name in _SAVED_MODEL_FILES if os.path.isfile(os.path.join(folder, name))]
        if held and (os.path.realpath(folder) == base or version_of(os.path.basename(folder)) is not None):
            break
    else:
        return
    where = "into" if os.path.realpath(export_base) == os.path.realpath(folder) else "under"
    instead = (f"give the model base path that holds it, --export_base={os.path.dirname(folder)}"
               if version_of(os.path.basename(folder)) is not None else "choose a folder outside it")
    raise ExportUsageError(f"--export_base {export_base}: {folder} is a SavedModel version folder (it holds "
                           f"{held[0]}), so a version exported {where} it would be written inside that version, "
                           f"where the model server does not look for versions; nothing was written. To export a new "
                           f"version, {instead}.")


def foreign_files(version: str) -> List[str]:
    """What `--overwrite` would delete in the version folder `version` that the export did not write: files its
    metadata record does not list (records of earlier exports list none: then those not in `_LEGACY_FILES`),
    files listed with another size (changed since), links, and empty folders it did not make."""
    try:
        with open(os.path.join(version, "assets.extra", METADATA_FILENAME), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        record = None
    listed = record.get("files") if isinstance(record, dict) else None
    listed = listed if isinstance(listed, dict) else None
    made = record.get("folders") if listed is not None else None
    made = set(made) if isinstance(made, list) else set(_LEGACY_FOLDERS)
    files, folders, links = _contents(version)
    foreign = list(links)
    for name, size in files.items():
        if name == f"assets.extra/{METADATA_FILENAME}":
            continue
        if listed is None:
            if not any(path_matches(name, pattern) for pattern in _LEGACY_FILES):
                foreign.append(name)
        elif name not in listed:
            foreign.append(name)
        elif listed[name] != size:
            foreign.append(f"{name} (changed since the export: {listed[name]} bytes then, {size} now)")
    # A folder with contents shows through them; an empty one the export did not make is the user's too.
    foreign += [name for name in folders if name not in made and not os.listdir(os.path.join(version, name))]
    return sorted(foreign)


def _check_target(final: str, overwrite: bool, model_path: Optional[str]) -> None:
    """Refuses a version folder that exists (without `overwrite`), or that `overwrite` may not replace: one
    this project did not export (no metadata record: a training run, a user's folder), one holding anything
    the export did not write (`foreign_files`), a symbolic link, or one holding the model being exported (an
    export base inside the run folder is fine)."""
    if model_path is not None:
        target, source = os.path.realpath(final), os.path.realpath(model_path)
        if target == source or source.startswith(target + os.sep):
            raise ExportError(f"the version folder {final} is or holds --model {model_path}: exporting there could "
                              "destroy the model. Choose another --version or --export_base.")
    if not os.path.lexists(final):
        return
    if not overwrite:
        raise ExportError(f"{final} already exists; choose another --version or pass --overwrite to replace it.")
    if os.path.islink(final) or not os.path.isdir(final):
        raise ExportError(f"{final} is a symbolic link or a file, not a version folder an export wrote; it was left "
                          "as it is. Choose another --version or --export_base.")
    if not os.path.isfile(os.path.join(final, "assets.extra", METADATA_FILENAME)):
        raise ExportError(f"{final} is not an export of maskrnn-tf (it has no assets.extra/{METADATA_FILENAME}), "
                          "so --overwrite will not replace it; it was left as it is. Choose another --version or "
                          "--export_base, or check its contents and delete it yourself.")
    foreign = foreign_files(final)
    if foreign:
        shown = ", ".join(foreign[:10]) + (f" and {len(foreign) - 10} more" if len(foreign) > 10 else "")
        raise ExportError(f"{final} holds files the export did not write (or that changed since): {shown}. "
                          "--overwrite would delete them, so the version was left as it is; move them out of it "
                          "(or choose another --version) and export again.")
