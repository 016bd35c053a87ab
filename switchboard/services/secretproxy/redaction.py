"""Keeping injected secrets out of what the worker gets back.

An upstream may echo what it received (debug endpoints, error messages quoting a header). Every
value the proxy injected is replaced in the response's headers and body before the worker sees it.
The body streams: a chunk is passed on at once, except for a tail that could be the start of a
secret continued in the next chunk; that tail is held back only while it could still match, so an
event stream is not delayed (its chunks end in newlines, which start no secret). The stream is
redacted as the whole body would be: left to right, the longest secret at each position, so a
secret that begins with another ("key", "key:secret") is not cut short by a chunk's end.
"""

from __future__ import annotations

import re

REDACTED = b"[redacted by switchboard]"


class Redactor:
    def __init__(self, secrets: list[bytes]):
        # Longest first: a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        # Alternatives are tried in order: at each position, the longest secret that starts there.
        self._pattern = re.compile(b"|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        self._pending = b""

    @property
    def active(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        """A header value with every secret replaced."""
        for secret in self._secrets:
            text = secret.decode("latin-1")
            if text in value:
                value = value.replace(text, REDACTED.decode())
        return value

    def feed(self, chunk: bytes) -> bytes:
        """What can be passed on of the body so far."""
        data = self._pending + chunk
        if self._pattern is None:
            return data
        # From here on a secret may begin that the next chunk completes: a match that starts there
        # is not final (it may be the start of a longer secret). A match that starts before it is:
        # no secret that begins earlier, or a longer one at the same place, can still complete.
        undecided = len(data) - self._held_tail(data)
        out, end = [], 0
        for match in self._pattern.finditer(data):
            if match.start() >= undecided:
                break
            out += [data[end : match.start()], REDACTED]
            end = match.end()
        # Hold back raw bytes only (never the marker's, which must not be searched again).
        cut = len(data) - self._held_tail(data[end:])
        out.append(data[end:cut])
        self._pending = data[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the body, at its end."""
        rest, self._pending = self._pending, b""
        # The held tail may hold a whole secret that waited to see whether a longer one follows.
        return self._pattern.sub(REDACTED, rest) if self._pattern is not None else rest

    def _held_tail(self, data: bytes) -> int:
        """The length of the longest suffix of ``data`` that is a proper prefix of a secret."""
        longest = 0
        for secret in self._secrets:
            first = secret[:1]
            start = max(0, len(data) - len(secret) + 1)
            position = data.find(first, start)
            while position != -1:
                if secret.startswith(data[position:]):
                    longest = max(longest, len(data) - position)
                    break  # the earliest position gives this secret's longest suffix
                position = data.find(first, position + 1)
        return longest
