"""Tasks: what a problem is, how it is shown to a model, and how an answer is graded; and the
prompting methods (`runner.tasks.methods`) that build the trace and forced-answer prompts.

May import: `runner.types`, `runner.errors`. Never a provider module: methods build prompts
(`runner.types.Message`), not requests.

- `base`: `Problem`, `Rendered`, `Grade`, `Task`; `registry`: dataset kind → task.
- `files`: reading JSON Lines / CSV with errors that name file and line.
- `latex`: taking the LaTeX / Markdown wrappers off an answer (`\\boxed`, `\\text`, `$…$`, `**…**`).
- `aime`, `gpqa`, `trip`, `meeting`, `calendar`: one task each.
- `methods`: cot, pdp, pdp_plus, leap, and the shared forced-answer prompt.
"""
