"""Keeping injected secrets out of what the worker gets back.

An upstream may echo what it received (debug endpoints, error messages quoting a header). Every
value the proxy injected is replaced in the response's headers and body before the worker sees it.
The body streams: a chunk is passed on at once, except for a tail that could be the start of a
secret continued in the next chunk; that tail is held back only while it could still match, so an
event stream is not delayed (its chunks end in newlines, which start no secret).
"""

from __future__ import annotations

REDACTED = b"[redacted by switchboard]"


class Redactor:
    def __init__(self, secrets: list[bytes]):
        # Longest first: a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
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
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, REDACTED)
        hold = self._held_tail(data)
        self._pending = data[len(data) - hold :] if hold else b""
        return data[: len(data) - hold]

    def flush(self) -> bytes:
        """The rest of the body, at its end."""
        rest, self._pending = self._pending, b""
        return rest

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
