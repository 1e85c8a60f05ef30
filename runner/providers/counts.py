"""The numbers a provider reports that a call is priced from, as types that refuse what no bill holds.

Token counts are whole numbers from 0 to `MAX_TOKENS`; a charge is a dollar amount from 0 to
`MAX_USD` (xAI's ``cost_in_usd_ticks`` in its 1e-10 units up to the same amount). A usage object
outside these ranges fails to decode, so the adapter reports a malformed event that names the field
(``Expected `int` >= 0 - at `$.usage.prompt_tokens```) instead of pricing a negative or absurd
bill into the ledger.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

# no single call comes near a trillion tokens; a count above it is a corrupt report
MAX_TOKENS = 2**40
# no single call costs a million dollars
MAX_USD = 1e6
TICKS_PER_USD = 10**10

Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
Dollars = Annotated[float, msgspec.Meta(ge=0, le=MAX_USD)]
Ticks = Annotated[int, msgspec.Meta(ge=0, le=int(MAX_USD) * TICKS_PER_USD)]
