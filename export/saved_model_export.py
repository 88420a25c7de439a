"""Export a trained MaskRNN as a TF-Serving version: `<export_base>/<version>/` written atomically.

Layout (what `tensorflow_model_server --model_base_path=<export_base>` polls):
  <export_base>/<version>/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests,
  assets.extra/maskrnn_export.json (config, precision, signatures; for people and clients).
Everything is written into `<export_base>/.tmp-<version>-<pid>@<host>-XXXX` (the server ignores non-numeric
folders) and renamed into place at the end, so the server never sees a half-written version; any failure removes
it, and the temporaries of killed exports (their process gone) are removed by the next export of that version.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import zipfile
from typing import Optional, Union


from maskrnn_tf.export.ops_audit import audit_saved_model, check_ops
from maskrnn_tf.export.batching_check import batching_problems
from maskrnn_tf.export.serving_module import PRECISIONS, build_export_archive, rebuild_with_precision, signature_tables
from maskrnn_tf.export.warmup import WarmupConfig, WarmupReplayError, replay_warmup_file, write_warmup_file
from maskrnn_tf.inference.model_loading import MODEL_FILE, ModelLoadError
from maskrnn_tf.inference.model_loading import load_model as load_trained_model
from maskrnn_tf.io.tmp_dirs import (clean_stale_tmp_dirs, make_owned_tmp_dir, replace_dir,
                                   restore_interrupted_replace)
from maskrnn_tf.model import MaskRNN

METADATA_FILENAME = "maskrnn_export.json"


class ExportError(RuntimeError):
    """The export cannot be written (bad version, existing version, unreadable model)."""


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

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"ExportConfig.precision {self.precision!r}: choose one of {PRECISIONS}.")


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
    return os.path.join(export_base, str(version))


def _signature_table(inputs, outputs) -> dict:
    def describe(table):
        return {k: {"dtype": d.name, "shape": [-1 if s is None else s for s in shape]} for k, (d, shape) in table.items()}

    return {"inputs": describe(inputs), "outputs": describe(outputs), "method_name": "tensorflow/serving/predict"}


def _write_metadata(export_dir: str, model: MaskRNN, config: ExportConfig, version: int) -> None:
    folder = os.path.join(export_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    metadata = {
        "format": "maskrnn_tf serving export 1",
        "version": version,
        "precision": config.precision,
        "model_config": model.config.to_dict(),
        "batching": config.batching,
        "signatures": {key: _signature_table(inputs, outputs)
                       for key, (inputs, outputs) in signature_tables(config.batching).items()},
    }
    with open(os.path.join(folder, METADATA_FILENAME), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2)


def _write_saved_model(export_dir: str, model: MaskRNN, config: ExportConfig, version: int) -> None:
    """Everything that goes into one version folder (called on the temporary folder)."""
    # Keras' ExportArchive, not tf.saved_model.save of a tf.Module: see build_export_archive.
    build_export_archive(rebuild_with_precision(model, config.precision), config.batching).write_out(
        export_dir, verbose=False)
    if config.warmup is not None:
        write_warmup_file(export_dir, config.model_name, config.warmup, config.batching)
        try:
            replay_warmup_file(export_dir)  # the model server replays it at load and refuses the version on failure
        except WarmupReplayError as e:
            raise ExportError(f"{e} Change --warmup_shapes.") from e
    if config.batching:
        problems = batching_problems(export_dir)
        if problems:
            raise ExportError("a model server with --enable_batching would refuse this export: " + "; ".join(problems))
    _write_metadata(export_dir, model, config, version)
    if config.audit_ops:
        check_ops(audit_saved_model(export_dir), f"The export {export_dir}")


def export_saved_model(
    model: Union[MaskRNN, str], export_base: str, version: int, config: Optional[ExportConfig] = None
) -> str:
    """Exports `model` (a MaskRNN, or a path: .keras file or run folder) to `<export_base>/<version>`; returns that path.

    An existing version is refused (and left untouched) unless `config.overwrite`, and even then unless it is
    an export of this project (its metadata record) that does not hold `model`. The version appears only
    when complete: it is written to a temporary sibling folder and renamed; a version that an export killed
    while replacing it had moved away is put back first.
    """
    config = config or ExportConfig()
    final = version_dir(export_base, version)
    log = logging.getLogger(__name__)
    for note in restore_interrupted_replace(export_base, f".old-{version}-", final):
        log.warning("%s", note)
    _check_target(final, config.overwrite, model if isinstance(model, str) else None)
    if isinstance(model, str):
        model = load_model(model)
    os.makedirs(export_base, exist_ok=True)
    for removed in clean_stale_tmp_dirs(export_base, f".tmp-{version}-"):
        log.warning("removed %s, the temporary folder of an interrupted export", removed)
    tmp = make_owned_tmp_dir(export_base, f".tmp-{version}-")
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


def _check_target(final: str, overwrite: bool, model_path: Optional[str]) -> None:
    """Refuses a version folder that exists (without `overwrite`), or that `overwrite` may not replace: one
    this project did not export (no metadata record: a training run, a user's folder), a symbolic link, or
    one holding the model being exported (an export base inside the run folder is fine)."""
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
