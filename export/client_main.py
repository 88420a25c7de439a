r"""Segment a video through a TF-Serving model server (gRPC); with a float32 export (export_main's default), writes
what `python -m maskrnn_tf.segment --finetune=none --precision=float32` writes (segment's default --precision=auto
may compute in bfloat16 or float16; export/client.py's docstring).

  python -m maskrnn_tf.export.client_main --server=localhost:8500 --model_name=maskrnn \
      --video=path/to/frames_or.mp4 --first_mask=path/to/00000.png --output_dir=results/video \
      [--max_size=854] [--carry=probs|labels] [--overlay=video.mp4] [--save_probs=npy|png] [--overwrite] \
      [--timeout=60] [--retries=6] [--max_message_mb=256] [--root_cert=ca.pem] [--batched [--max_batch_size=8]]
"""
from __future__ import annotations

import sys

from absl import app, flags

from maskrnn_tf import _console
from maskrnn_tf.flag_validation import defined_once

FLAGS = flags.FLAGS


@defined_once
def define_flags() -> None:
    """client_main's flags and their checks (see defined_once)."""
    flags.DEFINE_string("server", "localhost:8500", "host:port of tensorflow_model_server's gRPC port.")
    flags.DEFINE_string("model_name", "maskrnn", "Model name on the server (--model_name of the server).")
    flags.DEFINE_integer("model_version", None, "Version to use (default: the server's latest).")
    flags.DEFINE_string("video", None, "A folder of frames (jpg/png) or a video file (mp4).")
    flags.DEFINE_string("first_mask", None, "First-frame mask: palette PNG of object ids, or a binary mask.")
    flags.DEFINE_string("output_dir", None, "Results folder (<frame>.png palette masks); must not exist unless "
                        "--overwrite.")
    flags.DEFINE_bool("overwrite", False, "Replace an existing output folder.")
    flags.DEFINE_integer("max_size", None, "Process frames with the long side capped at this many pixels (0 or "
                         "unset: the full size; else at least 32, the network's smallest side).")
    flags.DEFINE_enum("carry", "probs", ["probs", "labels"], "What each step is given of the previous frame: the "
                      "served probabilities, or one 0/1 mask per object of the fused result (as segment's --carry).")
    flags.DEFINE_string("overlay", None, "Also write an mp4 with the masks blended into the frames.")
    flags.DEFINE_enum("save_probs", None, ["npy", "png"], "Also write probability maps under <output_dir>/probs.")
    flags.DEFINE_string("flow", "dis", "Optical flow backend (the segment CLI's: dis, dis-fast, farneback, flo).")
    flags.DEFINE_string("flo_dir", None, "With --flow=flo: folder of <video name>/<stem_a>_<stem_b>.flo files.")
    flags.DEFINE_float("timeout", 60.0, "Deadline of each gRPC call, seconds.")
    flags.DEFINE_integer("retries", 6, "Attempts per call when the server is UNAVAILABLE or fails a batch of mixed "
                         "frame sizes (exponential backoff).")
    # 256 MB: export.client.DEFAULT_MAX_MESSAGE_BYTES (not imported here: it loads TensorFlow before the console is
    # quiet).
    flags.DEFINE_integer("max_message_mb", 256, "gRPC send/receive message limit, MB.")
    flags.DEFINE_string("root_cert", None, "PEM root certificate: connect with TLS.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")
    flags.DEFINE_bool("batched", False, "Step through step_batched (for a server with --enable_batching serving an "
                      "export made with export_main --batching).")
    flags.DEFINE_integer("max_batch_size", None, "With --batched: object rows per request at most (a frame with "
                         "more objects goes in several requests); the max_batch_size of the server's "
                         "--batching_parameters_file, which refuses larger requests. Default: the shipped "
                         "export/batching_parameters.txt's.", lower_bound=1)
    flags.DEFINE_float("ready_timeout", 60.0, "Seconds to wait for the server to answer and the model to be "
                       "AVAILABLE.")
    _register_validators()


def _register_validators() -> None:
    from maskrnn_tf.flag_validation import MIN_FRAME_SIDE, register_model_name_validator, register_numeric_validator

    register_model_name_validator()
    # As segment's --max_size: a smaller side fails in the flow (OpenCV) or in the graph's checks, frames later.
    register_numeric_validator(
        "max_size", zero_or_at_least=MIN_FRAME_SIDE,
        hint=f"0 keeps the full size; the network needs frames of at least {MIN_FRAME_SIDE} pixels")
    # ClientConfig's bounds, checked here so that a bad value is a usage error naming the flag, not its traceback.
    register_numeric_validator("retries", minimum=1, hint="attempts per call in all: 1 tries once, without retries")
    register_numeric_validator("timeout", above=0, hint="the deadline of each gRPC call, in seconds")
    # gRPC takes the limits as C ints: 2048 MB (2**31 bytes) and more overflow when the channel is made.
    register_numeric_validator("max_message_mb", minimum=1, maximum=2047,
                               hint="gRPC's message limits are int32 bytes, under 2048 MB")
    register_numeric_validator("ready_timeout", minimum=0, hint="0 asks the server once without waiting")


def main(argv) -> int:
    del argv
    from maskrnn_tf.flag_validation import expand_user_paths

    # The shell leaves ~ after '=' alone.
    expand_user_paths(("video", "first_mask", "output_dir", "overlay", "flo_dir", "root_cert"))
    for name in ("video", "first_mask", "output_dir"):
        if not getattr(FLAGS, name):
            print(f"--{name} is required (see --helpfull).", file=sys.stderr)
            return 2
    if FLAGS.flo_dir and FLAGS.flow != "flo":  # else the steps get flows the user did not ask for
        print(f"--flo_dir is read only with --flow=flo (this run would compute --flow={FLAGS.flow} flows from the "
              "frames): add --flow=flo or drop --flo_dir.", file=sys.stderr)
        return 2
    _console.import_tensorflow_quietly()
    from maskrnn_tf.export.client import ClientConfig, ServingError, segment_video_via_serving
    from maskrnn_tf.inference.segmenter import SegmentOptions  # heavy imports after flag checks

    try:
        # The flags' bounds are checked at parse time; what is left to fail is --batched reading the shipped
        # batching parameters file for its default --max_batch_size.
        config = ClientConfig(
            address=FLAGS.server, model_name=FLAGS.model_name, model_version=FLAGS.model_version,
            timeout_s=FLAGS.timeout, max_attempts=FLAGS.retries, max_message_bytes=FLAGS.max_message_mb * 2**20,
            root_cert_path=FLAGS.root_cert, batched=FLAGS.batched, ready_timeout_s=FLAGS.ready_timeout,
            max_batch_size=FLAGS.max_batch_size,
        )
    except ValueError as e:
        print(f"--batched without --max_batch_size: {e} Give --max_batch_size=N, the max_batch_size of your model "
              "server's --batching_parameters_file.", file=sys.stderr)
        return 2
    options = SegmentOptions(max_size=FLAGS.max_size or None, save_probs=FLAGS.save_probs, progress=FLAGS.progress,
                             carry=FLAGS.carry)
    try:
        count = segment_video_via_serving(config, FLAGS.video, FLAGS.first_mask, FLAGS.output_dir, options,
                                          flow_backend=FLAGS.flow, overlay_path=FLAGS.overlay, overwrite=FLAGS.overwrite,
                                          flo_dir=FLAGS.flo_dir)
    except (ServingError, ValueError, FileExistsError, FileNotFoundError) as e:
        print(f"segmentation through {FLAGS.server} failed: {e}", file=sys.stderr)
        return 1
    print(f"Wrote {count} masks to {FLAGS.output_dir}")
    return 0


if __name__ == "__main__":
    from maskrnn_tf.flag_validation import parse_flags_or_exit

    _console.quiet_startup()
    define_flags()
    app.run(main, flags_parser=parse_flags_or_exit)  # a bad flag: absl's message naming it, exit 2
