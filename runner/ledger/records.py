"""Ledger record types: one tagged union, one JSON object per line.

Schema evolution follows msgspec's rules: new fields get defaults, existing fields never change
type. ``FORMAT_VERSION`` is in the run header; readers accept any version up to their own.

Record kinds:
- ``run``      one per process that appended to the ledger (first run and every resume)
- ``attempt``  one per HTTP call attempt, successful or not: the unit of spend
- ``snapshot`` one per graded budget cut of a trace
- ``job``      a job is complete; names the execution (``instance``) whose snapshots count
- ``synthesis`` PDP/LEAP preference data built once per (model, dataset, method)
- ``note``     something a reader should know (torn line cut, spend cap reached, interrupted)
- ``inflight`` the spend so far of an attempt still streaming (crash recovery; see `InFlight`)
- ``batch``    a step in the life of a provider batch (`run.mode = "batch"`): the intent to submit
  it (its requests, written durably before any byte is sent), its upload, its submission (the
  provider's id), its end, or its loss (docs/batch.md); its requests' attempts are ``attempt``s
- ``reuse``    a call this run took from an earlier one instead of paying for it (see `Reuse`)

Every record is flat where a tool counts it: an ``inflight`` record carries the fields of the
attempt it samples side by side (``call_id`` and ``attempt`` name that attempt), never a nested
``attempt`` record, so ``jq 'select(.type == "attempt")'``, pandas and DuckDB count each attempt
once. Format 1 ledgers nested it (``{"type":"inflight","attempt":{"type":"attempt",...}}``);
`decode_line` and `decode_lines` flatten such lines as they read them (`flatten_legacy`).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from runner.types import CallKind

# 2: `InFlight` is flat (format 1 nested its `Attempt`; readers flatten it, see `flatten_legacy`)
# 3: `BatchEvent` records, and attempts sent in a batch (`batch_key`, `batch_id`)
# 4: `Reuse` records (a trace or answer reused from an earlier run instead of paid again)
FORMAT_VERSION = 4

AttemptStatus = Literal["ok", "length", "cancelled", "error", "truncated", "interrupted"]
# "unbilled": refused before any stream (a 429 or 5xx answer, a failed connection): no provider bills it;
# "mixed": the provider stated the prompt side (input, cache reads and writes) as the response began but
# the stream was cut before its final usage: the prompt priced from that, the output from our count
PricedFrom = Literal["reported", "counted", "billed", "mixed", "unbilled"]


class RunHeader(msgspec.Struct, tag="run", kw_only=True):
    run_id: str
    format_version: int = FORMAT_VERSION
    tool_version: str
    started_at: float
    manifest_path: str
    manifest_sha256: str
    # the manifest as decoded (plain data), so a ledger explains itself without the file
    manifest: dict[str, object]
    # USD per 1M tokens actually used for each model: {model_key: {input, cached_input, output, source}}
    prices: dict[str, dict[str, object]]
    resumed: bool = False
    # manifest fields set on the command line (`anytime run m.toml --limit 3`), as `Overrides`;
    # ``manifest`` above already has them applied. None: none given.
    overrides: dict[str, object] | None = None


class _AttemptFields(msgspec.Struct, kw_only=True):
    """What an attempt is and costs: the fields of `Attempt` and of the `InFlight` samples of it."""

    call_id: str
    job_id: str
    kind: CallKind
    provider: str
    model: str  # model key in the manifest
    attempt: int  # 1-based within this call
    status: AttemptStatus
    # the execution of the job (JobDone.instance) or synthesis stage (Synthesis.instance) it served
    instance: str | None = None
    budget: int | None = None  # answer calls: the budget whose snapshot they answer
    http_status: int | None = None
    error_class: str | None = None
    error: str | None = None
    # provider-reported (None = not reported, e.g. a cut stream never gets its usage chunk)
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_input_tokens: int | None = None  # Anthropic cache-creation part of input_tokens
    # counted locally with the model's encoding
    input_tokens_counted: int = 0
    output_tokens_counted: int = 0
    reasoning_tokens_counted: int = 0
    priced_from: PricedFrom = "counted"
    usd: float = 0.0
    billed_usd: float | None = None
    started_at: float = 0.0
    latency_s: float = 0.0
    ttft_s: float | None = None
    request_id: str | None = None
    max_output_tokens: int | None = None  # the request's output cap (None: ledgers before it was recorded)
    # sent in a provider batch: our key of the submission (`BatchEvent.key`) and the provider's id;
    # such an attempt is priced at the model's batch rates
    batch_key: str | None = None
    batch_id: str | None = None

    @property
    def billed_input(self) -> int:
        """Input tokens the provider billed: as it reported them, else as we counted them; none
        for a request refused before any stream."""
        if self.priced_from == "unbilled":
            return 0
        return self.input_tokens if self.input_tokens is not None else self.input_tokens_counted

    @property
    def billed_output(self) -> int:
        """Output tokens the provider billed (reasoning included), reported or counted."""
        if self.priced_from == "unbilled":
            return 0
        return self.output_tokens if self.output_tokens is not None else self.output_tokens_counted


class Attempt(_AttemptFields, tag="attempt", kw_only=True):
    """One HTTP call attempt. Tokens both as the provider reported them and as we counted them."""


class Snapshot(msgspec.Struct, tag="snapshot", kw_only=True):
    """The graded answer at one budget of one trace. ``budget`` is None for the full trace."""

    job_id: str
    instance: str
    model: str
    dataset: str
    problem_id: str
    method: str
    sample: int
    budget: int | None
    tokens: int  # tokens actually in the cut (fewer than budget when the trace ended early)
    answer: str  # the parsed final answer, as graded
    score: float  # headline quality in [0, 1] (CSR for trip planning)
    exact: float | None = None  # exact-match score where the headline is partial credit
    reused: bool = False  # same text as the previous budget's cut: the answer was reused, no call


class JobDone(msgspec.Struct, tag="job", kw_only=True):
    job_id: str
    instance: str
    model: str
    dataset: str
    problem_id: str
    method: str
    sample: int
    fidelity: str
    trace_tokens: int
    trace_finish: str  # stop | length | cancelled_at_budget | truncated
    provider_reasoning_tokens: int | None = None
    approximate_tokens: bool = False  # counts are not the model's own tokenizer


class Synthesis(msgspec.Struct, tag="synthesis", kw_only=True):
    """Preference data (PDP) or principles (LEAP), built once and reused on resume."""

    key: str  # hash of (model, dataset, method, pool, parameters)
    model: str
    dataset: str
    method: str
    pool_problem_ids: list[str]
    examples: list[dict[str, object]]
    text: str  # the prompt block handed to the method at evaluation time
    instance: str | None = None  # the execution of the stage that built it (its attempts carry it)


class Note(msgspec.Struct, tag="note", kw_only=True):
    at: float
    kind: str  # torn_line | spend_cap | interrupted | job_failed | synthesis_failed | run_end | ...
    message: str
    # run_end: the run's total as the process printed it, exactly (verify and the report must agree)
    usd_total: float | None = None
    # job_failed / synthesis_failed: the execution that failed (a job id, or ``synthesis:<key>``)
    job_id: str | None = None
    instance: str | None = None


class InFlight(_AttemptFields, tag="inflight", kw_only=True):
    """An attempt still streaming when a ledger batch was written: what it had cost so far.

    It has the fields of an `Attempt`, flat; ``call_id`` and ``attempt`` name the attempt it
    samples. Written by `LedgerWriter.track` as the call's spend grows. A call that ends writes
    its `Attempt`, which supersedes these; after a crash the next open turns the last `InFlight`
    of each unfinished attempt into its `Attempt` (status "interrupted"), so the spend is counted.
    Readers that only want spend ignore this kind.
    """

    def as_attempt(self) -> Attempt:
        """The attempt as this sample saw it (the same fields, tagged ``attempt``)."""
        return Attempt(**{name: getattr(self, name) for name in self.__struct_fields__})


def in_flight(attempt: Attempt) -> InFlight:
    """A sample of ``attempt`` as the ledger keeps it while the attempt streams."""
    return InFlight(**{name: getattr(attempt, name) for name in attempt.__struct_fields__})


BatchEventKind = Literal["intent", "uploaded", "submitted", "ended", "lost"]


class BatchLine(msgspec.Struct, frozen=True, kw_only=True):
    """One request of a batch: which attempt of which call it is, for whom, and its size."""

    custom_id: str  # the provider matches results by it: ``<call_id>-<attempt>``
    call_id: str
    attempt: int
    job_id: str
    kind: CallKind
    instance: str | None = None
    budget: int | None = None
    prompt_tokens: int = 0  # counted locally
    max_output_tokens: int = 0


class BatchEvent(msgspec.Struct, tag="batch", kw_only=True):
    """A step in the life of one provider batch (docs/batch.md, "Crash safety").

    Events: ``intent`` (written durably before anything is sent: the requests it holds and the
    spend reserved for them), ``uploaded`` (OpenAI-style: the request file's id), ``submitted``
    (the provider's batch id; ``found``: looked up after a crash rather than recorded at once),
    ``ended`` (every request's attempt is in the ledger before this), ``lost`` (the provider
    never received it: its requests go out again in another batch).
    """

    key: str  # our id of the submission: the file name, display name or custom id prefix it is found by
    event: BatchEventKind
    at: float
    provider: str  # the lane
    model: str  # the model key (a batch holds one model's requests)
    batch_id: str | None = None
    file_id: str | None = None
    lines: list[BatchLine] | None = None  # intent: its requests
    reserved_usd: float = 0.0  # intent: the worst case held against the spend cap
    status: str | None = None  # the provider's status at this step
    found: bool = False
    message: str | None = None


# served: the stored call stands in for this one, nothing is sent; continued: a stored trace shorter
# than the last budget goes on from its end (a new, smaller call); requested: it could not serve
# (a budget beyond its end on a protocol that cannot continue it), the trace was requested again
ReuseMode = Literal["served", "continued", "requested"]


class Reuse(msgspec.Struct, tag="reuse", kw_only=True):
    """A call this run took from one already paid for (docs/reuse.md), instead of paying again.

    The reused call's cost stays in its own run's ledger (``source_usd``); spend totals never add
    these. ``usd`` is what this run did not spend: the tokens it did not send (``input_tokens``)
    or have generated (``output_tokens``) at this run's uncached prices (its header's), less the
    tokens a continuation sends again as its prefill (``resent_tokens``), at the input rate, and
    never more than ``source_usd`` (`runner.ledger.prices.reuse_usd`; `ledger verify` recomputes it).
    A ``requested`` record spends and saves nothing: it says why a stored trace could not serve
    (``reason``).
    """

    job_id: str
    instance: str | None
    call_id: str  # this run's id of the call: the id its transcript has (a continuation: its attempts')
    kind: CallKind
    model: str  # model key in the manifest
    provider: str
    mode: ReuseMode
    key: str  # the trace key, or the call key (`runner.config.reuse_keys`)
    budget: int | None = None  # answer calls: the budget whose snapshot they answer
    source_run: str = ""  # the run folder the stored call is in
    source_job_id: str = ""
    source_call_id: str = ""
    source_usd: float = 0.0  # what the stored call cost where it was paid
    input_tokens: int = 0
    output_tokens: int = 0
    resent_tokens: int = 0
    usd: float = 0.0
    reason: str | None = None


Record = RunHeader | Attempt | Snapshot | JobDone | Synthesis | Note | InFlight | BatchEvent | Reuse

# One codec for ledger lines: the writer encodes with it, the reader decodes with it (and
# bench/deps.py measures it against orjson). A line is the tag first, ``{"type":"attempt",...``,
# then every field, no whitespace, then a newline: `recovery` searches the raw bytes for the tag.
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Record)


def encode_line_into(record: Record, buffer: bytearray) -> None:
    """Append ``record`` to ``buffer`` as one JSON line (no copy: encoded in place)."""
    _encoder.encode_into(record, buffer, -1)
    buffer.append(10)  # b"\n"


# a format-1 `InFlight` line: the tag, then the nested attempt as its only field, then "}"
LEGACY_IN_FLIGHT = b'{"type":"inflight","attempt":{"type":"attempt",'
_LEGACY_LINE = re.compile(rb'^\{"type":"inflight","attempt":\{"type":"attempt",(.*)\}$', re.MULTILINE)


def flatten_legacy(data: bytes) -> bytes:
    """Format-1 ledger lines with a nested in-flight attempt, rewritten flat as format 2 writes them.

    The nested attempt was the record's only field, so dropping the wrapper leaves exactly the
    flat record. Lines of any other kind pass through unchanged. (A JSON line holds no raw
    newline, so a line is one record.)
    """
    return _LEGACY_LINE.sub(rb'{"type":"inflight",\1', data)


def _readable(data: bytes | memoryview) -> bytes | memoryview:
    # the common case (a format-2 ledger) costs one search of the bytes
    raw = data if isinstance(data, bytes) else data.tobytes()
    return flatten_legacy(raw) if LEGACY_IN_FLIGHT in raw else data


def decode_line(line: bytes | memoryview) -> Record:
    """One ledger line as its record (a trailing newline is allowed; a format-1 line is flattened).

    Raises:
        msgspec.DecodeError: the line is not a ledger record.
    """
    return _decoder.decode(_readable(line))


def decode_lines(data: bytes | memoryview) -> list[Record]:
    """Every record of a run of whole JSON lines, in one call (format-1 lines are flattened).

    Raises:
        msgspec.DecodeError: a line is not a ledger record.
    """
    return _decoder.decode_lines(_readable(data))
