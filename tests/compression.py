"""gzip test payloads, including a bomb built without ever holding its expansion."""

from __future__ import annotations

import zlib

MIB = 1024 * 1024


def gzip_bomb(expanded_bytes: int) -> bytes:
    """A gzip stream of a JSON array followed by `expanded_bytes` spaces (about 1000:1)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflater.compress(b"[")]
    chunk = b" " * MIB
    for _ in range(expanded_bytes // MIB):
        parts.append(deflater.compress(chunk))
    parts.append(deflater.compress(b"]") + deflater.flush())
    return b"".join(parts)
