//! The step loop never touches the heap: a counting global allocator watches
//! 10,000 recurrent steps and a run of causal chunks.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use linrt::{Input, Inputs, ModelConfig, Session, SessionOptions};

struct Counting;

thread_local! {
    // Per thread: the test harness's own threads allocate concurrently.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(|c| c.get())
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn no_allocation_in_the_step_loop() {
    let mut cfg = ModelConfig::new(32, 2, 4, 64);
    cfg.input_kind = linrt::InputKind::Tokens;
    cfg.input_dim = 17;
    cfg.output_kind = linrt::OutputKind::Linear;
    cfg.output_dim = 17;
    for dtype in [linrt::DType::F32, linrt::DType::F16, linrt::DType::I8] {
        let bytes = linrt::AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 3, dtype));
        let model = bytes.model().unwrap();
        let opts = SessionOptions { max_chunk: 8, ..SessionOptions::default() };
        let mut arena = vec![0u8; model.arena_bytes(opts).unwrap()];
        let mut session = Session::new(&model, &mut arena, opts).unwrap();
        let mut out = vec![0f32; 17];
        let mut chunk_out = vec![0f32; 8 * 17];
        let ids: Vec<u32> = (0..8).collect();
        let mut state = vec![0u8; session.state_bytes()];

        let before = allocations();
        for i in 0..10_000u32 {
            session.step(Input::Token(i % 17), &mut out).unwrap();
        }
        for _ in 0..100 {
            session.step_chunk(Inputs::Tokens(&ids), &mut chunk_out).unwrap();
        }
        session.save_state(&mut state).unwrap();
        session.restore_state(&state).unwrap();
        session.reset();
        let after = allocations();
        assert_eq!(after - before, 0, "the {} step loop allocated", dtype.name());
        assert!(out.iter().all(|v| v.is_finite()));
    }
    // The counter does see allocations made on this thread.
    let before = allocations();
    let v = vec![1u8; 100];
    assert_eq!(allocations(), before + 1);
    drop(v);
}
