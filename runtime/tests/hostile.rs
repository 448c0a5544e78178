//! Files and streams written to hurt: each case a defect the first fuzzing probe
//! found (issue 19), kept so it stays fixed.

mod common;

use common::{random_model, random_model_dtype, Arena};
use linrt::format::{expected_tensor, tensor_count};
use linrt::{
    AlignedBytes, DType, Error, Input, InputKind, KernelPath, Kernels, LrtWriter, ModelConfig, OutputKind, Session,
    SessionOptions,
};

/// One head with query and value widths of 2^18 and d_model 1: a 5 MB file that
/// asked for a 275 GB state (and with 2^15, a quiet 4.2 GB). The state must be
/// paid for by the layer's weights.
#[test]
fn a_state_the_weights_do_not_pay_for_is_refused() {
    for width in [1u32 << 18, 1 << 15] {
        let mut cfg = ModelConfig::new(1, 1, 1, 1);
        cfg.d_query = width;
        cfg.d_value = width;
        match cfg.validate() {
            Err(Error::BadConfig { field, value }) => {
                assert!(field.starts_with("state floats per layer"), "{field}");
                assert_eq!(value, width as u64 * (width as u64 + 1));
            }
            other => panic!("width {width}: {other:?}"),
        }
        assert!(matches!(LrtWriter::new(cfg).to_bytes(), Err(Error::BadConfig { .. })));
    }
    // Real shapes are far inside the bound: 256 wide, 4 heads of 64.
    ModelConfig::new(256, 4, 4, 1024).validate().unwrap();
    // So are narrow layers with wide heads.
    let mut cfg = ModelConfig::new(8, 1, 1, 8);
    cfg.d_query = 32;
    cfg.d_value = 32;
    cfg.validate().unwrap();
}

/// Every weight 1.7e38: finite, so the file validates, but the first step
/// overflows. The step must say so (not return NaN as Ok), the broken stream must
/// refuse to step or be saved, and reset or restore must bring it back.
#[test]
fn a_step_that_overflows_is_reported_and_never_saved() {
    for dtype in [DType::F32, DType::I8] {
        let mut cfg = ModelConfig::new(8, 2, 2, 16);
        cfg.input_kind = InputKind::Tokens;
        cfg.input_dim = 5;
        cfg.output_kind = OutputKind::Linear;
        cfg.output_dim = 3;
        let mut w = LrtWriter::new(cfg);
        for i in 0..tensor_count(&cfg) {
            let spec = expected_tensor(&cfg, i).unwrap();
            let n = spec.dims[0] as usize * spec.dims[1] as usize;
            w.tensor(spec.role, spec.layer, (0..n).map(|j| if j % 3 == 0 { -1.7e38 } else { 1.7e38 }).collect());
        }
        w.weight_dtype(dtype, 0);
        let bytes = AlignedBytes::from_slice(&w.to_bytes().unwrap());
        let model = bytes.model().unwrap();
        for path in [KernelPath::Scalar, Kernels::detect().path()] {
            let opts = SessionOptions { kernels: Some(path), ..SessionOptions::default() };
            let mut arena = Arena::new(model.arena_bytes(opts).unwrap());
            let mut s = Session::new(&model, arena.bytes(), opts).unwrap();
            let mut fresh = vec![0u8; s.state_bytes()];
            s.save_state(&mut fresh).unwrap();
            let mut out = [0f32; 3];
            let broke = Err(Error::NonFiniteStep { position: 0 });
            assert_eq!(s.step(Input::Token(1), &mut out), broke, "{dtype:?} {path:?}");
            assert_eq!(s.step(Input::Token(1), &mut out), broke, "a broken stream stays broken");
            let mut saved = vec![0u8; s.state_bytes()];
            assert_eq!(
                s.save_state(&mut saved),
                Err(Error::NonFiniteStep { position: 0 }),
                "a broken state is not saved"
            );
            s.restore_state(&fresh).unwrap();
            assert_eq!(s.position(), 0);
            assert_eq!(s.step(Input::Token(2), &mut out), broke, "restored, it steps (and breaks) again");
            s.reset();
            assert_eq!(s.save_state(&mut saved).unwrap(), saved.len(), "reset mends it");
            s.restore_state(&saved).unwrap();
        }
    }
}

/// Whatever `save_state` writes, `restore_state` takes, after any number of steps
/// of ordinary models (and the restored stream continues bit for bit).
#[test]
fn every_saved_state_restores() {
    let mut cfg = ModelConfig::new(16, 2, 2, 32);
    cfg.input_kind = InputKind::Tokens;
    cfg.input_dim = 9;
    for (seed, dtype) in [(1, DType::F32), (2, DType::I8), (3, DType::F16)] {
        let bytes = AlignedBytes::from_slice(&if dtype == DType::F32 {
            random_model(&cfg, seed)
        } else {
            random_model_dtype(&cfg, seed, dtype)
        });
        let model = bytes.model().unwrap();
        let opts = SessionOptions::default();
        let (mut a1, mut a2) =
            (Arena::new(model.arena_bytes(opts).unwrap()), Arena::new(model.arena_bytes(opts).unwrap()));
        let mut a = Session::new(&model, a1.bytes(), opts).unwrap();
        let mut b = Session::new(&model, a2.bytes(), opts).unwrap();
        let (mut out_a, mut out_b) = (vec![0f32; 16], vec![0f32; 16]);
        let mut saved = vec![0u8; a.state_bytes()];
        for step in 0..200u32 {
            a.step(Input::Token(step * 7 % 9), &mut out_a).unwrap();
            if step % 37 == 0 {
                a.save_state(&mut saved).unwrap();
                b.restore_state(&saved).unwrap();
                a.step(Input::Token(3), &mut out_a).unwrap();
                b.step(Input::Token(3), &mut out_b).unwrap();
                assert_eq!(out_a, out_b, "{dtype:?} step {step}");
            }
        }
    }
}
