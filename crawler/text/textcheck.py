"""Detect mojibake: text that went through the wrong codec somewhere upstream.

`looks_mojibake` says yes on any of three signs:

1. U+FFFD, the replacement character a decoder leaves for bytes it could not read.
2. UTF-8 read as cp1252 or latin-1 ("Ã©" for "é", "â€™" for "’", "å°çº¢ä¹¦" for "小红书").
   Every character of such text maps back to one byte (U+0080..U+00FF, or a cp1252 special
   like "€" or "™"), and those bytes form UTF-8 sequences: a lead byte (C2..F4) followed by
   continuation bytes (80..BF). Within each run of such characters (ASCII ends a run) it counts
   - a complete 3- or 4-byte sequence, or a complete 2-byte one led by "Â"/"Ã" (the lead
     bytes of U+0080..U+00FF): proof enough on its own, ordinary text never has these;
   - lead bytes followed by fewer continuation bytes than they need: decoding cp1252 with
     errors="ignore" drops 81, 8D, 8F, 90 and 9D, so "小" (E5 B0 8F) arrives as "å°".
     Two such witnessed sequences in a run, with no byte that fits no sequence, also count.
   Ordinary accented text fails this: a lone "é" before "»" is one sequence, and a run that
   starts with "«" or holds "ü" (FC, never valid in UTF-8) has a stray byte. Text whose every
   continuation byte was dropped ("十十" arrives as "åå") is undetectable: "créé" looks alike.
3. UTF-8 read as GBK ("灏忕孩涔" for "小红书"), and its best-known form "锟斤拷" (two U+FFFD
   after that trip): a run of non-ASCII characters that is not plain GB2312 text, but whose
   GBK bytes are valid UTF-8 spelling two or more common (GB2312) CJK ideographs, or U+FFFD.
"""

from __future__ import annotations

import re

# cp1252 puts printable characters at 0x80..0x9F where latin-1 has C1 controls.
_CP1252_SPECIALS: dict[str, int] = {
    ch: byte
    for byte in range(0x80, 0xA0)
    if (ch := bytes([byte]).decode("cp1252", errors="ignore"))
}
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f\s]+")
_LATIN_OR_CP1252 = re.compile("[\x80-\xff" + re.escape("".join(_CP1252_SPECIALS)) + "]")


def looks_mojibake(text: str) -> bool:
    """True when `text` shows signs of a wrong decode (see the module docstring)."""
    if text.isascii():  # no sign can show in ASCII: most text, decided in one C-level pass
        return False
    if "\ufffd" in text:
        return True
    if _LATIN_OR_CP1252.search(text) is None:  # no character a cp1252/latin-1 byte became
        return any(_gbk_mojibake(m.group()) for m in _NON_ASCII_RUN.finditer(text))
    run = bytearray()
    for ch in text:
        byte = _byte_of(ch)
        if byte is not None:
            run.append(byte)
            continue
        if run and _utf8_in_run(bytes(run)):
            return True
        run.clear()
    if run and _utf8_in_run(bytes(run)):
        return True
    return any(_gbk_mojibake(m.group()) for m in _NON_ASCII_RUN.finditer(text))


def _byte_of(ch: str) -> int | None:
    """The byte a cp1252 or latin-1 decoder turned into `ch`, if it is not ASCII."""
    code = ord(ch)
    if 0x80 <= code <= 0xFF:
        return code
    return _CP1252_SPECIALS.get(ch)


def _utf8_in_run(data: bytes) -> bool:
    witnessed = strays = 0
    i = 0
    while i < len(data):
        lead = data[i]
        need = _continuations_needed(lead)
        if need == 0:
            strays += 1
            i += 1
            continue
        end = i + 1
        while end < len(data) and end - i - 1 < need and 0x80 <= data[end] <= 0xBF:
            end += 1
        got = end - i - 1
        if got == need:
            try:
                data[i:end].decode("utf-8")
            except UnicodeDecodeError:
                strays += 1
                i = end
                continue
            if need >= 2 or lead in (0xC2, 0xC3):
                return True
        if got:
            witnessed += 1
        i = end
    return witnessed >= 2 and strays == 0


def _continuations_needed(lead: int) -> int:
    """How many continuation bytes a UTF-8 lead byte takes (0: not a lead byte)."""
    if 0xC2 <= lead <= 0xDF:
        return 1
    if 0xE0 <= lead <= 0xEF:
        return 2
    if 0xF0 <= lead <= 0xF4:
        return 3
    return 0


def _gbk_mojibake(run: str) -> bool:
    try:
        data = run.encode("gbk")
    except UnicodeError:
        return False
    # Every character of the run is two GBK bytes; "锟斤拷" is U+FFFD's UTF-8 (EF BF BD) twice.
    if any(data[i : i + 3] == b"\xef\xbf\xbd" for i in range(0, len(data), 2)):
        return True
    # The run may end in the middle of a UTF-8 sequence, which the decoder replaces once.
    decoded = data.decode("utf-8", errors="replace").removesuffix("\ufffd")
    if "\ufffd" in decoded or _is_gb2312(run) or not _is_gb2312(decoded):
        return False
    return sum(map(_is_ideograph, decoded)) >= 2 and all(map(_is_ideograph, decoded))


def _is_gb2312(text: str) -> bool:
    try:
        text.encode("gb2312")
    except UnicodeError:
        return False
    return True


def _is_ideograph(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"
