"""Every exception the runner raises, split by what the caller does next.

    AnytimeError
    ├── ConfigError            fix the input; never retried, nothing is spent
    │   ├── ManifestError      a manifest field is wrong (carries the field path)
    │   ├── DatasetError       a dataset file or record is wrong (carries file and line)
    │   ├── PriceError         a model has no known price
    │   └── EncodingUnavailable  a tokenizer encoding cannot be loaded offline
    ├── ProviderError          a call failed; `retryable` says whether a new attempt may help
    │   ├── RateLimited        429 (or an in-stream rate-limit error): pause the lane
    │   ├── ServerError        5xx / overloaded: back off and retry
    │   ├── StreamBroken       connection lost or malformed stream after the 200
    │   ├── CallTimeout        connect / first-token / idle / total timeout
    │   ├── EndpointUnreachable  no connection: refused, or the host name does not resolve
    │   ├── BatchExpired       a request in a provider batch expired unprocessed (24 h): send it again
    │   └── FatalProviderError 4xx other than 408/409/429: retrying cannot help
    │       ├── ConfigurationRejected  401 / 403 / 404 / no quota / a bad URL: fix the manifest or key
    │       └── LaneStopped    a lane refused to go on after a configuration error (names the fix)
    ├── LedgerError            the ledger cannot be read or written
    ├── TranscriptError        a run's transcripts cannot be read (the viewer catches this one)
    │   ├── NoTranscripts      the run has none (--no-transcripts, or made before them): also a ConfigError
    │   └── TranscriptsCorrupt a member before the file's end is damaged: also a LedgerError
    ├── SpendCapReached        the next call could push spend past a cap
    └── RunStopped             the run was told to stop (Ctrl-C): no new attempt starts

Messages never contain API keys: adapters build errors from status, headers and the
provider's own error body, never from request headers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.types import RateLimitReading


class AnytimeError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AnytimeError):
    """Bad input from the user. Raised before anything is spent.

    Its text is one printable line whatever the input held: a key with a newline in a manifest, a
    control character in a dataset file are shown as escapes (``\\n``), not as line breaks.
    """

    def __str__(self) -> str:
        return printable(super().__str__())


def printable(text: str) -> str:
    """``text`` on one line: characters that are not printable become their escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class ManifestError(ConfigError):
    """A manifest field is missing or wrong.

    Args:
        source: the manifest file name.
        path: the field path, e.g. ``providers.openai.rpm``.
        problem: what was expected and what arrived.
    """

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")


class DatasetError(ConfigError):
    """A dataset file or one of its records is malformed (names the file and line)."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class PriceError(ConfigError):
    """A model has no price in the table and the manifest sets none."""


class EncodingUnavailable(ConfigError):
    """A tokenizer encoding cannot be loaded without the network."""


class ProviderError(AnytimeError):
    """A provider call failed.

    Attributes:
        provider: lane name.
        status: HTTP status, or None when the failure was not an HTTP answer.
        retryable: whether a new attempt could succeed.
        retry_after_s: the server's requested delay, when it gave one.
        error_class: a short stable label for the ledger (``rate_limit``, ``server``, ...).
    """

    error_class = "provider"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        # what the failed response's headers said about the lane's limits (set by the adapter)
        self.limits: RateLimitReading | None = None
        if retryable is not None:
            self.retryable = retryable


class RateLimited(ProviderError):
    error_class = "rate_limit"
    retryable = True


class ServerError(ProviderError):
    error_class = "server"
    retryable = True


class StreamBroken(ProviderError):
    error_class = "stream_broken"
    retryable = True


class CallTimeout(ProviderError):
    error_class = "timeout"
    retryable = True


class BatchExpired(ProviderError):
    """A request in a provider batch was not processed before the batch's window (24 h) ran out;
    nothing was billed for it, and it can be sent again."""

    error_class = "batch_expired"
    retryable = True


class FatalProviderError(ProviderError):
    error_class = "fatal"
    retryable = False


class EndpointUnreachable(ProviderError):
    """No connection to the provider's host at all: refused, or its name does not resolve.

    Retryable once the lane has reached the host before (a server restarting); before that it is
    a configuration error and the lane stops.
    """

    error_class = "unreachable"
    retryable = True


class ConfigurationRejected(FatalProviderError):
    """The provider refused who we are or what we asked for: the key (401), its access (403), the
    model or the path (404), the account's quota, or the URL itself. Every call of the lane would
    fail the same way."""

    error_class = "configuration"


class LaneStopped(FatalProviderError):
    """A lane stopped after a configuration error; the message names the model, the URL and the fix."""

    error_class = "lane_stopped"


class LedgerError(AnytimeError):
    """The ledger cannot be read or written."""


class TranscriptError(AnytimeError):
    """A run's transcripts cannot be read; the message names the file and what is wrong."""


class NoTranscripts(TranscriptError, ConfigError):
    """The run folder has no transcripts: it ran with ``--no-transcripts`` (or ``run.transcripts =
    false``), or before transcripts existed."""


class TranscriptsCorrupt(TranscriptError, LedgerError):
    """A transcripts member before the end of the file is damaged (a torn tail is not: it is skipped,
    and cut off by the next run that opens the file)."""


class SpendCapReached(AnytimeError):
    """Starting another call could push spend past ``run.max_usd`` or a provider cap."""


class RunStopped(AnytimeError):
    """The run was told to stop (Ctrl-C, SIGTERM): no new attempt starts; the job stays unfinished
    and a resume redoes it."""
