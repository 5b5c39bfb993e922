"""Compare two settings side by side: one scenario, one seed, the same presses, in two panes
that are two rooms stepping together (docs/architecture.md, "Comparing two settings")."""
