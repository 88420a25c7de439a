"""The README's main job (`make demo`): train on synthetic videos, segment held-out ones, score, export.

Every stage runs the project's own CLI in a subprocess and prints the command first, so a newcomer can rerun
any stage by hand:
  1. `python -m maskrnn_tf.train --flagfile=synthetic.flags` (built-in synthetic_vos data, no download);
  2. held-out synthetic videos (seeds disjoint from training and validation) written in the DAVIS-2017 layout,
     with their exact optical flow as `.flo` files (`flow/<video>/<t>_<t-1>.flo` and `<t>_<t+1>.flo`);
  3. `python -m maskrnn_tf.segment --flow=flo` on them: held-out videos are segmented with their exact flow
     (easy data: held-out J of at least 0.8 shows that learning works end to end); real video uses
     `--flow=dis` (the default: DIS optical flow computed from the frames);
  4. `python -m maskrnn_tf.evaluate` (DAVIS J and F);
  5. `python -m maskrnn_tf.export.export_main` (a TF-Serving version) and the model-server command.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import List

from absl import app, flags

from maskrnn_tf import _console, host_memory
from maskrnn_tf.experiments.commands import on_sigterm, run_command
from maskrnn_tf.io.tmp_dirs import building_dir

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The demo's flags, defined when it runs as a binary (not on import: `write_heldout_davis` is imported
    next to the segment CLI, whose --finetune_steps would clash)."""
    flags.DEFINE_string("run_dir", "runs/demo", "Where the run, the held-out videos, results and export go.")
    flags.DEFINE_string("flagfile_path", None, "Training flag file (default: synthetic.flags beside the package, "
                        "or in the working directory).")
    flags.DEFINE_integer("heldout_videos", 4, "Held-out synthetic videos to segment and score.", lower_bound=1)
    flags.DEFINE_integer("finetune_steps", 0, "Online finetuning steps per held-out video (0 skips).", lower_bound=0)
HELDOUT_SEED_BASE = 2_000_000  # training uses 0.., validation 1_000_000..: these videos were never seen


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_flagfile() -> str:
    """The repository's synthetic.flags: beside the package (a clone, an editable install) or in the working
    directory. A `pip install .` copies the package alone; the error says what to pass then."""
    for folder in (_repo_root(), os.getcwd()):
        path = os.path.join(folder, "synthetic.flags")
        if os.path.isfile(path):
            return path
    raise app.UsageError(
        f"synthetic.flags is neither beside the package ({_repo_root()}) nor in the working directory ({os.getcwd()}), "
        "as after a `pip install .`, which installs the package alone: run the demo from the repository (make demo), "
        "or pass --flagfile_path=<the repository>/synthetic.flags.", exitcode=2)


def _run(args: List[str]) -> None:
    """Runs one project CLI, echoing the command; stops the demo with its exit code on failure. Stopped (Ctrl-C,
    SIGTERM), the demo sends the command SIGTERM and waits for it: the training saves its checkpoint first."""
    run_command(args, driver="demo")


# What a held-out tree was made with (`write_heldout_davis`), so a rerun asking for other videos is not given it.
HELDOUT_RECORD = "heldout.json"


def write_heldout_davis(root: str, num_videos: int, seed_base: int) -> List[str]:
    """Writes synthetic videos as a DAVIS-2017 tree (PNG frames, palette masks, ImageSets/2017/val.txt) plus
    their exact flows, `flow/<video>/<t>_<t-1>.flo` and `<t>_<t+1>.flo` (5-digit frame numbers), the layout
    `python -m maskrnn_tf.segment --flow=flo --flo_dir=<root>/flow` reads.

    Written into a hidden temporary folder beside `root` (removed on any error, Ctrl-C included, or by the next
    demo when the process was killed), then renamed, so an interrupted demo never leaves half a dataset; a
    finished tree of the same videos (`heldout.json`) is reused, one of other videos refused. Anything else at
    `root` (a user's folder, a tree of an old demo without flows) is never deleted: FileExistsError names it.
    """
    import numpy as np
    from PIL import Image

    from maskrnn_tf.data.synthetic import SyntheticConfig, generate_video
    from maskrnn_tf.io import write_palette_png
    from maskrnn_tf.ops import write_flo

    listing = os.path.join(root, "ImageSets", "2017", "val.txt")
    record_path = os.path.join(root, HELDOUT_RECORD)
    wanted = {"num_videos": num_videos, "seed_base": seed_base}
    if os.path.isfile(listing) and os.path.isdir(os.path.join(root, "flow")):
        with open(listing, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        stored = None
        if os.path.isfile(record_path):
            with open(record_path, encoding="utf-8") as f:
                stored = json.load(f)
        if stored == wanted or (stored is None and len(names) == num_videos):  # (older trees have no record)
            return names
        seed = f", seed {stored['seed_base']}" if stored else ""
        raise FileExistsError(
            f"{root} holds {len(names)} held-out video(s){seed} made by an earlier demo; this run asks for "
            f"{num_videos} (seed {seed_base}). Remove {root} to make them, or pass another --run_dir.")
    if os.path.lexists(root):
        raise FileExistsError(f"{root} exists but is not a finished held-out tree (ImageSets/2017/val.txt and "
                              "flow/); the demo does not delete it: move it or remove it, or pass another --run_dir.")
    with building_dir(root) as tmp:  # never half a dataset at root; a killed demo's leftovers removed
        names = []
        for i in range(num_videos):
            video = generate_video(seed_base + i, SyntheticConfig())
            name = f"heldout{i:02d}"
            names.append(name)
            frames_dir = os.path.join(tmp, "JPEGImages", "480p", name)
            masks_dir = os.path.join(tmp, "Annotations", "480p", name)
            flow_dir = os.path.join(tmp, "flow", name)
            for folder in (frames_dir, masks_dir, flow_dir):
                os.makedirs(folder)
            count = len(video["frames"])
            for t, (frame, mask) in enumerate(zip(video["frames"], video["masks"])):
                Image.fromarray(np.asarray(frame)).save(os.path.join(frames_dir, f"{t:05d}.png"))
                write_palette_png(os.path.join(masks_dir, f"{t:05d}.png"), mask)
                if t > 0:
                    write_flo(os.path.join(flow_dir, f"{t:05d}_{t - 1:05d}.flo"), video["flows_to_prev"][t])
                if t < count - 1:
                    write_flo(os.path.join(flow_dir, f"{t:05d}_{t + 1:05d}.flo"), video["flows_to_next"][t])
        os.makedirs(os.path.join(tmp, "ImageSets", "2017"))
        with open(os.path.join(tmp, "ImageSets", "2017", "val.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(names) + "\n")
        with open(os.path.join(tmp, HELDOUT_RECORD), "w", encoding="utf-8") as f:
            json.dump(wanted, f)
    return names


def main(argv: List[str]) -> None:
    del argv
    signal.signal(signal.SIGTERM, on_sigterm)  # stop the running command too, through _run
    host_memory.pool_cpu_tensor_memory()  # before TensorFlow starts: CPU tensors from one reused pool
    _console.import_tensorflow_quietly()  # the held-out videos (step 2) need TensorFlow in this process
    started = time.time()
    py = sys.executable
    run_dir = os.path.abspath(os.path.expanduser(FLAGS.run_dir))
    flagfile = FLAGS.flagfile_path or default_flagfile()

    # -- 1. Train ------------------------------------------------------------------------------------------
    model_path = os.path.join(run_dir, "model.keras")
    _run([py, "-m", "maskrnn_tf.train", f"--flagfile={flagfile}", f"--run_dir={run_dir}"])

    # -- 2. Held-out videos ----------------------------------------------------------------------------------
    heldout = os.path.join(run_dir, "heldout_davis")
    try:
        names = write_heldout_davis(heldout, FLAGS.heldout_videos, HELDOUT_SEED_BASE)
    except FileExistsError as err:
        raise SystemExit(f"demo: {err}") from None
    print(f"\nheld-out synthetic videos (DAVIS-2017 layout): {heldout} ({', '.join(names)})", flush=True)

    # -- 3. Segment, 4. score -----------------------------------------------------------------------------
    results = os.path.join(run_dir, "heldout_results")
    _run([py, "-m", "maskrnn_tf.segment", f"--davis_root={heldout}", "--split=val", f"--model={model_path}",
          f"--output={results}", f"--finetune_steps={FLAGS.finetune_steps}", "--flow=flo",
          f"--flo_dir={os.path.join(heldout, 'flow')}", "--overwrite", "--noprogress"])
    _run([py, "-m", "maskrnn_tf.evaluate", f"--davis_root={heldout}", f"--results={results}", "--split=val",
          "--processes=1"])

    # -- 5. Export for TF-Serving -------------------------------------------------------------------------
    export_base = os.path.join(run_dir, "export")
    _run([py, "-m", "maskrnn_tf.export.export_main", f"--model={model_path}", f"--export_base={export_base}",
          "--version=1", "--overwrite"])

    print(
        f"\ndemo done in {time.time() - started:.0f} s\n"
        f"  run dir      {run_dir}\n"
        f"  TensorBoard  {_console.tensorboard_command(os.path.join(run_dir, 'logs'))}\n"
        f"  masks        {results}/<video>/<frame>.png (scores: global_results-val.csv there)\n"
        f"  SavedModel   {export_base}/1",
        flush=True,
    )


if __name__ == "__main__":
    _console.quiet_startup()
    define_flags()
    from maskrnn_tf.experiments.commands import exit_quietly_when_interrupted
    from maskrnn_tf.flag_validation import one_line_usage_errors, parse_flags_or_exit

    app.run(one_line_usage_errors(exit_quietly_when_interrupted(main, "demo")), flags_parser=parse_flags_or_exit)
