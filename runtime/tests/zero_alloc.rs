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

/// The beam decoder over a lexicon, a grammar and hotwords: 20,000 steps of
/// speech-like logits (a symbol or the blank dominating each step), with finals,
/// utterance ends and rewinds, and not one allocation once it is built.
#[test]
fn no_allocation_in_the_beam_decoder() {
    use linrt::decode::{
        BeamConfig, BeamDecoder, BeamMemory, Candidate, DecodedWord, Grammar, GrammarArc, Hotword, Hotwords,
        Hypothesis, Lexicon, SlotDef, TrieNode, GRAMMAR_STATES,
    };
    let vocab: Vec<String> =
        ["<blank>", " "].iter().map(|s| s.to_string()).chain((b'a'..=b'z').map(|c| (c as char).to_string())).collect();
    let vocab: Vec<&str> = vocab.iter().map(String::as_str).collect();
    let skip = [0, 1];
    let (mut nodes, mut word_nodes, mut ranks) = (vec![TrieNode::default(); 256], vec![0; 32], vec![0; 32]);
    let mut lexicon = Lexicon::new(&mut nodes, &mut word_nodes, &mut ranks).unwrap();
    lexicon.insert_list("go stop left right one two three", &vocab, &skip).unwrap();
    let (mut arcs, mut first) = (vec![GrammarArc::default(); 256], vec![0; GRAMMAR_STATES + 1]);
    let mut slots = [SlotDef::default(); 4];
    let grammar = Grammar::parse(
        "<d> = one | two | three\ngo <d>* left?\nstop",
        &mut lexicon,
        &vocab,
        &skip,
        &mut slots,
        &mut arcs,
        &mut first,
    )
    .unwrap();
    let (mut hw, mut hp) = (vec![0; 8], vec![Hotword::default(); 4]);
    let hotwords = Hotwords::parse("go left :2", 1.5, &mut lexicon, &vocab, &skip, &mut hw, &mut hp).unwrap();
    lexicon.finish();
    let config = BeamConfig { beam: 16, ..BeamConfig::default() };
    let sizes = config.sizes(vocab.len()).unwrap();
    let mut hypotheses = vec![Hypothesis::default(); sizes.hypotheses];
    let mut words = vec![DecodedWord::default(); sizes.words];
    let mut candidates = vec![Candidate::default(); sizes.candidates];
    let mut log_probs = vec![0.0; sizes.log_probs];
    let memory = BeamMemory {
        hypotheses: &mut hypotheses,
        words: &mut words,
        candidates: &mut candidates,
        log_probs: &mut log_probs,
    };
    let mut decoder = BeamDecoder::new(config, 0, 1, &lexicon, Some(&grammar), Some(&hotwords), memory).unwrap();
    // Logits spelling "go one two left" and "stop" over and over, with noise.
    let script: Vec<usize> = "__gg_oo_ oo_nn_ee_ tt_ww_oo_ ll_ee_ff_tt____ss_tt_oo_pp____"
        .chars()
        .map(|c| match c {
            '_' => 0,
            ' ' => 1,
            c => c as usize - 'a' as usize + 2,
        })
        .collect();
    let mut rng = linrt::rng::Rng::seeded(7);
    let logits: Vec<Vec<f32>> = (0..20_000)
        .map(|i| {
            (0..vocab.len())
                .map(|s| {
                    let noise = rng.next_f32();
                    if s == script[i % script.len()] {
                        4.0 + noise
                    } else {
                        noise * 2.0
                    }
                })
                .collect()
        })
        .collect();
    let mut out = [DecodedWord::default(); 65];
    let (mut finals, mut said) = (0, 0);
    let before = allocations();
    for (i, step) in logits.iter().enumerate() {
        decoder.push(step).unwrap();
        if i % script.len() == script.len() - 1 || decoder.is_full() {
            let n = decoder.final_words(&mut out).unwrap();
            finals += 1;
            said += n;
            decoder.reset();
        }
        if i % 997 == 0 {
            decoder.rewind(3);
        }
    }
    let after = allocations();
    assert_eq!(after - before, 0, "the beam decoder allocated");
    assert!(finals > 300 && said > finals, "{finals} finals, {said} words");
}

#[test]
fn no_allocation_in_the_recognizer() {
    use linrt::asr::{AsrInfo, Decoder, Event, Recognizer, RecognizerBuffers, RecognizerSizes};
    use linrt::decode::{BeamBuffers, BeamConfig, EndpointConfig, Lexicon, TrieNode};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/asr-commands");
    let file = linrt::ModelFile::open(root.join("asr-commands.int8.lrt")).unwrap();
    let model = file.model().unwrap();
    let info = AsrInfo::from_model(&model).unwrap();
    let wav = std::fs::read(root.join("sample.wav")).unwrap();
    let samples: Vec<f32> =
        wav[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).collect();

    let mut nodes = vec![TrieNode::default(); info.word_chars() + 1];
    let (mut word_nodes, mut ranks) = (vec![0u32; info.word_count()], vec![0u32; info.word_count()]);
    let mut lexicon = Lexicon::new(&mut nodes, &mut word_nodes, &mut ranks).unwrap();
    assert_eq!(info.insert_words(&mut lexicon).unwrap(), info.word_count());
    lexicon.finish();
    let config = BeamConfig { beam: 16, ..BeamConfig::default() };
    let mut beam_buffers = BeamBuffers::new(&config, info.symbols()).unwrap();
    let decoder = Decoder::beam(&info, config, &lexicon, None, None, beam_buffers.memory()).unwrap();
    let sizes = RecognizerSizes::new(&model, &info, None, Some(&config)).unwrap();
    let mut buffers = RecognizerBuffers::new(&sizes);
    let memory = buffers.memory();
    let mut recognizer =
        Box::new(Recognizer::new(&model, info, EndpointConfig::default(), None, decoder, memory).unwrap());

    // Three streams of the sample in 10 ms chunks (qemu runs this too), partials and finals included:
    // the finals are compared in place, so the callback allocates nothing either.
    let expected = ["one", "close", "it is"];
    let (mut heard, mut partials, mut wrong) = (0usize, 0usize, 0usize);
    let before = allocations();
    for _ in 0..3 {
        let mut on_event = |e: Event| match e {
            Event::Final(u) => {
                wrong += usize::from(expected.get(heard % 3) != Some(&u.text) || u.words().len() == 0);
                heard += 1;
            }
            Event::Partial(_) => partials += 1,
            Event::Logits(_) => {}
        };
        for piece in samples.chunks(160) {
            recognizer.accept(piece, &mut on_event).unwrap();
        }
        recognizer.finish(&mut on_event).unwrap();
    }
    assert_eq!(allocations() - before, 0, "heap allocations while recognizing");
    assert_eq!((heard, wrong), (9, 0), "three commands per stream, each as said");
    assert!(partials >= 9);
}

#[test]
fn no_allocation_in_backend_forward_passes() {
    use linrt::{Backend, Cpu, StreamState, Workspace};
    let mut cfg = ModelConfig::new(32, 2, 4, 64);
    cfg.input_kind = linrt::InputKind::Tokens;
    cfg.input_dim = 17;
    cfg.output_kind = linrt::OutputKind::Linear;
    cfg.output_dim = 17;
    for dtype in [linrt::DType::F32, linrt::DType::I8] {
        let bytes = linrt::AlignedBytes::from_slice(&common::random_model_dtype(&cfg, 5, dtype));
        let model = bytes.model().unwrap();
        let (b, t) = (4, 2);
        let cpu = Cpu::new(None).unwrap();
        // Panels where this CPU's path reads them (AVX-512); nothing elsewhere.
        let mut prepared_mem = vec![0u8; cpu.prepared_bytes(&model).unwrap()];
        let prepared = cpu.prepare(&model, &mut prepared_mem).unwrap();
        let mut ws_mem = vec![0f32; Workspace::floats_for(&model, b * t).unwrap()];
        let mut ws = Workspace::new(&model, &mut ws_mem, b * t).unwrap();
        let n = StreamState::floats_for(&cfg).unwrap();
        let mut mem = vec![0f32; b * n];
        let mut states: Vec<StreamState> =
            mem.chunks_exact_mut(n).map(|m| StreamState::new(&model, m).unwrap()).collect();
        let mut refs: Vec<&mut StreamState> = states.iter_mut().collect();
        let tokens: Vec<u32> = (0..b * t).map(|i| (i % 17) as u32).collect();
        let mut out = vec![0f32; b * t * 17];
        let before = allocations();
        for _ in 0..1000 {
            // Steps (1 × 1), chunks (1 × T) and batches (B × T) through one entry point.
            cpu.forward(&prepared, &mut ws, &mut refs[..1], Inputs::Tokens(&tokens[..1]), &mut out[..17]).unwrap();
            cpu.forward(&prepared, &mut ws, &mut refs[..1], Inputs::Tokens(&tokens[..t]), &mut out[..t * 17]).unwrap();
            cpu.forward(&prepared, &mut ws, &mut refs, Inputs::Tokens(&tokens), &mut out).unwrap();
        }
        assert_eq!(allocations() - before, 0, "{dtype:?}: heap allocations in forward passes");
    }
}
