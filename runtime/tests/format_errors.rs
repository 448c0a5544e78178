//! Hostile and malformed `.lrt` inputs: every one must be rejected by
//! `Model::from_bytes` with the specific typed `linrt::Error` variant, and nothing
//! may panic. Hostile files that must fail for a reason other than the checksum are
//! re-sealed with `linrt::format::writer::seal` after patching.

use std::panic::{catch_unwind, AssertUnwindSafe};

use linrt::format::record::{Entry, Header};
use linrt::format::writer::seal;
use linrt::format::{expected_tensor, tensor_count};
use linrt::{AlignedBytes, Error, InputKind, LrtWriter, Model, ModelConfig, NormPlacement, OutputKind, TensorRole};

// ---------------------------------------------------------------------------
// Builders and patch helpers
// ---------------------------------------------------------------------------

/// The small reference config: 8 wide, 2 layers, 2 heads, ff 16, vector input,
/// final norm, hidden output (34 tensors).
fn base_cfg() -> ModelConfig {
    ModelConfig::new(8, 2, 2, 16)
}

/// Deterministic, finite, distinct-ish values for tensor `index`.
fn tensor_values(index: usize, n: usize) -> Vec<f32> {
    (0..n).map(|j| ((index * 31 + j * 7) % 17) as f32 * 0.01 - 0.08).collect()
}

/// A writer holding every tensor `cfg` requires.
fn full_writer(cfg: &ModelConfig) -> LrtWriter {
    let mut w = LrtWriter::new(*cfg);
    for i in 0..tensor_count(cfg) {
        let spec = expected_tensor(cfg, i).expect("spec inside tensor_count");
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        w.tensor(spec.role, spec.layer, tensor_values(i, n));
    }
    w
}

fn build_with(cfg: &ModelConfig, meta: &[(&str, &str)]) -> Vec<u8> {
    let mut w = full_writer(cfg);
    for (k, v) in meta {
        w.metadata(*k, *v);
    }
    w.to_bytes().expect("valid model serialises")
}

fn build() -> Vec<u8> {
    build_with(&base_cfg(), &[])
}

/// Loads `bytes` from 4-byte aligned storage; panics inside the reader propagate.
fn load(bytes: &[u8]) -> Result<(), Error> {
    AlignedBytes::from_slice(bytes).model().map(|_| ())
}

/// Loads `bytes` and returns the error, failing the test if it loaded.
fn load_err(bytes: &[u8]) -> Error {
    match load(bytes) {
        Ok(()) => panic!("hostile file of {} bytes loaded successfully", bytes.len()),
        Err(e) => e,
    }
}

/// Like `load`, but turns a panic inside the reader into a test failure that says
/// which input caused it.
fn load_no_panic(bytes: &[u8], what: &str) -> Result<(), Error> {
    match catch_unwind(AssertUnwindSafe(|| load(bytes))) {
        Ok(r) => r,
        Err(_) => panic!("Model::from_bytes panicked on {what}"),
    }
}

fn header(bytes: &[u8]) -> Header {
    Header::decode(&bytes[..64])
}

fn set_header(bytes: &mut [u8], h: &Header) {
    bytes[..64].copy_from_slice(&h.encode());
}

fn entry_at(bytes: &[u8], index: usize) -> usize {
    header(bytes).directory_offset as usize + index * 64
}

fn entry(bytes: &[u8], index: usize) -> Entry {
    let at = entry_at(bytes, index);
    Entry::decode(&bytes[at..at + 64])
}

fn set_entry(bytes: &mut [u8], index: usize, e: &Entry) {
    let at = entry_at(bytes, index);
    bytes[at..at + 64].copy_from_slice(&e.encode());
}

/// Patches the header of a valid file, re-seals it and returns the load error.
fn with_header(f: impl FnOnce(&mut Header)) -> Error {
    let mut bytes = build();
    let mut h = header(&bytes);
    f(&mut h);
    set_header(&mut bytes, &h);
    seal(&mut bytes);
    load_err(&bytes)
}

/// Patches directory entry `index` of a valid file, re-seals it and returns the error.
fn with_entry(index: usize, f: impl FnOnce(&mut Entry)) -> Error {
    let mut bytes = build();
    let mut e = entry(&bytes, index);
    f(&mut e);
    set_entry(&mut bytes, index, &e);
    seal(&mut bytes);
    load_err(&bytes)
}

/// Writes `patch` at byte `at` of the config record, re-seals and returns the error.
fn with_config_bytes(at: usize, patch: &[u8]) -> Error {
    let mut bytes = build();
    let base = header(&bytes).config_offset as usize + at;
    bytes[base..base + patch.len()].copy_from_slice(patch);
    seal(&mut bytes);
    load_err(&bytes)
}

// Config record field offsets (runtime/src/format/record.rs).
const CFG_D_MODEL: usize = 0;
const CFG_N_LAYERS: usize = 4;
const CFG_N_HEADS: usize = 8;
const CFG_D_FF: usize = 20;
const CFG_ACTIVATION: usize = 24;
const CFG_NORM_PLACEMENT: usize = 25;
const CFG_FINAL_NORM: usize = 26;
const CFG_FEATURE_MAP: usize = 27;
const CFG_FEATURE_DIM: usize = 28;
const CFG_ATTENTION_EPS: usize = 32;
const CFG_INPUT_KIND: usize = 40;
const CFG_INPUT_PROJECTION: usize = 41;
const CFG_OUTPUT_KIND: usize = 48;
const CFG_POSITIONAL: usize = 42;
const CFG_FEATURE_INPUT_SCALE: usize = 56;

/// Checks a loaded model thoroughly: every layer, every tensor, all metadata.
fn exercise(model: &Model<'_>) {
    let cfg = *model.config();
    for layer in 0..cfg.n_layers {
        model.layer(layer).expect("layer of a validated model");
    }
    for i in 0..model.tensor_count() {
        let info = model.tensor(i).expect("tensor info inside count");
        let spec = expected_tensor(&cfg, i).expect("spec inside count");
        assert_eq!((info.role, info.layer, info.dims), (spec.role, spec.layer, spec.dims));
        let values = model.f32_tensor(info.role, info.layer).expect("f32 tensor of a validated model");
        assert_eq!(values.len() as u64, spec.dims[0] as u64 * spec.dims[1] as u64);
        assert!(values.iter().all(|v| v.is_finite()));
    }
    assert!(model.tensor(model.tensor_count()).is_none());
    for (k, v) in model.metadata() {
        let _ = (k.len(), v.len());
    }
}

// ---------------------------------------------------------------------------
// Valid files
// ---------------------------------------------------------------------------

#[test]
fn valid_file_loads() {
    let cfg = base_cfg();
    let bytes = build();
    let aligned = AlignedBytes::from_slice(&bytes);
    assert_eq!(aligned.as_bytes(), &bytes[..]);
    let model = aligned.model().expect("valid file loads");
    assert_eq!(model.version(), (1, 1));
    assert_eq!(model.file_size(), bytes.len() as u64);
    assert_eq!(model.tensor_count(), tensor_count(&cfg));
    assert_eq!(model.tensor_count(), 34);
    assert_eq!(model.checksum(), header(&bytes).checksum);
    for i in 0..tensor_count(&cfg) {
        let spec = expected_tensor(&cfg, i).unwrap();
        let info = model.tensor(i).unwrap();
        assert_eq!(info.offset % 64, 0, "tensor {i} is 64-byte aligned");
        let got = model.f32_tensor(spec.role, spec.layer).unwrap();
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        assert_eq!(got, &tensor_values(i, n)[..], "tensor {i} round-trips");
    }
    exercise(&model);
}

#[test]
fn config_round_trips() {
    let mut variants = Vec::new();
    variants.push(base_cfg());

    let mut tokens = ModelConfig::new(8, 3, 2, 16);
    tokens.input_kind = InputKind::Tokens;
    tokens.input_dim = 11;
    tokens.output_kind = OutputKind::Linear;
    tokens.output_dim = 5;
    tokens.activation = linrt::Activation::Gelu;
    tokens.norm_placement = NormPlacement::Pre;
    tokens.final_norm = false;
    tokens.attention_eps = 1e-4;
    tokens.layernorm_eps = 3e-6;
    variants.push(tokens);

    let mut projected = ModelConfig::new(12, 1, 3, 20);
    projected.input_projection = true;
    projected.input_dim = 3;
    projected.d_query = 3;
    projected.d_value = 5;
    variants.push(projected);

    let mut single_head = ModelConfig::new(4, 2, 1, 4);
    single_head.final_norm = false;
    single_head.output_kind = OutputKind::Linear;
    single_head.output_dim = 2;
    variants.push(single_head);

    for cfg in variants {
        let bytes = build_with(&cfg, &[]);
        let aligned = AlignedBytes::from_slice(&bytes);
        let model = aligned.model().expect("variant loads");
        assert_eq!(model.config(), &cfg);
        assert_eq!(model.tensor_count(), tensor_count(&cfg));
        exercise(&model);
    }
}

#[test]
fn metadata_round_trips() {
    let meta = [("source", "fast-transformers checkpoint"), ("vocab", "a b c \u{e9} \u{1F600}")];
    let bytes = build_with(&base_cfg(), &meta);
    let aligned = AlignedBytes::from_slice(&bytes);
    let model = aligned.model().expect("file with metadata loads");
    assert_eq!(model.metadata_value("source"), Some("fast-transformers checkpoint"));
    assert_eq!(model.metadata_value("vocab"), Some("a b c \u{e9} \u{1F600}"));
    assert_eq!(model.metadata_value("missing"), None);
    let all: Vec<(&str, &str)> = model.metadata().collect();
    assert_eq!(all, meta.to_vec());
    exercise(&model);
}

#[test]
fn newer_minor_version_loads() {
    let mut bytes = build();
    let mut h = header(&bytes);
    h.minor = 7;
    set_header(&mut bytes, &h);
    seal(&mut bytes);
    let aligned = AlignedBytes::from_slice(&bytes);
    let model = aligned.model().expect("version 1.7 is readable by a 1.x reader");
    assert_eq!(model.version(), (1, 7));
    exercise(&model);
}

// ---------------------------------------------------------------------------
// Size and header
// ---------------------------------------------------------------------------

#[test]
fn empty_buffer_is_truncated() {
    let err = Model::from_bytes(&[]).unwrap_err();
    assert!(matches!(err, Error::Truncated { what: "header", needed: 64, available: 0 }), "{err:?}");
}

#[test]
fn every_truncation_fails() {
    let bytes = build();
    let len = bytes.len();
    let file_size = len as u64;
    let lengths = (0..300.min(len)).chain((300..len).step_by(37));
    let mut checked = 0;
    for n in lengths {
        let err = match load_no_panic(&bytes[..n], &format!("a {n}-byte prefix")) {
            Ok(()) => panic!("{n}-byte prefix of a {len}-byte file loaded"),
            Err(e) => e,
        };
        if n < 64 {
            assert!(
                matches!(err, Error::Truncated { what: "header", needed: 64, available }
                    if available == n as u64),
                "prefix {n}: {err:?}"
            );
        } else {
            assert!(
                matches!(err, Error::FileSizeMismatch { header, actual }
                    if header == file_size && actual == n as u64),
                "prefix {n}: {err:?}"
            );
        }
        checked += 1;
    }
    assert!(checked > 300);
    // The last byte missing is the most likely real-world truncation.
    assert!(matches!(load_err(&bytes[..len - 1]), Error::FileSizeMismatch { .. }));
}

#[test]
fn padded_file_is_a_size_mismatch() {
    let mut bytes = build();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(&[0; 64]);
    let err = load_err(&bytes);
    assert!(
        matches!(err, Error::FileSizeMismatch { header, actual } if header == len && actual == len + 64),
        "{err:?}"
    );
}

#[test]
fn bad_magic() {
    let err = with_header(|h| h.magic = *b"LNRX");
    assert!(matches!(err, Error::BadMagic), "{err:?}");
    // Not even sealed: magic is checked first.
    let mut bytes = build();
    bytes[0] = b'X';
    assert!(matches!(load_err(&bytes), Error::BadMagic));
}

#[test]
fn major_version_2_is_unsupported() {
    let err = with_header(|h| h.major = 2);
    assert!(matches!(err, Error::UnsupportedVersion { major: 2, minor: 1 }), "{err:?}");
    let err = with_header(|h| h.major = 0);
    assert!(matches!(err, Error::UnsupportedVersion { major: 0, .. }), "{err:?}");
}

#[test]
fn bad_header_size() {
    let err = with_header(|h| h.header_size = 80);
    assert!(matches!(err, Error::BadHeaderSize(80)), "{err:?}");
}

#[test]
fn unknown_flags() {
    let err = with_header(|h| h.flags = 2);
    assert!(matches!(err, Error::UnknownFlags(2)), "{err:?}");
    let err = with_header(|h| h.flags = 0x8000_0001);
    assert!(matches!(err, Error::UnknownFlags(0x8000_0001)), "{err:?}");
}

#[test]
fn positional_flag_and_config_byte_must_agree() {
    // Flag 1 without the config byte, and the byte without the flag.
    let err = with_header(|h| h.flags = 1);
    assert!(matches!(err, Error::BadConfig { field, .. } if field.starts_with("positional")), "{err:?}");
    let err = with_config_bytes(CFG_POSITIONAL, &[1]);
    assert!(matches!(err, Error::BadConfig { field, .. } if field.starts_with("positional")), "{err:?}");
    // Both: a valid 1.1 file.
    let mut cfg = base_cfg();
    cfg.positional = linrt::Positional::Sinusoidal;
    let bytes = build_with(&cfg, &[]);
    assert_eq!(header(&bytes).flags, 1);
    let model = AlignedBytes::from_slice(&bytes);
    assert_eq!(model.model().unwrap().config().positional, linrt::Positional::Sinusoidal);
}

#[test]
fn wrong_file_size_field() {
    let len = build().len() as u64;
    let err = with_header(|h| h.file_size = len + 1);
    assert!(matches!(err, Error::FileSizeMismatch { header, actual } if header == len + 1 && actual == len), "{err:?}");
    let err = with_header(|h| h.file_size = u64::MAX);
    assert!(matches!(err, Error::FileSizeMismatch { header: u64::MAX, .. }), "{err:?}");
}

#[test]
fn flipped_tensor_byte_fails_the_checksum() {
    let mut bytes = build();
    let stored = header(&bytes).checksum;
    let at = entry(&bytes, 4).data_offset as usize + 5;
    bytes[at] ^= 0x10;
    let err = load_err(&bytes);
    assert!(
        matches!(err, Error::ChecksumMismatch { stored: s, computed } if s == stored && computed != stored),
        "{err:?}"
    );
    // A flipped byte in the padding between tensors is caught too.
    let mut bytes = build();
    let e = entry(&bytes, 1);
    let pad = (e.data_offset + e.data_size) as usize;
    assert!(pad < entry(&bytes, 2).data_offset as usize);
    bytes[pad] ^= 1;
    assert!(matches!(load_err(&bytes), Error::ChecksumMismatch { .. }));
}

#[test]
fn wrong_checksum_field() {
    // The checksum field itself edited without re-sealing.
    let mut bytes = build();
    let mut h = header(&bytes);
    h.checksum ^= 0xDEAD_BEEF;
    set_header(&mut bytes, &h);
    let err = load_err(&bytes);
    assert!(
        matches!(err, Error::ChecksumMismatch { stored, computed } if stored == h.checksum && computed == h.checksum ^ 0xDEAD_BEEF),
        "{err:?}"
    );
}

#[test]
fn misaligned_buffer() {
    let bytes = build();
    for shift in 1..4 {
        let mut shifted = vec![0u8; shift];
        shifted.extend_from_slice(&bytes);
        let storage = AlignedBytes::from_slice(&shifted);
        let view = &storage.as_bytes()[shift..];
        assert_eq!(view, &bytes[..]);
        assert_ne!(view.as_ptr() as usize % 4, 0);
        let err = Model::from_bytes(view).unwrap_err();
        assert!(matches!(err, Error::Misaligned { what: "model buffer", align: 4 }), "shift {shift}: {err:?}");
    }
}

// ---------------------------------------------------------------------------
// Sections and tensor placement
// ---------------------------------------------------------------------------

#[test]
fn tensor_offset_not_64_aligned() {
    for delta in [4u64, 1, 32, 60] {
        let err = with_entry(3, |e| e.data_offset += delta);
        assert!(matches!(err, Error::Misaligned { what: "tensor data", align: 64 }), "delta {delta}: {err:?}");
    }
}

#[test]
fn tensor_offset_beyond_file() {
    let len = build().len() as u64;
    let past = len.next_multiple_of(64) + 64;
    let err = with_entry(2, |e| e.data_offset = past);
    assert!(matches!(err, Error::OutOfBounds { what: "tensor data", offset, len: 256 } if offset == past), "{err:?}");
    // The last tensor sticking out of the file by a few bytes.
    let last = tensor_count(&base_cfg()) - 1;
    let err = with_entry(last, |e| e.data_offset = len.next_multiple_of(64));
    assert!(matches!(err, Error::OutOfBounds { what: "tensor data", .. }), "{err:?}");
}

#[test]
fn tensor_offset_plus_size_overflows() {
    // u64::MAX rounded down to 64: aligned, and offset + 256 overflows u64.
    let huge = !63u64;
    let err = with_entry(0, |e| e.data_offset = huge);
    assert!(matches!(err, Error::OutOfBounds { what: "tensor data", offset, len: 256 } if offset == huge), "{err:?}");
    // u64::MAX - 10 is not 64-aligned, so alignment is what rejects it first; either
    // way it is a typed error, never an overflow panic.
    let err = with_entry(0, |e| e.data_offset = u64::MAX - 10);
    assert!(
        matches!(err, Error::Misaligned { what: "tensor data", .. } | Error::OutOfBounds { what: "tensor data", .. }),
        "{err:?}"
    );
}

#[test]
fn overlapping_tensors() {
    let bytes = build();
    let first = entry(&bytes, 0).data_offset;
    let err = with_entry(1, |e| e.data_offset = first);
    assert!(matches!(err, Error::Overlap { what: "tensor data", index: 1 }), "{err:?}");
    // Partial overlap: tensor 3 starting inside tensor 2 (a 256-byte matrix).
    let t2 = entry(&bytes, 2);
    let err = with_entry(3, |e| e.data_offset = t2.data_offset + 64);
    assert!(matches!(err, Error::Overlap { what: "tensor data", index: 3 }), "{err:?}");
    // A tensor placed over the metadata/directory area.
    let h = header(&bytes);
    let inside_dir = (h.directory_offset + 64).next_multiple_of(64);
    let err = with_entry(0, |e| e.data_offset = inside_dir);
    assert!(matches!(err, Error::Overlap { what: "tensor data", index: 0 }), "{err:?}");
}

#[test]
fn config_offset_inside_header() {
    for off in [0u64, 8, 63] {
        let err = with_header(|h| h.config_offset = off);
        assert!(matches!(err, Error::Overlap { what: "config section", .. }), "config_offset {off}: {err:?}");
    }
}

#[test]
fn config_out_of_bounds_or_short() {
    let err = with_header(|h| h.config_offset = u64::MAX - 4);
    assert!(matches!(err, Error::OutOfBounds { what: "config section", .. }), "{err:?}");
    let err = with_header(|h| h.config_size = 64);
    assert!(matches!(err, Error::BadConfig { field: "config_size", value: 64 }), "{err:?}");
    let err = with_header(|h| h.config_size = u32::MAX);
    assert!(matches!(err, Error::OutOfBounds { what: "config section", .. }), "{err:?}");
}

#[test]
fn directory_overlapping_config() {
    // The config occupies [64, 192); a directory at 128 overlaps it.
    let err = with_header(|h| h.directory_offset = 128);
    assert!(matches!(err, Error::Overlap { what: "tensor directory", .. }), "{err:?}");
    let err = with_header(|h| h.directory_offset = 0);
    assert!(matches!(err, Error::Overlap { what: "tensor directory", .. }), "{err:?}");
}

#[test]
fn directory_out_of_bounds() {
    let len = build().len() as u64;
    let err = with_header(|h| h.directory_offset = len);
    assert!(matches!(err, Error::OutOfBounds { what: "tensor directory", .. }), "{err:?}");
    let err = with_header(|h| h.directory_offset = u64::MAX - 100);
    assert!(matches!(err, Error::OutOfBounds { what: "tensor directory", .. }), "{err:?}");
}

#[test]
fn metadata_section_overlapping_or_out_of_bounds() {
    let bytes = build();
    let h0 = header(&bytes);
    let err = with_header(|h| h.metadata_offset = h0.directory_offset + 64);
    assert!(matches!(err, Error::Overlap { what: "metadata section", .. }), "{err:?}");
    let err = with_header(|h| h.metadata_offset = u64::MAX - 2);
    assert!(matches!(err, Error::OutOfBounds { what: "metadata section", .. }), "{err:?}");
    let err = with_header(|h| h.metadata_size = u32::MAX);
    assert!(matches!(err, Error::OutOfBounds { what: "metadata section", .. }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Config values
// ---------------------------------------------------------------------------

#[test]
fn huge_d_model() {
    let err = with_config_bytes(CFG_D_MODEL, &(1u32 << 30).to_le_bytes());
    assert!(
        matches!(
            err,
            Error::BadConfig {
                field: "d_model",
                value
            } if value == 1 << 30
        ),
        "{err:?}"
    );
    let err = with_config_bytes(CFG_D_MODEL, &0u32.to_le_bytes());
    assert!(matches!(err, Error::BadConfig { field: "d_model", value: 0 }), "{err:?}");
    let err = with_config_bytes(CFG_D_FF, &u32::MAX.to_le_bytes());
    assert!(matches!(err, Error::BadConfig { field: "d_ff", .. }), "{err:?}");
}

#[test]
fn huge_head_product() {
    // n_heads = 2^24 passes the per-dim bound, but n_heads * d_query does not.
    let err = with_config_bytes(CFG_N_HEADS, &(1u32 << 24).to_le_bytes());
    assert!(matches!(err, Error::BadConfig { field: "n_heads*d_query", .. }), "{err:?}");
}

#[test]
fn bad_layer_counts() {
    for n in [0u32, 1_000_000, u32::MAX] {
        let err = with_config_bytes(CFG_N_LAYERS, &n.to_le_bytes());
        assert!(
            matches!(err, Error::BadConfig { field: "n_layers", value } if value == n as u64),
            "n_layers {n}: {err:?}"
        );
    }
}

#[test]
fn feature_dim_must_equal_d_query() {
    let err = with_config_bytes(CFG_FEATURE_DIM, &5u32.to_le_bytes());
    assert!(matches!(err, Error::BadConfig { value: 5, .. }), "{err:?}");
}

#[test]
fn non_finite_eps() {
    let err = with_config_bytes(CFG_ATTENTION_EPS, &f32::NAN.to_le_bytes());
    assert!(matches!(err, Error::BadConfig { field: "attention_eps", .. }), "{err:?}");
}

#[test]
fn tensor_count_mismatch() {
    for n in [33u32, 35, 0, u32::MAX] {
        let err = with_header(|h| h.tensor_count = n);
        assert!(
            matches!(err, Error::BadConfig { field: "tensor_count", value } if value == n as u64),
            "tensor_count {n}: {err:?}"
        );
    }
}

#[test]
fn inconsistent_config_changes_tensor_count() {
    // A valid config change (final_norm off) implies 32 tensors, not the 34 stored.
    let err = with_config_bytes(CFG_FINAL_NORM, &[0]);
    assert!(matches!(err, Error::BadConfig { field: "tensor_count", value: 34 }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Unknown enum codes
// ---------------------------------------------------------------------------

#[test]
fn unknown_activation() {
    let err = with_config_bytes(CFG_ACTIVATION, &[9]);
    assert!(matches!(err, Error::UnknownEnum { field: "config.activation", value: 9 }), "{err:?}");
}

#[test]
fn unknown_feature_map() {
    let err = with_config_bytes(CFG_FEATURE_MAP, &[6]);
    assert!(matches!(err, Error::UnknownEnum { field: "config.feature_map", value: 6 }), "{err:?}");
}

#[test]
fn random_feature_map_without_its_constants() {
    // An elu+1 file relabelled Favor: its Ω is missing and so is every constant;
    // the constants are checked first.
    let err = with_config_bytes(CFG_FEATURE_MAP, &[2]);
    assert!(matches!(err, Error::BadConfig { field: "feature_params.input_scale", .. }), "{err:?}");
}

#[test]
fn reserved_feature_constants_must_be_zero_for_elu() {
    let err = with_config_bytes(CFG_FEATURE_INPUT_SCALE, &1f32.to_le_bytes());
    assert!(matches!(err, Error::BadConfig { field: "feature_params.input_scale", .. }), "{err:?}");
}

#[test]
fn unknown_final_norm() {
    let err = with_config_bytes(CFG_FINAL_NORM, &[2]);
    assert!(matches!(err, Error::UnknownEnum { field: "config.final_norm", value: 2 }), "{err:?}");
}

#[test]
fn unknown_other_config_enums() {
    let cases: [(usize, u8, &str); 5] = [
        (CFG_NORM_PLACEMENT, 3, "config.norm_placement"),
        (CFG_INPUT_KIND, 2, "config.input_kind"),
        (CFG_INPUT_PROJECTION, 7, "config.input_projection"),
        (CFG_OUTPUT_KIND, 200, "config.output_kind"),
        (CFG_POSITIONAL, 2, "config.positional"),
    ];
    for (at, code, name) in cases {
        let err = with_config_bytes(at, &[code]);
        assert!(
            matches!(err, Error::UnknownEnum { field, value } if field == name && value == code as u32),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn unknown_tensor_dtype() {
    let err = with_entry(0, |e| e.dtype = 7);
    assert!(matches!(err, Error::UnknownEnum { field: "tensor.dtype", value: 7 }), "{err:?}");
}

#[test]
fn unknown_tensor_layout() {
    let err = with_entry(0, |e| e.layout = 3);
    assert!(matches!(err, Error::UnknownEnum { field: "tensor.layout", value: 3 }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Directory entries against the config
// ---------------------------------------------------------------------------

#[test]
fn wrong_role_at_index() {
    let err = with_entry(0, |e| e.role = TensorRole::KeyWeight as u16);
    assert!(
        matches!(
            err,
            Error::UnexpectedTensor {
                index: 0,
                expected: TensorRole::QueryWeight,
                expected_layer: 0,
                found_role: 18,
                found_layer: 0
            }
        ),
        "{err:?}"
    );
    // A role code that names no role at all.
    let err = with_entry(5, |e| e.role = 999);
    assert!(
        matches!(err, Error::UnexpectedTensor { index: 5, expected: TensorRole::ValueBias, found_role: 999, .. }),
        "{err:?}"
    );
    // Right role, wrong layer: index 16 is layer 1's query weight.
    let err = with_entry(16, |e| e.layer = 0);
    assert!(
        matches!(
            err,
            Error::UnexpectedTensor {
                index: 16,
                expected: TensorRole::QueryWeight,
                expected_layer: 1,
                found_layer: 0,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn dims_changed() {
    let err = with_entry(0, |e| e.dims = [8, 9]);
    assert!(
        matches!(
            err,
            Error::ShapeMismatch { role: TensorRole::QueryWeight, layer: 0, expected: [8, 8], found: [8, 9] }
        ),
        "{err:?}"
    );
    // Index 8 is linear1.weight [d_ff, d_model] = [16, 8]; transposed is wrong.
    let err = with_entry(8, |e| e.dims = [8, 16]);
    assert!(
        matches!(err, Error::ShapeMismatch { role: TensorRole::Linear1Weight, expected: [16, 8], found: [8, 16], .. }),
        "{err:?}"
    );
    let err = with_entry(0, |e| e.rank = 1);
    assert!(matches!(err, Error::ShapeMismatch { role: TensorRole::QueryWeight, found: [1, 0], .. }), "{err:?}");
    let err = with_entry(0, |e| e.dims = [u32::MAX, u32::MAX]);
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
}

#[test]
fn data_size_changed() {
    for size in [260u64, 252, 0, u64::MAX] {
        let err = with_entry(0, |e| e.data_size = size);
        assert!(
            matches!(
                err,
                Error::SizeMismatch {
                    role: TensorRole::QueryWeight,
                    layer: 0,
                    expected: 256,
                    found
                } if found == size
            ),
            "data_size {size}: {err:?}"
        );
    }
}

/// A base model whose matrices are stored as `dtype` (block 0 = per-row int8 scales).
fn build_quantized(dtype: linrt::DType, block: u32) -> Vec<u8> {
    let mut w = full_writer(&base_cfg());
    w.weight_dtype(dtype, block);
    w.to_bytes().expect("valid model serialises")
}

#[test]
fn quantized_matrices_load_and_are_checked() {
    use linrt::kernels::Weights;
    for (dtype, block) in [(linrt::DType::F16, 0), (linrt::DType::I8, 0), (linrt::DType::I8, 4)] {
        let bytes = AlignedBytes::from_slice(&build_quantized(dtype, block));
        let model = bytes.model().unwrap();
        assert_eq!(model.weight_dtype(), dtype);
        let m = model.matrix(TensorRole::QueryWeight, 0).unwrap();
        match (dtype, m.weights) {
            (linrt::DType::F16, Weights::F16(w)) => assert_eq!(w.len(), 64),
            // Per-row int8 is stored packed: 8 rows × 64 padded columns.
            (linrt::DType::I8, Weights::I8Packed { q, scales }) if block == 0 => {
                assert_eq!((q.len(), scales.len()), (512, 8));
            }
            (linrt::DType::I8, Weights::I8 { q, scales, block: b }) => {
                assert_eq!((q.len(), b), (64, block as usize));
                assert_eq!(scales.len(), 16);
            }
            other => panic!("{other:?}"),
        }
        // Vectors stay f32 and are not readable as matrices of another type.
        assert!(model.f32_tensor(TensorRole::QueryBias, 0).is_ok());
        assert!(matches!(model.f32_tensor(TensorRole::QueryWeight, 0), Err(Error::UnsupportedDType { .. })));
    }
    // f16 without halving the size is a size mismatch, not silently accepted.
    let err = with_entry(0, |e| e.dtype = 1);
    assert!(matches!(err, Error::SizeMismatch { expected: 128, found: 256, .. }), "{err:?}");
}

#[test]
fn f16_nan_and_int8_out_of_range_values_are_refused() {
    // An f16 NaN in the first matrix.
    let mut bytes = build_quantized(linrt::DType::F16, 0);
    let at = entry(&bytes, 0).data_offset as usize;
    bytes[at..at + 2].copy_from_slice(&0x7E00u16.to_le_bytes());
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::NonFiniteWeight { role: TensorRole::QueryWeight, .. }));
    // -128 is outside the symmetric int8 range the kernels rely on.
    let mut bytes = build_quantized(linrt::DType::I8, 0);
    let at = entry(&bytes, 0).data_offset as usize;
    bytes[at] = 0x80;
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadTensor { index: 0, .. }));
    // Negative or infinite scales.
    for bad in [-1.0f32, f32::INFINITY] {
        let mut bytes = build_quantized(linrt::DType::I8, 0);
        let at = entry(&bytes, 0).scales_offset as usize;
        bytes[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        seal(&mut bytes);
        assert!(matches!(load_err(&bytes), Error::NonFiniteWeight { .. }), "scale {bad}");
    }
}

#[test]
fn int8_scales_are_validated() {
    // 8x8 int8 = 64 data bytes, per-row scales = 8 * 4 bytes placed right after.
    let err = with_entry(0, |e| {
        e.dtype = 2;
        e.data_size = 64;
        e.scales_offset = e.data_offset + 64;
        e.scales_size = 31;
    });
    assert!(matches!(err, Error::SizeMismatch { expected: 32, found: 31, .. }), "{err:?}");
    // int8 with scales overlapping its own data.
    let err = with_entry(0, |e| {
        e.dtype = 2;
        e.data_size = 64;
        e.scales_offset = e.data_offset;
        e.scales_size = 32;
    });
    assert!(matches!(err, Error::Overlap { what: "tensor scales", index: 0 }), "{err:?}");
    // int8 with scales at an overflowing offset.
    let err = with_entry(0, |e| {
        e.dtype = 2;
        e.data_size = 64;
        e.scales_offset = !63u64;
        e.scales_size = 32;
    });
    assert!(matches!(err, Error::OutOfBounds { what: "tensor scales", .. }), "{err:?}");
}

#[test]
fn embedding_must_stay_f32() {
    let mut cfg = base_cfg();
    cfg.input_kind = InputKind::Tokens;
    cfg.input_dim = 5;
    let mut w = full_writer(&cfg);
    w.weight_dtype(linrt::DType::F16, 0);
    let mut bytes = w.to_bytes().unwrap();
    // The writer keeps the embedding f32; forcing f16 there is refused.
    let mut e = entry(&bytes, 0);
    assert_eq!(e.dtype, 0);
    e.dtype = 1;
    e.data_size /= 2;
    set_entry(&mut bytes, 0, &e);
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::UnsupportedDType { role: TensorRole::Embedding, dtype: 1 }));
}

#[test]
fn f16_bias_is_unsupported() {
    // Index 1 is the query bias (a vector): f16 is not allowed there at all.
    let err = with_entry(1, |e| {
        e.dtype = 1;
        e.data_size /= 2;
    });
    assert!(matches!(err, Error::UnsupportedDType { role: TensorRole::QueryBias, dtype: 1 }), "{err:?}");
    let err = with_entry(1, |e| e.dtype = 1);
    assert!(matches!(err, Error::UnsupportedDType { role: TensorRole::QueryBias, dtype: 1 }), "{err:?}");
}

#[test]
fn scales_on_f32_tensor() {
    let expect_bad = |err: Error| {
        assert!(matches!(err, Error::BadTensor { index: 0, reason: "only int8 tensors have scales" }), "{err:?}")
    };
    expect_bad(with_entry(0, |e| {
        e.scales_offset = e.data_offset + 256;
        e.scales_size = 32;
    }));
    expect_bad(with_entry(0, |e| e.block_size = 32));
    expect_bad(with_entry(0, |e| e.scales_size = 4));
    expect_bad(with_entry(0, |e| e.scales_offset = 64));
}

#[test]
fn nan_weight() {
    let mut bytes = build();
    // Index 5 is layer 0's value bias.
    let at = entry(&bytes, 5).data_offset as usize + 12;
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    seal(&mut bytes);
    let err = load_err(&bytes);
    assert!(matches!(err, Error::NonFiniteWeight { role: TensorRole::ValueBias, layer: 0 }), "{err:?}");
    // Infinity in the last element of the last layer's linear2 weight.
    let mut bytes = build();
    let e = entry(&bytes, 16 + 10);
    let at = (e.data_offset + e.data_size - 4) as usize;
    bytes[at..at + 4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    seal(&mut bytes);
    let err = load_err(&bytes);
    assert!(matches!(err, Error::NonFiniteWeight { role: TensorRole::Linear2Weight, layer: 1 }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------

fn meta_file() -> Vec<u8> {
    build_with(&base_cfg(), &[("k1", "value one"), ("k2", "v2")])
}

#[test]
fn metadata_invalid_utf8_key() {
    let mut bytes = meta_file();
    let base = header(&bytes).metadata_offset;
    // count (4) + key_len (2) -> first key byte.
    bytes[base as usize + 6] = 0xFF;
    seal(&mut bytes);
    let err = load_err(&bytes);
    assert!(matches!(err, Error::BadMetadata { offset } if offset == base + 4), "{err:?}");
}

#[test]
fn metadata_invalid_utf8_value() {
    let mut bytes = meta_file();
    let base = header(&bytes).metadata_offset as usize;
    // count (4) + key_len (2) + "k1" (2) + value_len (4) -> first value byte.
    bytes[base + 12] = 0xC3; // a lead byte followed by 'a': invalid
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadMetadata { .. }));
}

#[test]
fn metadata_count_larger_than_entries() {
    let mut bytes = meta_file();
    let h = header(&bytes);
    let base = h.metadata_offset as usize;
    for count in [3u32, 1000, u32::MAX] {
        bytes[base..base + 4].copy_from_slice(&count.to_le_bytes());
        seal(&mut bytes);
        let err = load_err(&bytes);
        assert!(
            matches!(err, Error::BadMetadata { offset } if offset == h.metadata_offset + h.metadata_size as u64),
            "count {count}: {err:?}"
        );
    }
}

#[test]
fn metadata_count_smaller_than_entries() {
    let mut bytes = meta_file();
    let base = header(&bytes).metadata_offset as usize;
    bytes[base..base + 4].copy_from_slice(&1u32.to_le_bytes());
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadMetadata { .. }));
}

#[test]
fn metadata_lengths_out_of_range() {
    // A key length pointing past the section.
    let mut bytes = meta_file();
    let base = header(&bytes).metadata_offset as usize;
    bytes[base + 4..base + 6].copy_from_slice(&u16::MAX.to_le_bytes());
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadMetadata { .. }));
    // A value length pointing far past the section.
    let mut bytes = meta_file();
    bytes[base + 8..base + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadMetadata { .. }));
    // A section too short to hold the count.
    let err = with_header(|h| h.metadata_size = 2);
    assert!(matches!(err, Error::BadMetadata { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Writer side
// ---------------------------------------------------------------------------

#[test]
fn writer_missing_tensor() {
    let cfg = base_cfg();
    let mut w = LrtWriter::new(cfg);
    for i in 0..tensor_count(&cfg) {
        if i == 3 {
            continue;
        }
        let spec = expected_tensor(&cfg, i).unwrap();
        let n = spec.dims[0] as usize * spec.dims[1] as usize;
        w.tensor(spec.role, spec.layer, tensor_values(i, n));
    }
    let err = w.to_bytes().unwrap_err();
    assert!(matches!(err, Error::MissingTensor { role: TensorRole::KeyBias, layer: 0 }), "{err:?}");
    // A tensor registered for a layer the config does not have does not count.
    w.tensor(TensorRole::KeyBias, 7, vec![0.0; 8]);
    assert!(matches!(w.to_bytes().unwrap_err(), Error::MissingTensor { .. }));
    let err = LrtWriter::new(cfg).to_bytes().unwrap_err();
    assert!(matches!(err, Error::MissingTensor { .. }), "{err:?}");
}

#[test]
fn writer_wrong_length() {
    let cfg = base_cfg();
    let mut w = full_writer(&cfg);
    w.tensor(TensorRole::Linear1Weight, 1, vec![0.5; 16 * 8 - 1]);
    let err = w.to_bytes().unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { role: TensorRole::Linear1Weight, layer: 1, expected: 512, found: 508 }),
        "{err:?}"
    );
    w.tensor(TensorRole::Linear1Weight, 1, vec![0.5; 16 * 8 + 1]);
    assert!(matches!(w.to_bytes().unwrap_err(), Error::SizeMismatch { .. }));
}

#[test]
fn writer_nan_weight() {
    let cfg = base_cfg();
    let mut w = full_writer(&cfg);
    let mut v = vec![0.25; 8];
    v[3] = f32::NAN;
    w.tensor(TensorRole::Norm2Bias, 0, v);
    let err = w.to_bytes().unwrap_err();
    assert!(matches!(err, Error::NonFiniteWeight { role: TensorRole::Norm2Bias, layer: 0 }), "{err:?}");
    let mut w = full_writer(&cfg);
    w.tensor(TensorRole::FinalNormWeight, 0, vec![f32::INFINITY; 8]);
    assert!(matches!(w.to_bytes().unwrap_err(), Error::NonFiniteWeight { role: TensorRole::FinalNormWeight, .. }));
}

#[test]
fn writer_rejects_bad_config() {
    let mut cfg = base_cfg();
    cfg.n_layers = 0;
    let err = LrtWriter::new(cfg).to_bytes().unwrap_err();
    assert!(matches!(err, Error::BadConfig { field: "n_layers", value: 0 }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Fuzz-style corruption
// ---------------------------------------------------------------------------

/// Corrupts one byte in `region` of `valid` per iteration, re-seals, and requires
/// Ok-with-readable-tensors or a typed error, never a panic.
/// `may_load(at)` says whether a corruption at byte `at` may legitimately still load.
fn fuzz_region(
    valid: &[u8],
    region: std::ops::Range<usize>,
    iterations: usize,
    seed: u64,
    may_load: impl Fn(usize) -> bool,
) -> usize {
    let mut rng = linrt::rng::Rng::from_state(seed);
    let mut accepted = 0;
    for iter in 0..iterations {
        let r = rng.next_u64();
        let at = region.start + (r % region.len() as u64) as usize;
        // A non-zero xor mask, so the byte always changes.
        let mask = ((r >> 32) % 255 + 1) as u8;
        let mut bytes = valid.to_vec();
        bytes[at] ^= mask;
        seal(&mut bytes);
        let aligned = AlignedBytes::from_slice(&bytes);
        let what = format!("iteration {iter}: byte {at} ^= {mask:#04x}");
        let outcome = catch_unwind(AssertUnwindSafe(|| match aligned.model() {
            Ok(model) => {
                exercise(&model);
                true
            }
            Err(e) => {
                // Every error must be displayable (Display must not panic either).
                assert!(!e.to_string().is_empty());
                false
            }
        }));
        match outcome {
            Ok(true) => {
                assert!(may_load(at), "corruption in a checked field loaded: {what}");
                accepted += 1;
            }
            Ok(false) => {}
            Err(_) => panic!("panic on {what}"),
        }
    }
    accepted
}

#[test]
fn fuzz_single_byte_corruptions() {
    let valid = build();
    let h = header(&valid);
    // Header, config and directory: everything before the metadata section.
    let region = 0..h.metadata_offset as usize;
    assert_eq!(region.end, 64 + 128 + 34 * 64);
    let dir = h.directory_offset as usize;
    // Bytes the version 1.0 reader does not interpret: the minor version, the
    // checksum field (re-sealed), the two epsilons (any finite non-negative value is
    // valid), padding and the reserved tails of the config and of each entry (space
    // for later minor versions). A corruption anywhere else must be rejected.
    let may_load = |at: usize| match at {
        6..=7 | 60..=63 => true,
        64..=191 => matches!(at - 64, 32..=39 | 42..=43 | 49..=51 | 56..=127),
        _ if at >= dir => matches!((at - dir) % 64, 7 | 52..=63),
        _ => false,
    };
    let accepted = fuzz_region(&valid, region, 2000, 0x9E37_79B9_7F4A_7C15, may_load);
    eprintln!("fuzz: {accepted} of 2000 single-byte corruptions still load");
    assert!(accepted < 1000, "{accepted} of 2000 corruptions accepted");
}

#[test]
fn fuzz_single_byte_corruptions_with_metadata() {
    let mut cfg = ModelConfig::new(8, 1, 2, 16);
    cfg.input_kind = InputKind::Tokens;
    cfg.input_dim = 10;
    cfg.output_kind = OutputKind::Linear;
    cfg.output_dim = 10;
    let valid = build_with(&cfg, &[("vocab", "a b c d e f g h i j"), ("x", "y")]);
    let h = header(&valid);
    let region = 0..(h.metadata_offset + h.metadata_size as u64) as usize;
    // Metadata strings may change into other valid UTF-8; only "never panic" here.
    fuzz_region(&valid, region, 1000, 0x0123_4567_89AB_CDEF, |_| true);
}

#[test]
fn packed_layout_is_only_for_per_row_int8() {
    // f16 data declared as packed.
    let mut bytes = build_quantized(linrt::DType::F16, 0);
    let mut e = entry(&bytes, 0);
    e.layout = 1;
    set_entry(&mut bytes, 0, &e);
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadTensor { index: 0, .. }));
    // Packed int8 with the unpadded (row-major) size.
    let mut bytes = build_quantized(linrt::DType::I8, 0);
    let mut e = entry(&bytes, 0);
    assert_eq!(e.layout, 1);
    e.data_size = 64;
    set_entry(&mut bytes, 0, &e);
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::SizeMismatch { expected: 512, found: 64, .. }));
}

#[test]
fn int8_matrices_wider_than_the_accumulator_bound_are_refused() {
    // linear2 is [d_model, d_ff]: 131 073 columns could overflow an i32 sum of
    // 127 · 127 products, so neither the writer nor the reader accepts it as int8.
    let mut cfg = ModelConfig::new(4, 1, 1, 131_073);
    cfg.final_norm = false;
    let mut w = full_writer(&cfg);
    w.weight_dtype(linrt::DType::I8, 0);
    assert!(matches!(w.to_bytes(), Err(Error::BadTensor { .. })));
    cfg.d_ff = 131_072;
    let mut w = full_writer(&cfg);
    w.weight_dtype(linrt::DType::I8, 0);
    assert!(w.to_bytes().is_ok());
}

// ---------------------------------------------------------------------------
// Random-feature maps (format 1.2)
// ---------------------------------------------------------------------------

/// A Favor model of the base shape: 16 features per head (Ω [8, 4] per layer).
fn favor_cfg() -> ModelConfig {
    ModelConfig {
        feature_map: linrt::FeatureMap::Favor,
        feature_dim: 8,
        feature_params: linrt::FeatureParams { input_scale: 0.5, log_offset: 1.0, ..Default::default() },
        ..base_cfg()
    }
}

#[test]
fn random_feature_maps_load_and_need_consistent_widths() {
    let bytes = build_with(&favor_cfg(), &[]);
    load_no_panic(&bytes, "a valid Favor model").expect("loads");
    use linrt::FeatureMap::*;
    // Favor and random Fourier: an even width; smoothed: odd; generalized: any but 0.
    for (map, width) in [(Favor, 7), (RandomFourier, 5), (SmoothedRandomFourier, 8), (GeneralizedRandom, 0)] {
        let mut cfg = favor_cfg();
        cfg.feature_map = map;
        cfg.feature_dim = width;
        cfg.feature_params = linrt::FeatureParams {
            input_scale: 0.5,
            output_scale: if matches!(map, RandomFourier | SmoothedRandomFourier) { 0.5 } else { 0.0 },
            log_offset: if map == Favor { 1.0 } else { 0.0 },
            smoothing: 0.0,
        };
        let err = cfg.validate().unwrap_err();
        assert!(
            matches!(err, Error::BadConfig { field: "feature_dim (for this feature map)", .. }),
            "{map:?}: {err:?}"
        );
    }
    // The same in a file: the width patched to an odd one.
    let mut bytes = build_with(&favor_cfg(), &[]);
    let at = header(&bytes).config_offset as usize + CFG_FEATURE_DIM;
    bytes[at..at + 4].copy_from_slice(&7u32.to_le_bytes());
    seal(&mut bytes);
    assert!(matches!(load_err(&bytes), Error::BadConfig { value: 7, .. }));
}

#[test]
fn omega_must_be_stored_as_f32() {
    let mut bytes = build_with(&favor_cfg(), &[]);
    let omega = 16; // layer 0's 17th tensor (no input block)
    let mut e = entry(&bytes, omega);
    assert_eq!(e.role, TensorRole::FeatureOmega as u16);
    e.dtype = linrt::DType::F16 as u8;
    set_entry(&mut bytes, omega, &e);
    seal(&mut bytes);
    let err = load_err(&bytes);
    assert!(matches!(err, Error::UnsupportedDType { role: TensorRole::FeatureOmega, .. }), "{err:?}");
}
