"""--logical_cpus with --vgg_weights: the CPU is split before the VGG-16 check starts TensorFlow's runtime."""
import pytest
import tensorflow as tf

from maskrnn_tf import host_memory, train
from maskrnn_tf.model import vgg_trunk


@pytest.fixture
def parsed_flags():
    """Parses train's flags in this process, as its binary would. Other binaries' flags that the worker process
    holds (segment's and train's share names: --flow, --model_width, ...) are set aside for the test and put back
    after it, train's removed again if the test defined them."""
    values = train.FLAGS
    others = [(module, flag) for module, defined in values.flags_by_module_dict().items()
              if module.startswith("maskrnn_tf") and module != train.__name__ for flag in defined]
    for _, flag in others:
        if flag.name in values:
            delattr(values, flag.name)
    had_train = "run_dir" in values
    train.define_flags()

    def parse(*args: str) -> None:
        values(["train", *args])

    yield parse
    values.unparse_flags()
    if not had_train:
        # A copy: each removal shortens absl's own list of the module's flags, and iterating it skipped every other.
        for flag in list(values.flags_by_module_dict().get(train.__name__, [])):
            if flag.name in values:
                delattr(values, flag.name)
    for module, flag in others:
        if flag.name not in values:
            values[flag.name] = flag
        values.register_flag_by_module(module, flag)


def test_the_cpu_is_split_before_the_vgg_weights_are_checked(tmp_path, monkeypatch, parsed_flags):
    """The VGG-16 check of a new run builds keras.applications.VGG16, which starts TensorFlow's runtime; the CPU
    was split after it, so `--logical_cpus=2 --vgg_weights=x.h5` died in set_logical_device_configuration ("Virtual
    devices cannot be modified after being initialized"), exit 1, an empty run dir left. Both are stand-ins here
    (this process's runtime runs already): only their order is checked, and the run stops at the VGG check."""
    calls = []

    def split(device, configs):
        calls.append(f"split into {len(configs)}")

    def check(weights, width):
        calls.append(f"check {weights}")
        raise vgg_trunk.VGGWeightsError("stop here")

    monkeypatch.setattr(tf.config, "set_logical_device_configuration", split)
    monkeypatch.setattr(vgg_trunk, "check_vgg_weights", check)
    monkeypatch.setattr(host_memory, "pool_cpu_tensor_memory", lambda: True)  # keeps os.environ as it is
    weights = str(tmp_path / "vgg16.h5")
    parsed_flags(f"--run_dir={tmp_path / 'run'}", "--dataset=synthetic_vos", "--model_width=1.0",
                 f"--vgg_weights={weights}", "--strategy=mirrored", "--logical_cpus=2", "--precision=float32")
    assert train.main([]) == 2
    assert calls == ["split into 2", f"check {weights}"]
    assert not (tmp_path / "run").exists()
