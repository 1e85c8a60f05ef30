"""Tokens: offline tiktoken encodings, token counts, and the incremental tokenizer that cuts a
streamed trace at exact budgets.

May import: `runner.types`, `runner.errors`. Never a provider module: the tokenizer knows no
wire protocol.

- `encodings`: rank files found offline and verified; `resolve_encoding` per model.
- `count`: tokens of text and of chat prompts.
- `budget`: `BudgetTokenizer` and `Cut`, exact in linear time.
"""
