// linrt's CUDA kernels, compiled at run time by NVRTC for the device's own
// architecture (compile.rs), never by nvcc: no SASS that one Jetson generation
// cannot run, and no CUDA toolkit needed to build linrt.
//
// Every kernel mirrors a scalar twin in runtime/src/kernels/scalar.rs. Where the
// twin's order of operations fixes its bits (quantization, the int8 products, layer
// norm, the feature maps, gelu, the attention step), multiplies and adds are written
// as __fmul_rn / __fadd_rn, which the compiler never fuses into an FMA, so the
// results are the twin's bits. The f32 and f16 matrix products sum in another order
// (a warp's lanes) and agree to rounding.
//
// No headers: NVRTC without a toolkit has none. Half floats are converted and dp4a
// issued through inline PTX; the constants of the twin's polynomials come in a
// prelude that compile.rs writes from the Rust constants themselves.
//
// Layouts (row-major throughout, `rows` = streams × positions of a pass):
//   activations  [rows, width] f32
//   f32 weights  [n, k];  f16 weights [n, k2] as pairs (k padded to even, a zero last);
//   int8 weights [n, k4] 32-bit words of four int8 (k padded to a multiple of 4),
//                scales [n, per_row] (per_row 1, or one per block of `block` columns)
//   quantized activations [rows, k4] words and one scale per row.

#define WARP 32
#define FULL_MASK 0xffffffffu

__device__ __forceinline__ bool finite(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

__device__ __forceinline__ float half_to_float(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ int dp4a(int a, int b, int c) {
    int d;
    asm("dp4a.s32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ int warp_sum_int(int v) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = WARP / 2; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// ---------------------------------------------------------------- matrix products
// One warp per output value y[r, o]; blockDim (32, warps), grid (ceil(n / warps), rows).

extern "C" __global__ void matmul_f32(const float* __restrict__ w, const float* __restrict__ bias,
                                      const float* __restrict__ x, float* __restrict__ y, int n, int k, int rows) {
    int o = blockIdx.x * blockDim.y + threadIdx.y;
    int r = blockIdx.y;
    if (o >= n || r >= rows) return;
    const float* wr = w + (size_t)o * k;
    const float* xr = x + (size_t)r * k;
    float acc = 0.0f;
    for (int c = threadIdx.x; c < k; c += WARP) acc += wr[c] * xr[c];
    acc = warp_sum(acc);
    if (threadIdx.x == 0) y[(size_t)r * n + o] = acc + bias[o];
}

extern "C" __global__ void matmul_f16(const unsigned int* __restrict__ w, const float* __restrict__ bias,
                                      const float* __restrict__ x, float* __restrict__ y, int n, int k, int rows) {
    int o = blockIdx.x * blockDim.y + threadIdx.y;
    int r = blockIdx.y;
    if (o >= n || r >= rows) return;
    int k2 = (k + 1) / 2;
    const unsigned int* wr = w + (size_t)o * k2;
    const float* xr = x + (size_t)r * k;
    float acc = 0.0f;
    for (int p = threadIdx.x; p < k2; p += WARP) {
        unsigned int pair = wr[p];  // two halves: columns 2p (low) and 2p + 1 (high)
        acc += half_to_float((unsigned short)(pair & 0xffffu)) * xr[2 * p];
        if (2 * p + 1 < k) acc += half_to_float((unsigned short)(pair >> 16)) * xr[2 * p + 1];
    }
    acc = warp_sum(acc);
    if (threadIdx.x == 0) y[(size_t)r * n + o] = acc + bias[o];
}

// y = (W_q · x_q) · scale_w · scale_x + b, as scalar::matvec_i8: the integer sums are
// exact in any order; the float steps are the twin's, in its order.
extern "C" __global__ void matmul_i8(const int* __restrict__ w, const float* __restrict__ scales, int block,
                                     const float* __restrict__ bias, const int* __restrict__ xq,
                                     const float* __restrict__ xs, float* __restrict__ y, int n, int k, int rows) {
    int o = blockIdx.x * blockDim.y + threadIdx.y;
    int r = blockIdx.y;
    if (o >= n || r >= rows) return;
    int k4 = (k + 3) / 4;
    const int* wr = w + (size_t)o * k4;
    const int* xr = xq + (size_t)r * k4;
    float acc;
    if (block == 0) {
        int sum = 0;
        for (int c = threadIdx.x; c < k4; c += WARP) sum = dp4a(wr[c], xr[c], sum);
        sum = warp_sum_int(sum);
        acc = __fmul_rn((float)sum, scales[o]);
    } else {
        // Blocks of `block` columns (a multiple of 4: prepare refuses others), each
        // with its scale, summed in order as the twin sums them.
        int per_row = (k + block - 1) / block;
        int block4 = block / 4;
        acc = 0.0f;
        for (int b = 0; b < per_row; b++) {
            int end = min((b + 1) * block4, k4);
            int sum = 0;
            for (int c = b * block4 + threadIdx.x; c < end; c += WARP) sum = dp4a(wr[c], xr[c], sum);
            sum = warp_sum_int(sum);
            float term = __fmul_rn((float)sum, scales[(size_t)o * per_row + b]);
            acc = b == 0 ? term : __fadd_rn(acc, term);
        }
    }
    if (threadIdx.x == 0) y[(size_t)r * n + o] = __fadd_rn(__fmul_rn(acc, xs[r]), bias[o]);
}

// Symmetric int8 quantization of each row, as quant::quantize: one warp per row.
// q = round-to-nearest-even(x · (127 / max|x|)), scale = max / 127; a row whose
// 127 / max is not finite (zeros, or tiny values) becomes zeros with scale 0.
extern "C" __global__ void quantize_rows(const float* __restrict__ x, int* __restrict__ q,
                                         float* __restrict__ scales, int k, int rows) {
    int r = blockIdx.x;
    if (r >= rows) return;
    const float* xr = x + (size_t)r * k;
    float m = 0.0f;  // NaN is skipped, as the twin's comparison skips it
    for (int c = threadIdx.x; c < k; c += WARP) {
        float a = fabsf(xr[c]);
        if (a > m) m = a;
    }
    m = warp_max(m);
    float inv = __fdiv_rn(127.0f, m);
    bool ok = finite(inv);
    int k4 = (k + 3) / 4;
    for (int word = threadIdx.x; word < k4; word += WARP) {
        unsigned int packed = 0;
        for (int i = 0; i < 4; i++) {
            int c = word * 4 + i;
            int v = (ok && c < k) ? __float2int_rn(__fmul_rn(xr[c], inv)) : 0;
            packed |= ((unsigned int)v & 0xffu) << (8 * i);
        }
        q[(size_t)r * k4 + word] = (int)packed;
    }
    if (threadIdx.x == 0) scales[r] = ok ? __fdiv_rn(m, 127.0f) : 0.0f;
}

// ---------------------------------------------------------------- element-wise

// LayerNorm of each row in place, as scalar::layer_norm: 16 partial sums (element i
// into sum i % 16, in order), folded as halves; biased variance, eps inside the sqrt.
// One block of 16 threads per row.
extern "C" __global__ void layer_norm_rows(float* __restrict__ x, const float* __restrict__ gamma,
                                           const float* __restrict__ beta, float eps, int width, int rows) {
    __shared__ float lanes[16];
    __shared__ float mean_inv[2];
    int r = blockIdx.x;
    if (r >= rows) return;
    float* xr = x + (size_t)r * width;
    int l = threadIdx.x;
    float acc = 0.0f;
    for (int i = l; i < width; i += 16) acc = __fadd_rn(acc, xr[i]);
    lanes[l] = acc;
    __syncthreads();
    if (l == 0) {
        for (int half = 8; half >= 1; half /= 2)
            for (int i = 0; i < half; i++) lanes[i] = __fadd_rn(lanes[i], lanes[i + half]);
        mean_inv[0] = __fdiv_rn(lanes[0], (float)width);
    }
    __syncthreads();
    float mean = mean_inv[0];
    acc = 0.0f;
    for (int i = l; i < width; i += 16) {
        float d = __fsub_rn(xr[i], mean);
        acc = __fadd_rn(acc, __fmul_rn(d, d));
    }
    __syncthreads();
    lanes[l] = acc;
    __syncthreads();
    if (l == 0) {
        for (int half = 8; half >= 1; half /= 2)
            for (int i = 0; i < half; i++) lanes[i] = __fadd_rn(lanes[i], lanes[i + half]);
        mean_inv[1] = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(lanes[0], (float)width), eps)));
    }
    __syncthreads();
    float inv = mean_inv[1];
    for (int i = l; i < width; i += 16)
        xr[i] = __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(xr[i], mean), inv), gamma[i]), beta[i]);
}

// e^x for x <= 0 as scalar::exp_nonpositive (the constants come from the prelude).
__device__ __forceinline__ float exp_nonpositive(float x) {
    x = EXP_LOWEST > x ? EXP_LOWEST : x;
    float n = __fsub_rn(__fadd_rn(__fmul_rn(x, EXP_LOG2_E), EXP_ROUND), EXP_ROUND);
    float r = __fsub_rn(__fsub_rn(x, __fmul_rn(n, EXP_LN2_HI)), __fmul_rn(n, EXP_LN2_LO));
    float p = EXP_P0;
    p = __fadd_rn(__fmul_rn(p, r), EXP_P1);
    p = __fadd_rn(__fmul_rn(p, r), EXP_P2);
    p = __fadd_rn(__fmul_rn(p, r), EXP_P3);
    p = __fadd_rn(__fmul_rn(p, r), EXP_P4);
    p = __fadd_rn(__fmul_rn(p, r), EXP_P5);
    float e = __fadd_rn(__fadd_rn(__fmul_rn(__fmul_rn(p, r), r), r), 1.0f);
    return __fmul_rn(e, __uint_as_float((unsigned int)((int)n + 127) << 23));
}

// φ(x) = elu(x) + 1 in place (scalar::elu_plus_one).
extern "C" __global__ void elu_plus_one(float* __restrict__ x, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float v = x[i];
    x[i] = v > 0.0f ? __fadd_rn(v, 1.0f) : exp_nonpositive(v);
}

extern "C" __global__ void relu(float* __restrict__ x, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float v = x[i];
    x[i] = v > 0.0f ? v : 0.0f;  // as f32::max(v, 0.0): NaN gives 0
}

// erf as scalar::erf: x·P(x²)/Q(x²) on [-4, 4].
__device__ __forceinline__ float erf_twin(float x) {
    x = x > ERF_CLAMP ? ERF_CLAMP : x;
    x = x < -ERF_CLAMP ? -ERF_CLAMP : x;
    float x2 = __fmul_rn(x, x);
    float p = ERF_NUM0;
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM1);
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM2);
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM3);
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM4);
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM5);
    p = __fadd_rn(__fmul_rn(p, x2), ERF_NUM6);
    float q = ERF_DEN0;
    q = __fadd_rn(__fmul_rn(q, x2), ERF_DEN1);
    q = __fadd_rn(__fmul_rn(q, x2), ERF_DEN2);
    q = __fadd_rn(__fmul_rn(q, x2), ERF_DEN3);
    q = __fadd_rn(__fmul_rn(q, x2), ERF_DEN4);
    return __fdiv_rn(__fmul_rn(x, p), q);
}

// gelu(x) = 0.5·x·(1 + erf(x/√2)) in place (scalar::gelu).
extern "C" __global__ void gelu(float* __restrict__ x, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    float v = x[i];
    x[i] = __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.0f, erf_twin(__fmul_rn(v, FRAC_1_SQRT_2))));
}

// x += y (the residual adds).
extern "C" __global__ void add_assign(float* __restrict__ x, const float* __restrict__ y, int count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] = __fadd_rn(x[i], y[i]);
}

// Token embeddings: row r of x is row ids[r] of the table. Ids were checked on the host.
extern "C" __global__ void embed_tokens(const float* __restrict__ table, const unsigned int* __restrict__ ids,
                                        float* __restrict__ x, int d, int rows) {
    int r = blockIdx.y;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (r < rows && c < d) x[(size_t)r * d + c] = table[(size_t)ids[r] * d + c];
}

// ---------------------------------------------------------------- attention

// The recurrent step of causal linear attention for B streams × T positions of one
// layer (scalar::attention_head_step, position after position): per head,
//   z += φ(k),  S += φ(k) vᵀ,  out = φ(q)ᵀ S / (φ(q)·z + eps).
// One block per (head, stream), one thread per value column j (blockDim.x = Dv).
// A stream's state is stored times its factor 2^-e: φ(k) and eps get that factor.
// Stream b's state is at states[b] (each stream its own allocation); its layer at
// states[b] + layer_offset, laid out [S: H×F×Dv][z: H×F] as runtime/src/model/state.rs.
extern "C" __global__ void __launch_bounds__(1024) attention_step(float* const* __restrict__ states, int layer_offset,
                                          const float* __restrict__ factors, const float* __restrict__ q,
                                          const float* __restrict__ k, const float* __restrict__ v,
                                          float* __restrict__ out, int heads, int f, int dv, int positions,
                                          float eps) {
    extern __shared__ float shared[];  // φ(q) and φ(k) of this head: 2·F floats
    float* qs = shared;
    float* ks = shared + f;
    int h = blockIdx.x;
    int b = blockIdx.y;
    int j = threadIdx.x;
    float factor = factors[b];
    float* layer = states[b] + layer_offset;
    float* s = layer + (size_t)h * f * dv;
    float* z = layer + (size_t)heads * f * dv + (size_t)h * f;
    float scaled_eps = __fmul_rn(eps, factor);
    for (int t = 0; t < positions; t++) {
        size_t row = (size_t)b * positions + t;
        const float* qr = q + row * heads * f + (size_t)h * f;
        const float* kr = k + row * heads * f + (size_t)h * f;
        for (int d = j; d < f; d += blockDim.x) {
            qs[d] = qr[d];
            ks[d] = factor == 1.0f ? kr[d] : __fmul_rn(kr[d], factor);
        }
        __syncthreads();
        for (int d = j; d < f; d += blockDim.x) z[d] = __fadd_rn(z[d], ks[d]);
        float vj = j < dv ? v[row * heads * dv + (size_t)h * dv + j] : 0.0f;
        float acc = 0.0f;
        if (j < dv) {
            for (int d = 0; d < f; d++) {
                float sm = __fadd_rn(s[(size_t)d * dv + j], __fmul_rn(ks[d], vj));
                s[(size_t)d * dv + j] = sm;
                acc = __fadd_rn(acc, __fmul_rn(qs[d], sm));
            }
        }
        __syncthreads();  // z complete
        // q·z with the twin's eight partial sums (scalar::dot), then the reciprocal.
        float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int whole = f / 8 * 8;
        for (int d = 0; d < whole; d++) lanes[d % 8] = __fadd_rn(lanes[d % 8], __fmul_rn(qs[d], z[d]));
        float tail = 0.0f;
        for (int d = whole; d < f; d++) tail = __fadd_rn(tail, __fmul_rn(qs[d], z[d]));
        float dot = __fadd_rn(__fadd_rn(__fadd_rn(__fadd_rn(lanes[0], lanes[4]), __fadd_rn(lanes[1], lanes[5])),
                                        __fadd_rn(__fadd_rn(lanes[2], lanes[6]), __fadd_rn(lanes[3], lanes[7]))),
                              tail);
        float inv = __fdiv_rn(1.0f, __fadd_rn(dot, scaled_eps));
        if (j < dv) out[row * heads * dv + (size_t)h * dv + j] = __fmul_rn(acc, inv);
        __syncthreads();  // qs, ks and z are rewritten by the next position
    }
}

// ---------------------------------------------------------------- checks

// flags[0] |= 1 when any of x[0..count) is NaN or infinite.
extern "C" __global__ void flag_non_finite(const float* __restrict__ x, int count, unsigned int* __restrict__ flags) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count && !finite(x[i])) atomicOr(flags, 1u);
}

// Per stream: flags[b] |= 2 when a z of any layer passes the growth limit, |= 1 when
// one is NaN or infinite (attention::rescale_if_grown decides on the host).
extern "C" __global__ void check_normalisers(float* const* __restrict__ states, int stream_floats, int layer_floats,
                                             int z_offset, int z_count, float limit, unsigned int* __restrict__ flags) {
    int b = blockIdx.y;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int layers = stream_floats / layer_floats;
    if (i >= layers * z_count) return;
    int layer = i / z_count;
    float z = states[b][(size_t)layer * layer_floats + z_offset + i % z_count];
    if (!finite(z)) atomicOr(flags + b, 1u);
    else if (fabsf(z) > limit) atomicOr(flags + b, 2u);
}

// The start of a pass: factors[b] = 2^-exponents[b] (attention::state_factor) for
// its attention, and the pass's flags zeroed.
extern "C" __global__ void begin_pass(const unsigned int* __restrict__ exponents, float* __restrict__ factors,
                                      unsigned int* __restrict__ flags, unsigned int* __restrict__ z_flags, int streams,
                                      unsigned int max_exponent) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= streams) return;
    unsigned int e = min(exponents[b], max_exponent);
    factors[b] = __uint_as_float((127u - e) << 23);
    z_flags[b] = 0u;
    if (b == 0) flags[0] = 0u;
}

// attention::rescale_if_grown on the device, for stream b (blockIdx.y): when a z
// passed the limit (flag 2), none is non-finite (flag 1) and the exponent has room,
// the whole state is multiplied by 2^-growth. bump_exponents then counts it.
extern "C" __global__ void rescale_grown(float* const* __restrict__ states, int stream_floats,
                                         const unsigned int* __restrict__ z_flags,
                                         const unsigned int* __restrict__ exponents, unsigned int growth,
                                         unsigned int max_exponent) {
    int b = blockIdx.y;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= stream_floats || z_flags[b] != 2u || exponents[b] + growth > max_exponent) return;
    states[b][i] = __fmul_rn(states[b][i], __uint_as_float((127u - growth) << 23));
}

extern "C" __global__ void bump_exponents(unsigned int* __restrict__ exponents,
                                          const unsigned int* __restrict__ z_flags, int streams, unsigned int growth,
                                          unsigned int max_exponent) {
    int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < streams && z_flags[b] == 2u && exponents[b] + growth <= max_exponent) exponents[b] += growth;
}
