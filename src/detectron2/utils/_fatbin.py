"""Which GPU architectures a shared object carries code for, read from its fatbinary.

nvcc embeds device code in an ELF section named ``.nv_fatbin``: a run of fatbin
containers (header magic 0xBA55ED50), each holding entries of kind ELF (SASS, a cubin
for one ``sm_XY``) or PTX (``compute_XY``, JIT-compiled by the driver). This module reads
only the entry headers, seeking over the payloads, so even a 500 MB libtorch_cuda.so is
listed quickly, and needs neither cuobjdump nor a GPU.

The compatibility rules are CUDA's: SASS for ``sm_XY`` runs on devices of the same major
version X with minor >= Y (arch-specific ``sm_XYa`` only on exactly X.Y); PTX for
``compute_XY`` can be JIT-compiled for any device of capability >= X.Y (``a`` variants
only for exactly X.Y, ``f`` variants only within major X).
"""
import re
import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "FatbinEntry",
    "FatbinError",
    "read_fatbin_entries",
    "kernel_image_for",
    "format_arch_flags",
    "parse_arch_flags",
    "parse_arch_list",
]

FATBIN_MAGIC = 0xBA55ED50
_KIND_PTX = 1
_KIND_ELF = 2
# Entry flag bits (observed in nvcc 12/13 output, cross-checked with cuobjdump).
_FLAG_ARCH_SPECIFIC = 1 << 20  # sm_90a / compute_90a
_FLAG_FAMILY_SPECIFIC = 1 << 21  # sm_100f / compute_100f

_CONTAINER_HEADER = struct.Struct("<IHHQ")  # magic, version, header size, payload size
# kind, version, header size, payload size, 3 x u32, arch (sm number), 2 x u32, flags
_ENTRY_HEADER = struct.Struct("<HHIQIIIIIIQ")


class FatbinError(ValueError):
    """The file is not an ELF shared object we can read, or its fatbinary is corrupt."""


@dataclass(frozen=True)
class FatbinEntry:
    kind: str  # "ELF" (SASS) or "PTX"
    arch: int  # the sm number: 86 for sm_86 / compute_86, 100 for sm_100
    variant: str = ""  # "", "a" (arch-specific) or "f" (family-specific)

    @property
    def major(self) -> int:
        return self.arch // 10

    @property
    def minor(self) -> int:
        return self.arch % 10

    @property
    def name(self) -> str:
        prefix = "sm" if self.kind == "ELF" else "compute"
        return f"{prefix}_{self.arch}{self.variant}"

    def runs_on(self, capability: Tuple[int, int]) -> bool:
        """Whether a device of this compute capability can execute this entry."""
        major, minor = capability
        device = major * 10 + minor
        if self.variant == "a":
            return self.arch == device
        if self.kind == "ELF" or self.variant == "f":
            return self.major == major and self.minor <= minor
        return self.arch <= device


# --- ELF ---------------------------------------------------------------------------


def _find_section(f: BinaryIO, wanted: bytes) -> Optional[Tuple[int, int]]:
    """(file offset, size) of the named section of a 64-bit little-endian ELF file."""
    ident = f.read(64)
    if len(ident) < 64 or ident[:4] != b"\x7fELF":
        raise FatbinError("not an ELF file")
    if ident[4] != 2 or ident[5] != 1:
        raise FatbinError("only 64-bit little-endian ELF files are supported")
    shoff = struct.unpack_from("<Q", ident, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ident, 0x3A)
    if shoff == 0:
        return None
    f.seek(shoff)
    first = f.read(shentsize)
    if shnum == 0:  # extended numbering: the count lives in section 0's sh_size
        shnum = struct.unpack_from("<Q", first, 0x20)[0]
    if shstrndx == 0xFFFF:
        shstrndx = struct.unpack_from("<I", first, 0x28)[0]
    if not 0 < shnum < 1 << 20 or shentsize < 64:
        raise FatbinError("corrupt ELF section header table")
    f.seek(shoff)
    table = f.read(shnum * shentsize)
    if len(table) < shnum * shentsize:
        raise FatbinError("truncated ELF section header table")

    def section(i: int) -> Tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", table, i * shentsize)
        return name, offset, size

    _, str_offset, str_size = section(shstrndx)
    f.seek(str_offset)
    names = f.read(str_size)
    for i in range(shnum):
        name_offset, offset, size = section(i)
        end = names.find(b"\0", name_offset)
        if names[name_offset:end] == wanted:
            return offset, size
    return None


def _entry_variant(flags: int) -> str:
    if flags & _FLAG_ARCH_SPECIFIC:
        return "a"
    if flags & _FLAG_FAMILY_SPECIFIC:
        return "f"
    return ""


def _read_entries(f: BinaryIO, start: int, size: int) -> List[FatbinEntry]:
    entries = []
    pos, end = start, start + size
    while pos + _CONTAINER_HEADER.size <= end:
        f.seek(pos)
        magic, _version, header_size, payload = _CONTAINER_HEADER.unpack(f.read(_CONTAINER_HEADER.size))
        if magic != FATBIN_MAGIC:
            # Containers are 8-byte aligned; trailing zero padding ends the section.
            if magic == 0:
                pos += 8
                continue
            raise FatbinError(f"bad fatbin container magic {magic:#x} at offset {pos:#x}")
        entry, stop = pos + header_size, min(pos + header_size + payload, end)
        while entry + _ENTRY_HEADER.size <= stop:
            f.seek(entry)
            fields = _ENTRY_HEADER.unpack(f.read(_ENTRY_HEADER.size))
            kind, entry_header, entry_payload, arch, flags = fields[0], fields[2], fields[3], fields[7], fields[10]
            if entry_header < _ENTRY_HEADER.size:
                raise FatbinError(f"bad fatbin entry header size {entry_header} at offset {entry:#x}")
            if kind in (_KIND_PTX, _KIND_ELF):
                entries.append(FatbinEntry("PTX" if kind == _KIND_PTX else "ELF", arch, _entry_variant(flags)))
            entry += entry_header + entry_payload
        pos += header_size + payload
    return entries


def read_fatbin_entries(path: str) -> List[FatbinEntry]:
    """Every fatbin entry of a shared object, in file order (duplicates kept).

    Returns [] for an ELF file without device code; raises FatbinError for a file that
    is not a readable 64-bit ELF or whose fatbinary is corrupt.
    """
    try:
        with open(path, "rb") as f:
            found = _find_section(f, b".nv_fatbin")
            if found is None:
                return []
            return _read_entries(f, *found)
    except struct.error as e:
        raise FatbinError(f"{path}: truncated file ({e})") from e
    except OSError as e:
        raise FatbinError(f"{path}: {e.strerror or e}") from e


# --- coverage and flags ------------------------------------------------------------


def kernel_image_for(capability: Tuple[int, int], entries: Iterable[FatbinEntry]) -> Optional[FatbinEntry]:
    """The entry a device of this capability would run: the best SASS, else the newest
    usable PTX (JIT), else None ("no kernel image is available for execution")."""
    usable = [e for e in entries if e.runs_on(capability)]
    sass = [e for e in usable if e.kind == "ELF"]
    if sass:
        return max(sass, key=lambda e: (e.arch, e.variant != ""))
    ptx = [e for e in usable if e.kind == "PTX"]
    return max(ptx, key=lambda e: e.arch) if ptx else None


def format_arch_flags(entries: Iterable[FatbinEntry]) -> str:
    """Unique entries as torch prints its arch flags: "sm_80 sm_90 compute_90"."""
    unique = sorted(set(entries), key=lambda e: (e.kind == "PTX", e.arch, e.variant))
    return " ".join(e.name for e in unique)


_FLAG = re.compile(r"^(sm|compute)_(\d+)([af]?)$")


def parse_arch_flags(flags: str) -> List[FatbinEntry]:
    """Parse "sm_75 sm_80 compute_90" (torch._C._cuda_getArchFlags()); unknown words are ignored."""
    entries = []
    for word in flags.replace(",", " ").split():
        m = _FLAG.match(word.strip())
        if m:
            entries.append(FatbinEntry("ELF" if m.group(1) == "sm" else "PTX", int(m.group(2)), m.group(3)))
    return entries


def parse_arch_list(arch_list: str) -> List[FatbinEntry]:
    """Parse a TORCH_CUDA_ARCH_LIST such as "8.0;8.6+PTX" or "7.5 9.0a"."""
    entries = []
    for item in re.split(r"[;\s]+", arch_list.strip()):
        if not item:
            continue
        ptx = item.upper().endswith("+PTX")
        version = item[:-4] if ptx else item
        m = re.match(r"^(\d+)\.(\d)([af]?)$", version)
        if not m:
            raise ValueError(f"arch_list: cannot parse {item!r}; expected entries like '8.6' or '8.6+PTX'")
        arch = int(m.group(1)) * 10 + int(m.group(2))
        entries.append(FatbinEntry("ELF", arch, m.group(3)))
        if ptx:
            entries.append(FatbinEntry("PTX", arch, m.group(3)))
    return entries


def describe(entries: Sequence[FatbinEntry]) -> str:
    """Short human text for evidence lines."""
    return format_arch_flags(entries) if entries else "no device code"

