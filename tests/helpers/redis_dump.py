"""Every byte Redis holds, for tests that scan it for secrets and personal data."""

from __future__ import annotations

import json
from typing import Any

from redis import Redis


def redis_dump(redis: Redis) -> bytes:
    """Every byte Redis holds: each key's name and contents, whatever its type."""
    chunks: list[bytes] = []
    for key in redis.scan_iter(count=1000):
        chunks.append(_raw(key))
        kind = _raw(redis.type(key)).decode()
        if kind == "string":
            chunks.append(_raw(redis.get(key) or b""))
        elif kind == "hash":
            chunks.extend(b"%s=%s" % (_raw(k), _raw(v)) for k, v in redis.hgetall(key).items())
        elif kind == "list":
            chunks.extend(_raw(v) for v in redis.lrange(key, 0, -1))
        elif kind == "set":
            chunks.extend(_raw(v) for v in redis.smembers(key))
        elif kind == "zset":
            chunks.extend(_raw(v) for v in redis.zrange(key, 0, -1))
        elif kind == "stream":
            entries: list[Any] = redis.xrange(key) or []
            chunks.append(
                json.dumps(
                    [
                        [
                            _raw(i).decode(),
                            {_raw(k).decode(): _raw(v).decode("latin-1") for k, v in f.items()},
                        ]
                        for i, f in entries
                    ]
                ).encode()
            )
    return b"\n".join(chunks)


def _raw(value: object) -> bytes:
    """A reply of a client that does not decode responses: always bytes."""
    assert isinstance(value, bytes), type(value)
    return value
