//! Alignment for byte buffers that have none of their own: a model embedded with
//! `include_bytes!`, or an arena that is a plain `[u8; N]` (static or on the stack).

/// `T` placed on a 64-byte boundary (enough for f32 tensors and SIMD loads).
///
/// ```
/// // A model in flash and an arena on the stack, no allocator anywhere:
/// # const MODEL_BYTES: [u8; 4] = [0; 4];
/// static MODEL: &linrt::Aligned<[u8]> = &linrt::Aligned(MODEL_BYTES); // or *include_bytes!("model.lrt")
/// let mut arena = linrt::Aligned([0u8; 4096]);
/// let (model_bytes, arena_bytes): (&[u8], &mut [u8]) = (&MODEL.0, &mut arena.0);
/// assert_eq!(model_bytes.as_ptr() as usize % 64, 0);
/// assert_eq!(arena_bytes.as_ptr() as usize % 64, 0);
/// ```
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aligned<T: ?Sized>(pub T);
