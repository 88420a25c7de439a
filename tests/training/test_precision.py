"""Precision selection: 'auto' picks float16 on GPU, bfloat16 on an AMX CPU, float32 otherwise."""
from maskrnn_tf.training.precision import cpu_has_amx_bf16, resolve_precision

_FLAGS = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse2 avx2 {extra}\n\nprocessor\t: 1\n"


def test_amx_detection_reads_the_flags_line(tmp_path):
    amx = tmp_path / "amx"
    amx.write_text(_FLAGS.format(extra="avx512f amx_bf16 amx_tile"))
    plain = tmp_path / "plain"
    plain.write_text(_FLAGS.format(extra="avx512f avx512_bf16 amx_bf16x"))  # near-misses are not AMX
    assert cpu_has_amx_bf16(str(amx)) is True
    assert cpu_has_amx_bf16(str(plain)) is False
    assert cpu_has_amx_bf16(str(tmp_path / "missing")) is False


def test_auto_resolution():
    assert resolve_precision("auto", has_gpu=True, has_amx=True) == "float16"
    assert resolve_precision("auto", has_gpu=False, has_amx=True) == "bfloat16"
    assert resolve_precision("auto", has_gpu=False, has_amx=False) == "float32"
    assert resolve_precision("float32", has_gpu=True, has_amx=True) == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
