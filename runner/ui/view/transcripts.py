"""The adapter between the viewer and the transcripts reader (`runner.analysis.transcripts`): one
job's prompt, trace, cuts and forced answers as plain data for the drill-down page, or one
sentence saying why there are none.

This module is the only place the viewer touches the reader, so a change there is one change
here. The page gets:

- ``messages`` (the trace's prompt as sent), ``reasoning`` and ``content`` (as streamed, apart),
  ``traced`` (which of the two the cuts fall in), ``finish``, ``gold``, ``complete``;
- ``cuts``: per budget ``{budget, tokens, field, offset}``: the character offset of the cut in
  ``field`` (``reasoning`` or ``content``; no offset for hidden reasoning);
- ``answers``: per budget ``{budget, tokens, text, reasoning, answer, gold, score, reused}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from runner.analysis.transcripts import CutView, JobTranscript, read_job_transcript, transcript_file_info
from runner.errors import LedgerError, NoTranscripts, TranscriptError

Json = dict[str, Any]

NOT_IN_FILE = (
    "The transcripts file holds nothing of this job (it ran while transcripts were off, or its first "
    "call has not been written yet). The ledger's answers, grades, tokens and dollars are shown; the "
    "prompt, the trace and its cut markers are not."
)


def transcripts_state(run_dir: Path) -> Json:
    """Whether the run folder has transcripts, and a sentence saying so."""
    try:
        info = transcript_file_info(run_dir)
    except NoTranscripts as exc:
        return {"available": False, "message": f"No transcripts: {exc}."}
    except TranscriptError as exc:
        return {"available": False, "message": f"The transcripts cannot be read: {exc}"}
    torn = f"; its last {info.torn_bytes} bytes are still being written (or torn by a crash)" if info.torn_bytes else ""
    return {
        "available": True,
        "message": f"transcripts: {info.path} ({info.members} blocks, {info.bytes} bytes compressed{torn})",
    }


def transcript_of(run_dir: Path, job_id: str) -> tuple[Json | None, str | None]:
    """(the job's transcript as plain data, None), or (None, why there is none)."""
    try:
        transcript = read_job_transcript(run_dir, job_id)
    except NoTranscripts as exc:
        return None, f"No transcripts: {exc}. The ledger's answers, grades, tokens and dollars are shown."
    except (TranscriptError, LedgerError) as exc:
        return None, f"The transcripts cannot be read: {exc}"
    if transcript is None:
        return None, NOT_IN_FILE
    return page_data(transcript), None


def _cut(cut: CutView) -> Json:
    if cut.reasoning_chars is not None:
        field, offset = "reasoning", cut.reasoning_chars
    elif cut.content_chars is not None:
        field, offset = "content", cut.content_chars
    else:
        field, offset = None, None
    return {"budget": cut.budget, "tokens": cut.tokens, "field": field, "offset": offset}


def page_data(t: JobTranscript) -> Json:
    """The transcript in the shape the drill-down page draws."""
    return {
        "instance": t.instance,
        "complete": t.complete,
        "messages": msgspec.to_builtins(t.messages),
        "reasoning": t.reasoning,
        "content": t.content,
        "traced": t.traced,
        "finish": t.finish,
        "gold": t.gold,
        "cuts": [_cut(c) for c in t.cuts],
        "answers": [
            {
                "budget": a.budget,
                "tokens": a.tokens,
                "text": a.text,
                "reasoning": a.reasoning,
                "answer": a.answer,
                "gold": a.gold,
                "score": a.score,
                "reused": a.reused,
            }
            for a in t.answers
        ],
    }
