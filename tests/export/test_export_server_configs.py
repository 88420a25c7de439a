"""The model-server configuration files shipped in export/ parse with the model server's own protos."""
import os

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

import maskrnn_tf.export

EXPORT_DIR = os.path.dirname(maskrnn_tf.export.__file__)

# The fields of tensorflow.serving.BatchingParameters, from tensorflow/serving's
# tensorflow_serving/servables/tensorflow/session_bundle_config.proto (the message the model server parses
# --batching_parameters_file into): name -> (field number, type). tensorflow-serving-api does not ship that
# proto, so the message is rebuilt here from this list and the file is parsed with protobuf's text format.
BATCHING_PARAMETERS_FIELDS = {
    "max_batch_size": (1, ".google.protobuf.Int64Value"),
    "batch_timeout_micros": (2, ".google.protobuf.Int64Value"),
    "max_enqueued_batches": (3, ".google.protobuf.Int64Value"),
    "num_batch_threads": (4, ".google.protobuf.Int64Value"),
    "thread_pool_name": (5, ".google.protobuf.StringValue"),
    "allowed_batch_sizes": (6, "repeated int64"),
    "pad_variable_length_inputs": (7, "bool"),
}


def _batching_parameters_class():
    """A message class with exactly the fields above (package tensorflow.serving)."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="maskrnn_test_batching_parameters.proto", package="tensorflow.serving.maskrnn_test",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file_proto.message_type.add(name="BatchingParameters")
    types = {"repeated int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
             "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL}
    for name, (number, kind) in BATCHING_PARAMETERS_FIELDS.items():
        field = message.field.add(name=name, number=number)
        field.label = (descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if kind.startswith("repeated")
                       else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
        if kind in types:
            field.type = types[kind]
        else:
            field.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
            field.type_name = kind
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(file_proto.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.maskrnn_test.BatchingParameters"))


def test_models_config_is_a_model_server_config():
    with open(os.path.join(EXPORT_DIR, "models.config"), encoding="utf-8") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    models = config.model_config_list.config
    assert len(models) == 1
    model = models[0]
    assert (model.name, model.base_path, model.model_platform) == ("maskrnn", "/models/maskrnn", "tensorflow")
    assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model.model_version_policy.latest.num_versions == 1


def test_batching_parameters_hold_only_batching_parameters_fields():
    with open(os.path.join(EXPORT_DIR, "batching_parameters.txt"), encoding="utf-8") as f:
        params = text_format.Parse(f.read(), _batching_parameters_class()())  # ParseError on any other field
    assert params.max_batch_size.value == 8 and params.batch_timeout_micros.value == 2000
    assert params.num_batch_threads.value >= 1 and params.max_enqueued_batches.value >= 1


@pytest.mark.parametrize("text,bad", [("max_batch_size { value: 8 }\nbatch_size: 4\n", "batch_size"),
                                      ("enable_batching: true\n", "enable_batching"),
                                      ("max_batch_size: 8\n", "max_batch_size")])  # a wrapper needs { value: }
def test_the_batching_check_catches_unknown_fields(text, bad):
    with pytest.raises(text_format.ParseError, match=bad):
        text_format.Parse(text, _batching_parameters_class()())


def test_the_printed_model_server_commands_keep_paths_with_spaces_whole(tmp_path):
    """The printed commands are pasted into a shell: a path with a space must stay one argument."""
    import shlex

    from maskrnn_tf.export.serving_commands import batching_parameters_path, serving_commands

    base = str(tmp_path / "My Models" / "maskrnn")
    text = serving_commands(base, batching=True)
    docker, local = [" ".join(line.rstrip("\\") for line in block.splitlines() if not line.startswith("#"))
                     for block in text.split("# or with the apt package tensorflow-model-server:\n")]
    local_args = shlex.split(local)
    assert f"--model_base_path={base}" in local_args
    assert f"--batching_parameters_file={batching_parameters_path()}" in local_args
    assert f"{base}:/models/maskrnn:ro" in shlex.split(docker)


def test_versions_the_model_server_cannot_parse_are_refused(tmp_path):
    """TF-Serving reads version folder names as int64: a larger number would be exported and never served."""
    from maskrnn_tf.export.saved_model_export import ExportError, version_dir

    assert version_dir(str(tmp_path), 2**63 - 1) == os.path.join(str(tmp_path), str(2**63 - 1))
    with pytest.raises(ExportError, match="at most 9223372036854775807"):
        version_dir(str(tmp_path), 2**63)


def _written_parameters_file(text: str, cwd: str) -> str:
    """Runs the `cat > FILE <<'EOF' ... EOF` block of printed commands in bash; returns FILE (the path the printed
    local command gives --batching_parameters_file)."""
    import shlex
    import subprocess

    block = text[text.index("cat > "):text.index("\nEOF\n") + len("\nEOF\n")]
    subprocess.run(["bash", "-c", block], cwd=cwd, check=True, timeout=60)
    local = text.split("# or with the apt package tensorflow-model-server:\n")[1]
    (path,) = [arg.split("=", 1)[1] for arg in shlex.split(local) if arg.startswith("--batching_parameters_file=")]
    return path


def test_a_batching_export_for_another_max_batch_size_prints_parameters_with_it(tmp_path):
    """export_main --batching --max_batch_size=16: the printed commands must not name the shipped file (max_batch_size
    8: the server would refuse the version's 16-row warmup); they write the shipped parameters with 16 beside the
    model base path (not in it: the server polls it for versions) and serve with that file."""
    import shlex

    from maskrnn_tf.export.serving_commands import batching_parameters_path, read_max_batch_size, serving_commands

    base = str(tmp_path / "My Models" / "maskrnn")
    os.makedirs(base)
    assert serving_commands(base, batching=True, max_batch_size=8) == serving_commands(base, batching=True)
    text = serving_commands(base, batching=True, max_batch_size=16)
    assert batching_parameters_path() not in text
    path = _written_parameters_file(text, str(tmp_path))
    assert os.path.dirname(path) == os.path.dirname(base) and os.listdir(base) == []
    parameters_class = _batching_parameters_class()  # one class: messages of two built ones never compare equal
    with open(path, encoding="utf-8") as f:
        params = text_format.Parse(f.read(), parameters_class())
    with open(os.path.join(EXPORT_DIR, "batching_parameters.txt"), encoding="utf-8") as f:
        shipped = text_format.Parse(f.read(), parameters_class())
    assert read_max_batch_size(path) == params.max_batch_size.value == 16
    shipped.max_batch_size.value = 16
    assert params == shipped  # the rest as shipped
    docker_block = text.split("# Serve with Docker")[1].split("# or with the apt package")[0]
    docker = " ".join(line.rstrip("\\") for line in docker_block.splitlines()[1:])
    assert f"{path}:/config/batching_parameters.txt:ro" in shlex.split(docker)
    assert "--batching_parameters_file=/config/batching_parameters.txt" in shlex.split(docker)
    assert "--max_batch_size=16" in text  # the client's flag for that server
