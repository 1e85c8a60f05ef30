"""CLI subcommands that are not owned by a single module."""
