//! The fuzz targets' contracts: the same file the ordinary test suite runs on the
//! committed corpora (tests/fuzz_corpus.rs).

#[path = "../../tests/contracts/mod.rs"]
pub mod contracts;
