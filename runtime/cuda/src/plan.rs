//! Launch shapes of every kernel, from the sizes of a pass: plain arithmetic, kept
//! apart from the launches so that it is tested without a GPU.

use crate::error::CudaError;

/// Grid, block and dynamic shared memory of one launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

/// Warps per block of the matrix kernels (one warp per output value).
pub const MATMUL_WARPS: u32 = 8;
/// Threads per block of the element-wise kernels.
pub const ELEMENTWISE_THREADS: u32 = 256;
/// CUDA's limit on a grid's second dimension, which counts rows.
pub const MAX_GRID_Y: usize = 65_535;
/// Threads per block, on every architecture since 2.0.
const MAX_BLOCK_THREADS: usize = 1024;
/// Shared memory a block may ask for without opting in.
const MAX_SHARED_BYTES: usize = 48 * 1024;

fn count(n: usize, what: &str) -> Result<u32, CudaError> {
    u32::try_from(n).map_err(|_| CudaError::Unsupported(format!("{what} of {n}")))
}

fn rows_of(rows: usize) -> Result<u32, CudaError> {
    if rows > MAX_GRID_Y {
        return Err(CudaError::Unsupported(format!("{rows} rows in one pass (at most {MAX_GRID_Y})")));
    }
    count(rows, "rows")
}

/// `matmul_*`: `[rows, n]` outputs, one warp each.
pub fn matmul(n: usize, rows: usize) -> Result<Launch, CudaError> {
    Ok(Launch {
        grid: (count(n.div_ceil(MATMUL_WARPS as usize), "outputs")?, rows_of(rows)?, 1),
        block: (32, MATMUL_WARPS, 1),
        shared_bytes: 0,
    })
}

/// `quantize_rows`: one warp per row.
pub fn quantize(rows: usize) -> Result<Launch, CudaError> {
    Ok(Launch { grid: (count(rows, "rows")?, 1, 1), block: (32, 1, 1), shared_bytes: 0 })
}

/// `layer_norm_rows`: 16 threads per row, one per partial sum of the CPU twin.
pub fn layer_norm(rows: usize) -> Result<Launch, CudaError> {
    Ok(Launch { grid: (count(rows, "rows")?, 1, 1), block: (16, 1, 1), shared_bytes: 0 })
}

/// Element-wise kernels over `n` values.
pub fn elementwise(n: usize) -> Result<Launch, CudaError> {
    Ok(Launch {
        grid: (count(n.div_ceil(ELEMENTWISE_THREADS as usize).max(1), "values")?, 1, 1),
        block: (ELEMENTWISE_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

/// `embed_tokens`: `rows` rows of `d` values.
pub fn embed(d: usize, rows: usize) -> Result<Launch, CudaError> {
    Ok(Launch {
        grid: (count(d.div_ceil(128).max(1), "width")?, rows_of(rows)?, 1),
        block: (128, 1, 1),
        shared_bytes: 0,
    })
}

/// `attention_step`: one block per (head, stream), one thread per value column
/// (rounded up to whole warps), φ(q) and φ(k) of one head in shared memory.
pub fn attention(heads: usize, streams: usize, features: usize, dv: usize) -> Result<Launch, CudaError> {
    let threads = dv.max(1).next_multiple_of(32);
    if threads > MAX_BLOCK_THREADS {
        return Err(CudaError::Unsupported(format!("value heads of {dv} (at most {MAX_BLOCK_THREADS})")));
    }
    let shared = 2 * features * 4;
    if shared > MAX_SHARED_BYTES {
        return Err(CudaError::Unsupported(format!("{features} features per head (at most {})", MAX_SHARED_BYTES / 8)));
    }
    Ok(Launch {
        grid: (count(heads, "heads")?, rows_of(streams)?, 1),
        block: (threads as u32, 1, 1),
        shared_bytes: shared as u32,
    })
}

/// `check_normalisers` and `rescale_grown`: `per_stream` values of each stream.
pub fn per_stream(per_stream: usize, streams: usize) -> Result<Launch, CudaError> {
    Ok(Launch {
        grid: (count(per_stream.div_ceil(ELEMENTWISE_THREADS as usize).max(1), "values")?, rows_of(streams)?, 1),
        block: (ELEMENTWISE_THREADS, 1, 1),
        shared_bytes: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_covers_every_output_with_one_warp() {
        let l = matmul(145, 3).unwrap();
        assert_eq!(l.block, (32, 8, 1));
        assert_eq!(l.grid, (19, 3, 1)); // 19 · 8 = 152 ≥ 145 warps
        assert!(matmul(10, MAX_GRID_Y + 1).is_err());
    }

    #[test]
    fn attention_rounds_columns_to_warps_and_sizes_shared_memory() {
        let l = attention(4, 7, 36, 36).unwrap();
        assert_eq!((l.grid, l.block, l.shared_bytes), ((4, 7, 1), (64, 1, 1), 288));
        assert_eq!(attention(1, 1, 1, 1).unwrap().block.0, 32);
        assert!(attention(1, 1, 8, 1025).unwrap_err().to_string().contains("value heads of 1025"));
        assert!(attention(1, 1, 6145, 32).unwrap_err().to_string().contains("features per head"));
    }

    #[test]
    fn elementwise_never_launches_an_empty_grid() {
        assert_eq!(elementwise(0).unwrap().grid.0, 1);
        assert_eq!(elementwise(257).unwrap().grid.0, 2);
        assert_eq!(per_stream(10, 5).unwrap().grid, (1, 5, 1));
        assert_eq!(embed(144, 2).unwrap().grid, (2, 2, 1));
        assert_eq!(layer_norm(9).unwrap().block, (16, 1, 1));
        assert_eq!(quantize(9).unwrap().grid, (9, 1, 1));
    }
}
