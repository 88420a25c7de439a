"""Precision selection: 'auto' picks float16 on GPU; on a CPU with amx_bf16 or avx512_bf16, bfloat16 where it was
measured faster than float32; else float32.

The CPU kinds are fake /proc/cpuinfo files shaped like the real ones (first processor's flags line), each with the
bfloat16 speedup measured on such a machine (BUILD_NOTES.md, "Precision on each machine").
"""
import json
import os

import pytest

import maskrnn_tf.training.precision as precision_module
from maskrnn_tf.training.precision import (
    MIN_BFLOAT16_SPEEDUP,
    bfloat16_speedup,
    cpu_bfloat16_flag,
    cpu_flags,
    describe_precision,
    measure_bfloat16_speedup,
    resolve_precision,
)

_CPUINFO = (
    "processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: {model}\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 {extra}\n"
    "bugs\t\t: spectre_v1 spectre_v2\n\n"
    "processor\t: 1\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx2 {extra}\n\n"
)
KINDS = {
    # Intel Xeon (Sapphire Rapids): AMX tiles, AVX512_BF16 too; a VGG-16 forward ~7x faster in bfloat16.
    "xeon_amx": ("GenuineIntel", "Intel(R) Xeon(R) Platinum 8480+",
                 "avx512f avx512bw avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8", "amx_bf16", 7.0, "bfloat16"),
    # AMD EPYC Zen 4: AVX512_BF16, no AMX; a training step 1.76x faster.
    "epyc_avx512_bf16": ("AuthenticAMD", "AMD EPYC 9654 96-Core Processor",
                         "avx512f avx512bw avx512_bf16 avx512_vnni", "avx512_bf16", 1.76, "bfloat16"),
    # Intel Xeon with AVX512_BF16 and AVX512_FP16 but no AMX flags: a training step 1.6x slower in bfloat16.
    "xeon_avx512_bf16": ("GenuineIntel", "Intel(R) Xeon(R) Processor",
                         "avx512f avx512bw avx_vnni avx512_bf16 avx512_fp16", "avx512_bf16", 0.6, "float32"),
    # AMD EPYC (Zen 2/3): AVX2 only; never measured (emulated bfloat16 is several times slower).
    "epyc_avx2": ("AuthenticAMD", "AMD EPYC 7B12", "sha_ni clzero", None, None, "float32"),
}


def _fake_cpuinfo(tmp_path, kind):
    vendor, model, extra = KINDS[kind][:3]
    path = tmp_path / f"cpuinfo_{kind}"
    path.write_text(_CPUINFO.format(vendor=vendor, model=model, extra=extra))
    return str(path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_auto_on_each_cpu_kind(tmp_path, kind):
    path = _fake_cpuinfo(tmp_path, kind)
    _, _, _, flag, speedup, expected = KINDS[kind]
    assert cpu_bfloat16_flag(path) == flag
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=path, speedup=speedup) == expected
    # A GPU wins whatever the CPU has.
    assert resolve_precision("auto", has_gpu=True, cpuinfo_path=path) == "float16"
    # An explicit precision is never changed.
    for explicit in ("float32", "bfloat16", "float16"):
        assert resolve_precision(explicit, has_gpu=False, cpuinfo_path=path) == explicit
    line = describe_precision("auto", expected, has_gpu=False, cpuinfo_path=path, speedup=speedup)
    assert line.startswith(f"precision auto -> {expected} (")
    if flag:
        assert f"a CPU with {flag}, where bfloat16 measured {speedup:.2f}x float32's speed" in line
    else:
        assert "a CPU without amx_bf16/avx512_bf16" in line


def test_bfloat16_needs_a_clear_speedup(tmp_path):
    path = _fake_cpuinfo(tmp_path, "epyc_avx512_bf16")
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=path, speedup=MIN_BFLOAT16_SPEEDUP) == "bfloat16"
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=path, speedup=1.0) == "float32"
    assert resolve_precision("auto", has_gpu=False, cpuinfo_path=path, speedup=0.5) == "float32"


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
    assert resolve_precision("auto", has_gpu=False, speedup=2.0) == "bfloat16"
    monkeypatch.setattr(precision, "CPUINFO", _fake_cpuinfo(tmp_path, "epyc_avx2"))
    assert resolve_precision("auto", has_gpu=False) == "float32"


def test_speedup_is_measured_once_per_machine_and_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(precision_module, "_SPEEDUPS", {})
    amx, epyc = _fake_cpuinfo(tmp_path, "xeon_amx"), _fake_cpuinfo(tmp_path, "epyc_avx512_bf16")
    cache = str(tmp_path / "cache" / "precision.json")
    calls = []

    def measure(value):
        return lambda: calls.append(value) or value

    assert bfloat16_speedup(amx, cache, measure(6.5)) == 6.5
    assert bfloat16_speedup(amx, cache, measure(0.1)) == 6.5  # this process's
    with open(cache, encoding="utf-8") as f:
        stored = json.load(f)
    assert stored["bfloat16_speedup"] == 6.5 and "Intel(R) Xeon(R) Platinum 8480+" in stored["key"]
    assert os.listdir(tmp_path / "cache") == ["precision.json"]
    # Another process on the same machine reads the file instead of measuring.
    monkeypatch.setattr(precision_module, "_SPEEDUPS", {})
    assert bfloat16_speedup(amx, cache, measure(0.1)) == 6.5
    assert calls == [6.5]
    # Another CPU (a machine of another kind with the same home) measures again and takes the file over.
    assert bfloat16_speedup(epyc, cache, measure(1.7)) == 1.7
    assert calls == [6.5, 1.7]
    # A damaged file is measured over; an unwritable place still gives the measurement.
    monkeypatch.setattr(precision_module, "_SPEEDUPS", {})
    with open(cache, "w", encoding="utf-8") as f:
        f.write("{not json")
    assert bfloat16_speedup(epyc, cache, measure(1.8)) == 1.8
    monkeypatch.setattr(precision_module, "_SPEEDUPS", {})
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert bfloat16_speedup(epyc, str(blocker / "precision.json"), measure(1.9)) == 1.9
    assert calls == [6.5, 1.7, 1.8, 1.9]


def test_measured_speedup_decides_auto_on_this_machine(tmp_path, monkeypatch):
    """The real measurement on this CPU: a positive ratio, and `auto` follows it (float32 where bfloat16 is not
    clearly faster, whatever the flags say)."""
    speedup = measure_bfloat16_speedup(repeats=2)
    assert 0.01 < speedup < 100
    monkeypatch.setattr(precision_module, "_SPEEDUPS", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    resolved = resolve_precision("auto", has_gpu=False)
    if cpu_bfloat16_flag() is None:
        assert resolved == "float32"
    else:
        measured = bfloat16_speedup()  # the one resolve_precision took, now cached
        assert resolved == ("bfloat16" if measured >= MIN_BFLOAT16_SPEEDUP else "float32")
        assert os.path.exists(tmp_path / "maskrnn_tf" / "precision.json")
