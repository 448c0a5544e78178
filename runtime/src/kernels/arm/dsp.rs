//! int8 matrix-vector with the DSP extension of 32-bit ARM (Cortex-M4/M7, ARMv7-A):
//! `SXTB16` sign-extends bytes 0 and 2 (or, rotated, 1 and 3) of a word into two
//! 16-bit halves, and `SMLAD` multiplies both halves pairwise and adds the two
//! products to an accumulator: two multiply-accumulates in one instruction.
//!
//! Per 4 columns the kernel loads the activations' word once and spreads it into
//! its even and odd pairs, then for each of the packed layout's four rows loads a
//! weight word, spreads it the same way and issues two SMLADs: 23 instructions for
//! 16 multiply-accumulates, where the scalar twin spends about three per one.
//! The sums are exact integers, so the results are the scalar twin's bit for bit.
//!
//! Stable Rust has no intrinsics for these, so each is one `asm!` instruction on
//! registers, which the compiler schedules and allocates around.

use core::arch::asm;

use crate::kernels::matrix::{PACK_COLS, PACK_ROWS};

/// Bytes 0 and 2 of `x`, sign-extended into the low and high halves.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: SXTB16 exists on every target this module builds for (cfg
    // linrt_arm_dsp, set by build.rs) and reads and writes only registers.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Bytes 1 and 3 of `x`, sign-extended into the low and high halves.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: as for `sxtb16`.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + a.lo · b.lo + a.hi · b.hi` over signed 16-bit halves.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as for `sxtb16`. SMLAD may set the sticky Q flag on overflow (so no
    // preserves_flags), which int8 products cannot reach below 2^17 columns.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// The little-endian word at `p`.
///
/// # Safety
/// `p` points to 4 readable bytes.
#[inline(always)]
unsafe fn word(p: *const i8) -> u32 {
    // SAFETY: the caller's promise; these cores load unaligned words.
    unsafe { (p as *const u32).read_unaligned() }
}

/// One [`PACK_COLS`]-column block of a 4-row group: `acc[k] += w_k · x`.
///
/// # Safety
/// `w` points to `PACK_ROWS · PACK_COLS` readable bytes (the block's four rows back
/// to back) and `x` to `PACK_COLS`.
#[inline(always)]
unsafe fn dot_block(w: *const i8, x: *const i8, acc: &mut [i32; PACK_ROWS]) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    for c in (0..PACK_COLS).step_by(4) {
        // SAFETY: c + 4 ≤ PACK_COLS, and row k's block starts at k · PACK_COLS.
        let (xw, w0, w1, w2, w3) = unsafe {
            (
                word(x.add(c)),
                word(w.add(c)),
                word(w.add(PACK_COLS + c)),
                word(w.add(2 * PACK_COLS + c)),
                word(w.add(3 * PACK_COLS + c)),
            )
        };
        let (x02, x13) = (sxtb16(xw), sxtb16_ror8(xw));
        a0 = smlad(sxtb16_ror8(w0), x13, smlad(sxtb16(w0), x02, a0));
        a1 = smlad(sxtb16_ror8(w1), x13, smlad(sxtb16(w1), x02, a1));
        a2 = smlad(sxtb16_ror8(w2), x13, smlad(sxtb16(w2), x02, a2));
        a3 = smlad(sxtb16_ror8(w3), x13, smlad(sxtb16(w3), x02, a3));
    }
    *acc = [a0, a1, a2, a3];
}

/// `y = (W_q · x_q) · scale_row · x_scale + b` for packed int8 weights
/// ([`crate::kernels::Weights::I8Packed`]): the scalar twin's
/// `matvec_i8_packed`, bit for bit.
///
/// # Safety
/// None beyond the table's preconditions (lengths as the packed layout gives them):
/// the DSP extension is there wherever this compiles.
pub unsafe fn matvec_i8_packed(w: &[i8], scales: &[f32], b: &[f32], xq: &[i8], x_scale: f32, y: &mut [f32]) {
    let cols = xq.len();
    let blocks = cols.div_ceil(PACK_COLS);
    let block_bytes = PACK_ROWS * PACK_COLS;
    let full = cols / PACK_COLS;
    // The last, partial block's activations, zero-padded as the weights are.
    let mut tail = [0i8; PACK_COLS];
    tail[..cols - full * PACK_COLS].copy_from_slice(&xq[full * PACK_COLS..]);
    for (g, group) in w.chunks_exact(blocks * block_bytes).enumerate() {
        let mut acc = [0i32; PACK_ROWS];
        for blk in 0..blocks {
            let x = if blk < full { xq[blk * PACK_COLS..].as_ptr() } else { tail.as_ptr() };
            // SAFETY: the group holds `blocks` blocks of block_bytes, and x has
            // PACK_COLS values (a full block of xq, or the padded tail).
            unsafe { dot_block(group[blk * block_bytes..].as_ptr(), x, &mut acc) };
        }
        for (k, &sum) in acc.iter().enumerate() {
            let row = g * PACK_ROWS + k;
            if row >= y.len() {
                break;
            }
            y[row] = sum as f32 * scales[row] * x_scale + b[row];
        }
    }
}
