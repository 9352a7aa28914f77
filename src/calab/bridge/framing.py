"""Binary frames for bridge replies: JSON headers with float32 buffers, no JSON number lists.

A reply is ``u32 n_messages`` followed by messages. A message is ``u32 header_len``, the UTF-8
JSON header, ``u32 n_buffers``, then per buffer ``u32 byte_len``, zero padding up to the next
multiple of 8 bytes (so the page can view it as a Float32Array without copying), and the bytes.
All integers are little-endian. Keep in sync with js/src/bridge.ts.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

Message = tuple[dict[str, Any], Sequence[bytes]]


def encode(messages: Sequence[Message]) -> bytes:
    """Pack messages into one reply body."""
    out = bytearray(struct.pack("<I", len(messages)))
    for header, buffers in messages:
        raw = json.dumps(_finite(header), allow_nan=False, default=_jsonable).encode()
        out += struct.pack("<I", len(raw)) + raw
        out += struct.pack("<I", len(buffers))
        for buf in buffers:
            data = bytes(buf)
            out += struct.pack("<I", len(data))
            out += b"\0" * (-len(out) % 8)
            out += data
    return bytes(out)


def decode(body: bytes) -> list[tuple[dict[str, Any], list[bytes]]]:
    """Inverse of :func:`encode` (used by tests and Python clients)."""
    view = memoryview(body)
    (count,) = struct.unpack_from("<I", view, 0)
    pos = 4
    messages = []
    for _ in range(count):
        (hlen,) = struct.unpack_from("<I", view, pos)
        pos += 4
        header = json.loads(bytes(view[pos : pos + hlen]))
        pos += hlen
        (nbuf,) = struct.unpack_from("<I", view, pos)
        pos += 4
        buffers = []
        for _ in range(nbuf):
            (blen,) = struct.unpack_from("<I", view, pos)
            pos += 4
            pos += -pos % 8
            buffers.append(bytes(view[pos : pos + blen]))
            pos += blen
        messages.append((header, buffers))
    return messages


def _finite(obj: Any) -> Any:
    """NaN and infinities become null (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (bytes, str)):
        return _finite(obj.item())
    return obj


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars to Python numbers for JSON headers."""
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__} in a bridge header")
