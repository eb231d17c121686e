"""The pure-Python fatbinary reader, checked against cuobjdump's listing of real nvcc output."""
import re
from collections import Counter

import pytest
from doctor_helpers import DATA

from detectron2.utils._fatbin import (
    FatbinError,
    format_arch_flags,
    kernel_image_for,
    parse_arch_flags,
    parse_arch_list,
    read_fatbin_entries,
)


def _cuobjdump_listing(path):
    """(kind, sm name) pairs from `cuobjdump --list-elf --list-ptx` output."""
    pairs = []
    for line in path.read_text().splitlines():
        m = re.match(r"^(ELF|PTX) file\s+\d+: .*\.(sm_\d+a?)\.(cubin|ptx)$", line.strip())
        if m:
            pairs.append((m.group(1), m.group(2)))
    return Counter(pairs)


def _ours(entries):
    # cuobjdump names every entry sm_XY and drops the family suffix 'f'.
    return Counter((e.kind, f"sm_{e.arch}{'a' if e.variant == 'a' else ''}") for e in entries)


@pytest.mark.parametrize("name", ["fatbin_a", "fatbin_b"])
def test_entries_match_cuobjdump(name):
    entries = read_fatbin_entries(str(DATA / f"{name}.so.bin"))
    expected = _cuobjdump_listing(DATA / f"{name}.cuobjdump.txt")
    assert expected, "fixture listing is empty"
    assert _ours(entries) == expected


def test_variants_and_flags_of_fixtures():
    a = read_fatbin_entries(str(DATA / "fatbin_a.so.bin"))
    assert format_arch_flags(a) == "sm_80 sm_90 compute_90"
    b = read_fatbin_entries(str(DATA / "fatbin_b.so.bin"))
    assert format_arch_flags(b) == "sm_90a sm_100f compute_120"


def test_plain_shared_object_has_no_entries(compile_so):
    so = compile_so("libplain.so", "int plain(void) { return 1; }\n")
    assert read_fatbin_entries(str(so)) == []


def test_not_elf_and_truncated_files_raise(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a binary")
    with pytest.raises(FatbinError, match="not an ELF"):
        read_fatbin_entries(str(text))
    data = (DATA / "fatbin_a.so.bin").read_bytes()
    cut = tmp_path / "cut.so"
    cut.write_bytes(data[:100])
    with pytest.raises(FatbinError):
        read_fatbin_entries(str(cut))
    with pytest.raises(FatbinError):
        read_fatbin_entries(str(tmp_path / "missing.so"))


def test_corrupt_container_magic_raises(tmp_path):
    data = bytearray((DATA / "fatbin_a.so.bin").read_bytes())
    at = bytes(data).find((0xBA55ED50).to_bytes(4, "little"))
    assert at > 0
    data[at:at + 4] = b"\x01\x02\x03\x04"
    bad = tmp_path / "bad.so"
    bad.write_bytes(bytes(data))
    with pytest.raises(FatbinError, match="magic"):
        read_fatbin_entries(str(bad))


@pytest.mark.parametrize(
    "entries, capability, expected",
    [
        ("sm_80", (8, 6), "sm_80"),  # SASS runs on a newer minor of the same major
        ("sm_86", (8, 0), None),  # ... never on an older one
        ("sm_80", (9, 0), None),  # ... never across majors
        ("sm_80 compute_80", (9, 0), "compute_80"),  # PTX JITs forward
        ("sm_80 sm_86 compute_86", (8, 9), "sm_86"),  # best SASS preferred over PTX
        ("compute_90", (8, 6), None),  # PTX never runs backwards
        ("sm_90a", (9, 0), "sm_90a"),
        ("sm_90a compute_90a", (10, 0), None),  # arch-specific code is for exactly sm_90
        ("sm_100f", (10, 3), "sm_100f"),  # family-specific SASS covers the family
        ("compute_100f", (12, 0), None),  # ... but not the next major
        ("sm_75 sm_80 sm_86 sm_90 sm_100 sm_120", (12, 1), "sm_120"),
    ],
)
def test_kernel_image_rules(entries, capability, expected):
    image = kernel_image_for(capability, parse_arch_flags(entries))
    assert (image.name if image else None) == expected


def test_parse_arch_list():
    assert format_arch_flags(parse_arch_list("8.0;8.6+PTX")) == "sm_80 sm_86 compute_86"
    assert format_arch_flags(parse_arch_list("7.5 9.0a")) == "sm_75 sm_90a"
    with pytest.raises(ValueError, match="arch_list"):
        parse_arch_list("eight")


def test_parse_arch_flags_ignores_other_words():
    assert [e.name for e in parse_arch_flags("sm_75, sm_80 compute_90 -O3")] == ["sm_75", "sm_80", "compute_90"]
