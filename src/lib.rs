//! Host package for the workspace-level tests in `tests/` (golden equivalence with
//! fast-transformers, conversion round trips). It has no code of its own.
