"""The adapter between the viewer and the transcripts reader: one job's prompt, trace, cuts and
forced answers as plain data for the drill-down page, or why there are none.

The transcripts reader (``read_job_transcript(run_dir, job_id) -> JobTranscript | None``) lives
with the transcripts; this module is the only place the viewer touches it, so a change there
is one change here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Json = dict[str, Any]

NO_READER = (
    "This build of anytime-runner has no transcripts reader: the prompt, the trace and the forced "
    "answers' texts cannot be shown. Everything the ledger knows is shown."
)
NOT_RECORDED = (
    "No transcript for this job: the run was made without transcripts (--no-transcripts, or by a "
    "version before them). The ledger's answers, grades, tokens and dollars are shown; the prompt, "
    "the trace and its cut markers are not."
)


def transcripts_state(run_dir: Path) -> Json:
    """Whether the run folder has transcripts, and a sentence saying so."""
    return {"available": False, "message": NO_READER}


def transcript_of(run_dir: Path, job_id: str) -> tuple[Json | None, str | None]:
    """(the job's transcript as plain data, None), or (None, why there is none)."""
    return None, NO_READER
