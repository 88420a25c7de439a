"""Precision selection: 'auto' picks float16 on GPU, bfloat16 on a CPU with amx_bf16 or avx512_bf16, else float32.

The three CPU kinds are fake /proc/cpuinfo files shaped like the real ones (first processor's flags line).
"""
import pytest

from maskrnn_tf.training.precision import (
    cpu_bfloat16_flag,
    cpu_flags,
    describe_precision,
    resolve_precision,
)

_CPUINFO = (
    "processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 {extra}\n"
    "bugs\t\t: spectre_v1 spectre_v2\n\n"
    "processor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx2 {extra}\n\n"
)
KINDS = {
    # Intel Xeon (Sapphire Rapids): AMX tiles, AVX512_BF16 too.
    "xeon_amx": ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+",
                 "avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8", "amx_bf16", "bfloat16"),
    # AMD EPYC Zen 4: AVX512_BF16, no AMX.
    "epyc_avx512_bf16": ("AuthenticAMD", "AMD EPYC 9654 96-Core Processor",
                         "avx512f avx512bw avx512_bf16 avx512_vnni", "avx512_bf16", "bfloat16"),
    # AMD EPYC (Zen 2/3): AVX2 only.
    "epyc_avx2": ("AuthenticAMD", "AMD EPYC 7B12", "sha_ni clzero", None, "float32"),
}


def _fake_cpuinfo(tmp_path, kind):
    vendor, model, extra, _, _ = KINDS[kind]
    path = tmp_path / f"cpuinfo_{kind}"
    path.write_text(_CPUINFO.format(vendor=vendor, model=model, extra=extra))
    return str(path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_auto_on_each_cpu_kind(tmp_path, kind):
    path = _fake_cpuinfo(tmp_path, kind)
    _, _, _, flag, expected = KINDS[kind]
    assert cpu_bfloat16_flag(path) == flag
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=path) == expected
    # A GPU wins whatever the CPU has.
    assert resolve_precision("auto", has_gpu=True, cpuinfo_path=path) == "float16"
    # An explicit precision is never changed.
    for explicit in ("float32", "bfloat16", "float16"):
        assert resolve_precision(explicit, has_gpu=False, cpuinfo_path=path) == explicit
    line = describe_precision("auto", expected, has_gpu=False, cpuinfo_path=path)
    assert line.startswith(f"precision auto -> {expected} (")
    assert (f"a CPU with {flag}" if flag else "a CPU without amx_bf16/avx512_bf16") in line


def test_flags_are_whole_words_and_a_missing_file_means_none(tmp_path):
    near = tmp_path / "near"
    near.write_text("processor\t: 0\nflags\t\t: avx2 amx_bf16x avx512_bf16y xamx_bf16\n")
    assert cpu_bfloat16_flag(str(near)) is None
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=str(near)) == "float32"
    missing = str(tmp_path / "missing")
    assert cpu_flags(missing) == frozenset()
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=missing) == "float32"


def test_default_reads_the_module_cpuinfo_path(tmp_path, monkeypatch):
    import maskrnn_tf.training.precision as precision

    monkeypatch.setattr(precision, "CPUINFO", _fake_cpuinfo(tmp_path, "epyc_avx512_bf16"))
    assert resolve_precision("auto", has_gpu=False) == "bfloat16"
    monkeypatch.setattr(precision, "CPUINFO", _fake_cpuinfo(tmp_path, "epyc_avx2"))
    assert resolve_precision("auto", has_gpu=False) == "float32"
