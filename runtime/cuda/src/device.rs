//! A model on the GPU ([`CudaModel`]: weights uploaded once, kernels loaded) and
//! streams on it ([`CudaStreams`]: every stream's state stays in device memory).
//!
//! One forward pass takes B streams × T positions, stream-major, exactly as the CPU
//! backend's `forward` (runtime/src/model/backend.rs) does, launch for launch: the
//! embedding, the position encoding, per layer the norms, projections, feature maps,
//! the attention step (positions in order, each on its own stream's state), the
//! feed-forward block, then the state's range check and the output head. States are
//! saved and restored in the CPU's byte format, so either side takes the other's.

use crate::compile;
use crate::error::{driver, CudaError};
use crate::io::{IoBuffer, IoMemory};
use crate::plan::{self, Launch};
use crate::probe::{self, DeviceInfo};
use crate::weights::{repack, HostMatrix};
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaGraph, CudaModule, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PushKernelArg,
};
use cudarc::nvrtc::Ptx;
use linrt::config::{Activation, FeatureMap, InputKind, NormPlacement, OutputKind, Positional};
use linrt::model::{add_sinusoidal, GROWTH_EXPONENT, GROWTH_LIMIT, MAX_STATE_EXPONENT};
use linrt::{Error, Inputs, Model, ModelConfig, StreamState, TensorRole};
use std::sync::Arc;

/// A weight matrix in device memory.
enum DeviceMatrix {
    F32(CudaSlice<f32>),
    F16(CudaSlice<u32>),
    I8 { words: CudaSlice<u32>, scales: CudaSlice<f32>, block: i32 },
}

struct Linear {
    w: DeviceMatrix,
    b: CudaSlice<f32>,
    rows: usize,
    cols: usize,
}

struct Norm {
    gamma: CudaSlice<f32>,
    beta: CudaSlice<f32>,
}

struct DeviceLayer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    l1: Linear,
    l2: Linear,
    n1: Norm,
    n2: Norm,
}

/// The kernels of kernels.cu, loaded.
struct Kernels {
    matmul_f32: CudaFunction,
    matmul_f16: CudaFunction,
    matmul_i8: CudaFunction,
    quantize_rows: CudaFunction,
    layer_norm_rows: CudaFunction,
    elu_plus_one: CudaFunction,
    relu: CudaFunction,
    gelu: CudaFunction,
    add_assign: CudaFunction,
    embed_tokens: CudaFunction,
    attention_step: CudaFunction,
    flag_non_finite: CudaFunction,
    check_normalisers: CudaFunction,
    begin_pass: CudaFunction,
    rescale_grown: CudaFunction,
    bump_exponents: CudaFunction,
}

impl Kernels {
    fn load(module: &Arc<CudaModule>) -> Result<Kernels, CudaError> {
        let f = |name: &str| module.load_function(name).map_err(driver("cuModuleGetFunction"));
        Ok(Kernels {
            matmul_f32: f("matmul_f32")?,
            matmul_f16: f("matmul_f16")?,
            matmul_i8: f("matmul_i8")?,
            quantize_rows: f("quantize_rows")?,
            layer_norm_rows: f("layer_norm_rows")?,
            elu_plus_one: f("elu_plus_one")?,
            relu: f("relu")?,
            gelu: f("gelu")?,
            add_assign: f("add_assign")?,
            embed_tokens: f("embed_tokens")?,
            attention_step: f("attention_step")?,
            flag_non_finite: f("flag_non_finite")?,
            check_normalisers: f("check_normalisers")?,
            begin_pass: f("begin_pass")?,
            rescale_grown: f("rescale_grown")?,
            bump_exponents: f("bump_exponents")?,
        })
    }
}

/// A `.lrt` model on one GPU: its weights in device memory, its kernels compiled for
/// the device (or read from the disk cache).
pub struct CudaModel<'m> {
    model: Model<'m>,
    info: DeviceInfo,
    stream: Arc<CudaStream>,
    kernels: Kernels,
    layers: Vec<DeviceLayer>,
    embedding: Option<CudaSlice<f32>>,
    input: Option<Linear>,
    final_norm: Option<Norm>,
    output: Option<Linear>,
    int8: bool,
    weight_bytes: usize,
    /// Tells this load from every other in the process (states and workspaces hold
    /// device memory of one load).
    id: u64,
}

/// Numbers the model loads of this process.
static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What the kernels here do not cover, named before anything is uploaded.
pub fn check_supported(cfg: &ModelConfig) -> Result<(), CudaError> {
    match cfg.feature_map {
        FeatureMap::EluPlusOne | FeatureMap::Relu => Ok(()),
        other => Err(CudaError::Unsupported(format!(
            "the {other:?} feature map (elu+1 and relu run on CUDA; the random-feature maps run on the CPU)"
        ))),
    }
}

impl<'m> CudaModel<'m> {
    /// Uploads `model` to device `ordinal`.
    pub fn load(model: &Model<'m>, ordinal: usize) -> Result<CudaModel<'m>, CudaError> {
        let cfg = *model.config();
        check_supported(&cfg)?;
        let info = probe::device(ordinal)?;
        let ctx = CudaContext::new(ordinal).map_err(driver("cuDevicePrimaryCtxRetain"))?;
        let ptx = compile::ptx_cached(&info.arch())?;
        let module = ctx.load_module(Ptx::from_src(ptx)).map_err(driver("cuModuleLoadData"))?;
        let kernels = Kernels::load(&module)?;
        let stream = ctx.new_stream().map_err(driver("cuStreamCreate"))?;
        // SAFETY: every buffer of this model and its streams is used on this one
        // stream only, in order, so cudarc's cross-stream events are not needed; they
        // would also get in the way of capturing a step as a graph.
        unsafe { ctx.disable_event_tracking() };
        let mut weight_bytes = 0usize;
        let mut upload = |values: &[f32]| -> Result<CudaSlice<f32>, CudaError> {
            weight_bytes += 4 * values.len();
            stream.clone_htod(values).map_err(driver("cuMemcpyHtoD"))
        };
        let mut layers = Vec::with_capacity(cfg.n_layers as usize);
        for l in 0..cfg.n_layers {
            let w = model.layer(l)?;
            layers.push(DeviceLayer {
                q: linear(&stream, &w.q_w, upload(w.q_b)?)?,
                k: linear(&stream, &w.k_w, upload(w.k_b)?)?,
                v: linear(&stream, &w.v_w, upload(w.v_b)?)?,
                o: linear(&stream, &w.o_w, upload(w.o_b)?)?,
                l1: linear(&stream, &w.l1_w, upload(w.l1_b)?)?,
                l2: linear(&stream, &w.l2_w, upload(w.l2_b)?)?,
                n1: Norm { gamma: upload(w.n1_w)?, beta: upload(w.n1_b)? },
                n2: Norm { gamma: upload(w.n2_w)?, beta: upload(w.n2_b)? },
            });
        }
        let embedding = match cfg.input_kind {
            InputKind::Tokens => Some(upload(model.f32_tensor(TensorRole::Embedding, 0)?)?),
            InputKind::Vectors => None,
        };
        let input = if cfg.input_kind == InputKind::Vectors && cfg.input_projection {
            let b = upload(model.f32_tensor(TensorRole::InputBias, 0)?)?;
            Some(linear(&stream, &model.matrix(TensorRole::InputWeight, 0)?, b)?)
        } else {
            None
        };
        let final_norm = if cfg.final_norm {
            Some(Norm {
                gamma: upload(model.f32_tensor(TensorRole::FinalNormWeight, 0)?)?,
                beta: upload(model.f32_tensor(TensorRole::FinalNormBias, 0)?)?,
            })
        } else {
            None
        };
        let output = match cfg.output_kind {
            OutputKind::Linear => {
                let b = upload(model.f32_tensor(TensorRole::OutputBias, 0)?)?;
                Some(linear(&stream, &model.matrix(TensorRole::OutputWeight, 0)?, b)?)
            }
            OutputKind::Hidden => None,
        };
        let matrices = layers.iter().flat_map(|l| [&l.q, &l.k, &l.v, &l.o, &l.l1, &l.l2]);
        let weight_bytes =
            weight_bytes + matrices.chain(input.iter()).chain(output.iter()).map(|m| matrix_bytes(&m.w)).sum::<usize>();
        stream.synchronize().map_err(driver("cuStreamSynchronize"))?;
        Ok(CudaModel {
            model: *model,
            info,
            stream,
            kernels,
            layers,
            embedding,
            input,
            final_norm,
            output,
            int8: model.has_int8(),
            weight_bytes,
            id: LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn device(&self) -> &DeviceInfo {
        &self.info
    }

    pub fn config(&self) -> &ModelConfig {
        self.model.config()
    }

    pub fn model(&self) -> &Model<'m> {
        &self.model
    }

    /// Bytes of weights in device memory.
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }
}

fn matrix_bytes(m: &DeviceMatrix) -> usize {
    match m {
        DeviceMatrix::F32(v) => v.num_bytes(),
        DeviceMatrix::F16(v) => v.num_bytes(),
        DeviceMatrix::I8 { words, scales, .. } => words.num_bytes() + scales.num_bytes(),
    }
}

fn linear(stream: &Arc<CudaStream>, m: &linrt::kernels::Matrix, b: CudaSlice<f32>) -> Result<Linear, CudaError> {
    let up = driver("cuMemcpyHtoD");
    let host = repack(m)?;
    let (rows, cols) = (host.rows(), host.cols());
    let w = match host {
        HostMatrix::F32 { values, .. } => DeviceMatrix::F32(stream.clone_htod(&values).map_err(&up)?),
        HostMatrix::F16 { pairs, .. } => DeviceMatrix::F16(stream.clone_htod(&pairs).map_err(&up)?),
        HostMatrix::I8 { words, scales, block, .. } => DeviceMatrix::I8 {
            words: stream.clone_htod(&words).map_err(&up)?,
            scales: stream.clone_htod(&scales).map_err(&up)?,
            block: int(block)?,
        },
    };
    Ok(Linear { w, b, rows, cols })
}

/// One stream's bookkeeping on the host; its values live on the device.
#[derive(Debug, Clone, Copy, Default)]
struct StreamInfo {
    position: u64,
    exponent: u32,
    broken_at: Option<u64>,
}

/// A pass's int8 activations: words of four per row (`[rows, ceil(k / 4)]`) and one
/// scale per row, shared by the matrices that read the same input.
struct Quantized {
    words: CudaSlice<u32>,
    scales: CudaSlice<f32>,
}

/// Device buffers of one pass, sized for `max_rows` rows.
struct Buffers {
    hidden: CudaSlice<f32>,
    branch: CudaSlice<f32>,
    query: CudaSlice<f32>,
    key: CudaSlice<f32>,
    value: CudaSlice<f32>,
    attended: CudaSlice<f32>,
    ffn: CudaSlice<f32>,
    factors: CudaSlice<f32>,
    // Exchanged with the host every pass (io.rs: mapped on integrated GPUs).
    input: IoBuffer<f32>,
    ids: IoBuffer<u32>,
    positions: IoBuffer<f32>,
    output: IoBuffer<f32>,
    /// [0]: a non-finite attention output in this pass.
    flags: IoBuffer<u32>,
    /// Per stream: bit 0 a non-finite z, bit 1 a z past the growth limit.
    z_flags: IoBuffer<u32>,
    /// Per stream: the state exponent (the host's copy goes up before each pass and
    /// comes back after it).
    exponents: IoBuffer<u32>,
    /// Per stream: the device address of its state (`CudaState`), which the
    /// attention and range-check kernels read.
    state_ptrs: IoBuffer<u64>,
}

/// What a pass sends back besides its outputs, once the stream is synchronised.
struct Downloads {
    flags: [u32; 1],
    z_flags: Vec<u32>,
    exponents: Vec<u32>,
}

impl Downloads {
    fn finish(self) -> (bool, Vec<u32>, Vec<u32>) {
        (self.flags[0] != 0, self.z_flags, self.exponents)
    }
}

/// One stream's recurrent state in device memory (the CUDA backend's
/// `Backend::State`), in the CPU's layout, with its position and exponent on the host.
pub struct CudaState {
    values: CudaSlice<f32>,
    info: StreamInfo,
    /// The [`CudaModel`] load it belongs to (a state is device memory of one load).
    model_id: u64,
}

impl CudaState {
    /// A zero state of `model`'s shape on its device.
    pub fn new(model: &CudaModel) -> Result<CudaState, CudaError> {
        let floats = StreamState::floats_for(model.config())?;
        let values = model.stream.alloc_zeros::<f32>(floats.max(1)).map_err(driver("cuMemAlloc"))?;
        // States are made, reset and restored on the model's stream and passes run on
        // a workspace's: each of these finishes before it returns.
        model.stream.synchronize().map_err(driver("cuStreamSynchronize"))?;
        Ok(CudaState { values, info: StreamInfo::default(), model_id: model.id })
    }

    /// Positions consumed since creation, reset or restore.
    pub fn position(&self) -> u64 {
        self.info.position
    }

    /// Forgets the stream: zero state, position 0.
    pub fn reset(&mut self, model: &CudaModel) -> Result<(), CudaError> {
        model.stream.memset_zeros(&mut self.values).map_err(driver("cuMemsetD8"))?;
        model.stream.synchronize().map_err(driver("cuStreamSynchronize"))?;
        self.info = StreamInfo::default();
        Ok(())
    }

    /// Bytes [`CudaState::save`] writes (the CPU's count).
    pub fn saved_bytes(model: &CudaModel) -> Result<usize, CudaError> {
        Ok(linrt::STATE_HEADER_BYTES + 4 * StreamState::floats_for(model.config())?)
    }

    /// The state in the CPU's saved-state format: a CPU session restores it.
    pub fn save(&self, model: &CudaModel, out: &mut [u8]) -> Result<usize, CudaError> {
        if let Some(position) = self.info.broken_at {
            return Err(Error::NonFiniteStep { position }.into());
        }
        let n = StreamState::floats_for(model.config())?;
        let mut values = vec![0f32; n];
        let s = &model.stream;
        s.memcpy_dtoh(&self.values.slice(..n), &mut values).map_err(driver("cuMemcpyDtoH"))?;
        s.synchronize().map_err(driver("cuStreamSynchronize"))?;
        let mut floats = vec![0f32; n];
        let mut host = StreamState::new(&model.model, &mut floats)?;
        let position = self.info.position;
        host.load(&values, position, self.info.exponent).map_err(|_| Error::NonFiniteStep { position })?;
        Ok(host.save(out)?)
    }

    /// Restores bytes [`CudaState::save`] (or a CPU session) wrote for this model.
    /// Nothing changes unless they are valid.
    pub fn restore(&mut self, model: &CudaModel, bytes: &[u8]) -> Result<(), CudaError> {
        let n = StreamState::floats_for(model.config())?;
        let mut floats = vec![0f32; n];
        let mut host = StreamState::new(&model.model, &mut floats)?;
        host.restore(bytes)?;
        let mut view = self.values.slice_mut(..n);
        model.stream.memcpy_htod(host.floats(), &mut view).map_err(driver("cuMemcpyHtoD"))?;
        model.stream.synchronize().map_err(driver("cuStreamSynchronize"))?;
        self.info = StreamInfo { position: host.position(), exponent: host.exponent(), broken_at: None };
        Ok(())
    }
}

/// One worker's scratch on the device (the CUDA backend's `Backend::Workspace`):
/// the buffers of passes of up to `max_rows` rows, and the step graph.
pub struct CudaWorkspace {
    /// Its own stream: passes of workers sharing one model run side by side.
    stream: Arc<CudaStream>,
    /// The [`CudaModel`] load it was sized for (its step graph holds that load's
    /// weights).
    model_id: u64,
    buffers: Buffers,
    quantized: Quantized,
    max_rows: usize,
    /// Host staging for the position encoding.
    host_positions: Vec<f32>,
    /// The one-position pass over B streams as a CUDA graph, captured at the first
    /// step of B streams (the states it runs on are read from `state_ptrs`).
    step_graph: Option<(usize, CudaGraph)>,
}

impl CudaWorkspace {
    /// Buffers for passes of up to `max_rows` rows (streams × positions); inputs and
    /// outputs in mapped host memory on an integrated GPU, copied on a discrete one.
    pub fn new(model: &CudaModel, max_rows: usize) -> Result<CudaWorkspace, CudaError> {
        let io = if model.info.integrated { IoMemory::Mapped } else { IoMemory::Copied };
        Self::with_io(model, max_rows, io)
    }

    /// [`CudaWorkspace::new`] with the host-exchanged buffers where `io` says.
    pub fn with_io(model: &CudaModel, max_rows: usize, io: IoMemory) -> Result<CudaWorkspace, CudaError> {
        let cfg = *model.config();
        let rows = max_rows;
        if rows == 0 {
            return Err(Error::BadChunkLength { len: 0, max: 0 }.into());
        }
        plan::matmul(1, rows)?; // the grid limit on rows, said before allocating
        let stream = model.stream.context().new_stream().map_err(driver("cuStreamCreate"))?;
        let s = &stream;
        let alloc = |n: usize| s.alloc_zeros::<f32>(n.max(1)).map_err(driver("cuMemAlloc"));
        let d = cfg.d_model as usize;
        let widest = [d, cfg.input_width(), cfg.qk_width(), cfg.v_width(), cfg.d_ff as usize].into_iter().max();
        let k4 = widest.unwrap_or(1).div_ceil(4);
        let buffers = Buffers {
            hidden: alloc(rows * d)?,
            branch: alloc(rows * d)?,
            query: alloc(rows * cfg.qk_width())?,
            key: alloc(rows * cfg.qk_width())?,
            value: alloc(rows * cfg.v_width())?,
            attended: alloc(rows * cfg.v_width())?,
            ffn: alloc(rows * cfg.d_ff as usize)?,
            factors: alloc(rows)?,
            input: IoBuffer::new(s, rows * cfg.input_width(), io)?,
            ids: IoBuffer::new(s, rows, io)?,
            positions: IoBuffer::new(s, rows * d, io)?,
            output: IoBuffer::new(s, rows * cfg.output_dim(), io)?,
            flags: IoBuffer::new(s, 1, io)?,
            z_flags: IoBuffer::new(s, rows, io)?,
            exponents: IoBuffer::new(s, rows, io)?,
            state_ptrs: IoBuffer::new(s, rows, io)?,
        };
        let quantized =
            Quantized { words: s.alloc_zeros::<u32>(rows * k4).map_err(driver("cuMemAlloc"))?, scales: alloc(rows)? };
        stream.synchronize().map_err(driver("cuStreamSynchronize"))?;
        Ok(CudaWorkspace {
            stream,
            model_id: model.id,
            buffers,
            quantized,
            max_rows,
            host_positions: vec![0.0; rows * d],
            step_graph: None,
        })
    }

    pub fn max_rows(&self) -> usize {
        self.max_rows
    }
}

/// The CUDA backend: one device. `prepare` uploads a model, `forward` runs B
/// streams × T positions on states and scratch in device memory, as the CPU backend
/// does on caller memory.
#[derive(Debug, Clone, Copy)]
pub struct Cuda {
    ordinal: usize,
}

impl Cuda {
    /// The backend of device `ordinal`, once the driver says it is there.
    pub fn new(ordinal: usize) -> Result<Cuda, CudaError> {
        probe::device(ordinal)?;
        Ok(Cuda { ordinal })
    }
}

impl linrt::Backend for Cuda {
    type Prepared<'m> = CudaModel<'m>;
    type State<'s> = CudaState;
    type Workspace<'w> = CudaWorkspace;
    type Error = CudaError;

    /// Nothing: the weights go to device memory, not to the host arena.
    fn prepared_bytes(&self, _: &Model) -> Result<usize, CudaError> {
        Ok(0)
    }

    fn prepare<'m>(&self, model: &Model<'m>, _: &'m mut [u8]) -> Result<CudaModel<'m>, CudaError> {
        CudaModel::load(model, self.ordinal)
    }

    fn forward(
        &self,
        prepared: &CudaModel<'_>,
        workspace: &mut CudaWorkspace,
        states: &mut [&mut CudaState],
        inputs: Inputs,
        outputs: &mut [f32],
    ) -> Result<(), CudaError> {
        forward(prepared, workspace, states, inputs, outputs)
    }
}

/// The forward pass (`Backend::forward` of [`Cuda`]): `states.len()` streams advance
/// by T positions each.
pub fn forward(
    model: &CudaModel,
    workspace: &mut CudaWorkspace,
    states: &mut [&mut CudaState],
    inputs: Inputs,
    outputs: &mut [f32],
) -> Result<(), CudaError> {
    if workspace.model_id != model.id || states.iter().any(|s| s.model_id != model.id) {
        return Err(Error::BatchMismatch { reason: "a state or workspace belongs to another loaded model" }.into());
    }
    let mut pass = Pass {
        model,
        stream: workspace.stream.clone(),
        streams: states.iter().map(|s| s.info).collect(),
        state_floats: StreamState::floats_for(model.config())?,
        max_rows: workspace.max_rows,
        buffers: &mut workspace.buffers,
        quantized: &mut workspace.quantized,
        host_positions: &mut workspace.host_positions,
        step_graph: &mut workspace.step_graph,
    };
    let result = pass.forward(states, inputs, outputs);
    for (state, info) in states.iter_mut().zip(pass.streams) {
        state.info = info;
    }
    result
}

/// One forward pass in progress: the model, the streams' bookkeeping, the scratch.
struct Pass<'x, 'm> {
    model: &'x CudaModel<'m>,
    /// The workspace's own stream: workers sharing a model do not wait for, or get
    /// captured into, each other's passes.
    stream: Arc<CudaStream>,
    streams: Vec<StreamInfo>,
    state_floats: usize,
    max_rows: usize,
    buffers: &'x mut Buffers,
    quantized: &'x mut Quantized,
    host_positions: &'x mut Vec<f32>,
    step_graph: &'x mut Option<(usize, CudaGraph)>,
}

impl Pass<'_, '_> {
    /// Every stream advances by T positions: `inputs` holds B·T positions stream by
    /// stream, `outputs` gets B·T rows of `output_dim`.
    fn forward(&mut self, states: &[&mut CudaState], inputs: Inputs, outputs: &mut [f32]) -> Result<(), CudaError> {
        let cfg = *self.model.config();
        let b = self.streams.len();
        let rows = match inputs {
            Inputs::Tokens(ids) => ids.len(),
            Inputs::Vectors(v) => v.len() / cfg.input_width().max(1),
        };
        if rows == 0 || !rows.is_multiple_of(b) {
            return Err(Error::BadLength {
                what: "forward inputs (B streams × T positions)",
                expected: b,
                found: rows,
            }
            .into());
        }
        let t = rows / b;
        if rows > self.max_rows {
            return Err(Error::BadChunkLength { len: rows, max: self.max_rows }.into());
        }
        let out_len = rows * cfg.output_dim();
        if outputs.len() != out_len {
            return Err(Error::BadLength { what: "output", expected: out_len, found: outputs.len() }.into());
        }
        for s in &self.streams {
            if let Some(position) = s.broken_at {
                return Err(Error::NonFiniteStep { position }.into());
            }
        }
        self.check_inputs(inputs, rows)?;
        // Nothing is queued before this line; from here on a failure leaves the
        // device part way through a pass, so the streams are marked broken.
        let starts: Vec<u64> = self.streams.iter().map(|s| s.position).collect();
        let result = self.run(states, inputs, rows, t, outputs);
        let non_finite = match result {
            Ok(non_finite) => non_finite,
            Err(e) => {
                let _ = self.stream.synchronize();
                for (s, &start) in self.streams.iter_mut().zip(&starts) {
                    s.position = start.saturating_add(t as u64);
                    s.broken_at.get_or_insert(start);
                }
                return Err(e);
            }
        };
        if non_finite {
            // As the CPU: every stream of the pass is broken at the pass's first position.
            for (s, &start) in self.streams.iter_mut().zip(&starts) {
                s.broken_at.get_or_insert(start);
            }
            return Err(Error::NonFiniteStep { position: self.streams[0].broken_at.unwrap_or(starts[0]) }.into());
        }
        Ok(())
    }

    /// The pass itself: uploads, the kernels (the step graph for one position), the
    /// results back. True when something went NaN or infinite.
    fn run(
        &mut self,
        states: &[&mut CudaState],
        inputs: Inputs,
        rows: usize,
        t: usize,
        outputs: &mut [f32],
    ) -> Result<bool, CudaError> {
        let b = self.streams.len();
        let out_len = outputs.len();
        self.upload(inputs, rows, t)?;
        let st = self.stream.clone();
        let pointers: Vec<u64> = states.iter().map(|s| s.values.device_ptr(&st).0).collect();
        self.buffers.state_ptrs.write(&st, &pointers)?;
        for s in &mut self.streams {
            s.position = s.position.saturating_add(t as u64);
        }
        if t == 1 {
            // A step: the same kernels with the same arguments every time, so they run
            // as one graph (one launch), captured at the first step of B streams.
            if self.step_graph.as_ref().is_none_or(|(streams, _)| *streams != b) {
                *self.step_graph = None;
                *self.step_graph = Some((b, self.capture(rows)?));
            }
            let (_, graph) = self.step_graph.as_ref().expect("captured above");
            graph.launch().map_err(driver("cuGraphLaunch"))?;
        } else {
            self.pass(rows, t)?;
        }
        let mut d = self.buffers_download(out_len, outputs)?;
        st.synchronize().map_err(driver("cuStreamSynchronize"))?;
        self.buffers.output.finish_read(outputs);
        self.buffers.flags.finish_read(&mut d.flags);
        self.buffers.z_flags.finish_read(&mut d.z_flags);
        self.buffers.exponents.finish_read(&mut d.exponents);
        let (attended_non_finite, z_flags, exponents) = d.finish();
        for (s, e) in self.streams.iter_mut().zip(exponents) {
            s.exponent = e;
        }
        Ok(attended_non_finite || z_flags.iter().any(|f| f & 1 != 0) || outputs.iter().any(|v| !v.is_finite()))
    }

    /// The inputs' checks, before anything is queued: the CPU's errors for them.
    fn check_inputs(&self, inputs: Inputs, rows: usize) -> Result<(), CudaError> {
        let cfg = *self.model.config();
        match (cfg.input_kind, inputs) {
            (InputKind::Tokens, Inputs::Tokens(ids)) => {
                if let Some(&token) = ids.iter().find(|&&id| id >= cfg.input_dim) {
                    return Err(Error::TokenOutOfRange { token, vocab: cfg.input_dim }.into());
                }
            }
            (InputKind::Vectors, Inputs::Vectors(v)) => {
                let width = cfg.input_dim as usize;
                if v.len() != rows * width {
                    return Err(Error::BadLength { what: "input", expected: rows * width, found: v.len() }.into());
                }
                if let Some(index) = v.iter().position(|x| !x.is_finite()) {
                    return Err(Error::NonFiniteInput { index }.into());
                }
            }
            _ => return Err(Error::WrongInputKind { expected: cfg.input_kind }.into()),
        }
        Ok(())
    }

    /// Inputs, the position encoding and the streams' exponents to the device
    /// (checked by `check_inputs`).
    fn upload(&mut self, inputs: Inputs, rows: usize, t: usize) -> Result<(), CudaError> {
        let cfg = *self.model.config();
        let st = self.stream.clone();
        match inputs {
            Inputs::Tokens(ids) => self.buffers.ids.write(&st, ids)?,
            Inputs::Vectors(v) => self.buffers.input.write(&st, v)?,
        }
        let d = cfg.d_model as usize;
        if cfg.positional == Positional::Sinusoidal {
            let table = &mut self.host_positions[..rows * d];
            table.fill(0.0);
            for (i, s) in self.streams.iter().enumerate() {
                add_sinusoidal(&mut table[i * t * d..(i + 1) * t * d], d, s.position);
            }
            self.buffers.positions.write(&st, &self.host_positions[..rows * d])?;
        }
        let exponents: Vec<u32> = self.streams.iter().map(|s| s.exponent).collect();
        self.buffers.exponents.write(&st, &exponents)?;
        Ok(())
    }

    /// Queues the outputs, flags and exponents of a pass for the host.
    fn buffers_download(&mut self, out_len: usize, outputs: &mut [f32]) -> Result<Downloads, CudaError> {
        let st = self.stream.clone();
        let b = self.streams.len();
        let mut d = Downloads { flags: [0], z_flags: vec![0; b], exponents: vec![0; b] };
        self.buffers.output.queue_read(&st, &mut outputs[..out_len])?;
        self.buffers.flags.queue_read(&st, &mut d.flags)?;
        self.buffers.z_flags.queue_read(&st, &mut d.z_flags)?;
        self.buffers.exponents.queue_read(&st, &mut d.exponents)?;
        Ok(d)
    }

    /// The kernels of a one-position pass over every stream, recorded as a graph.
    fn capture(&mut self, rows: usize) -> Result<CudaGraph, CudaError> {
        let st = self.stream.clone();
        st.begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(driver("cuStreamBeginCapture"))?;
        let recorded = self.pass(rows, 1);
        let graph = st.end_capture(sys::CUgraphInstantiate_flags::CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH);
        recorded?;
        graph
            .map_err(driver("cuStreamEndCapture / cuGraphInstantiate"))?
            .ok_or_else(|| CudaError::Driver { call: "cuStreamEndCapture", message: "no graph was captured".into() })
    }

    /// Every kernel of a pass of `rows` = streams × `t` rows, in order, on the model's
    /// stream: nothing here waits for the device or touches the host.
    fn pass(&mut self, rows: usize, t: usize) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let st = self.stream.clone();
        let b = self.streams.len();
        {
            // Factors from the exponents, and the flags zeroed (by a kernel, not a
            // memset: on an integrated GPU the flags are mapped host memory).
            let (streams, max) = (int(b)?, MAX_STATE_EXPONENT);
            let bf = &mut *self.buffers;
            let mut l = st.launch_builder(&model.kernels.begin_pass);
            l.arg(bf.exponents.device()).arg(&mut bf.factors).arg(bf.flags.device_mut());
            l.arg(bf.z_flags.device_mut()).arg(&streams).arg(&max);
            launch(l, plan::elementwise(b)?)?;
        }
        self.embed(rows)?;
        let d = cfg.d_model as usize;
        if cfg.positional == Positional::Sinusoidal {
            self.add_assign(Which::Hidden, Which::Positions, rows * d)?;
        }
        for layer in 0..model.layers.len() {
            self.layer(layer, rows, t)?;
        }
        self.check_state_range()?;
        self.head(rows)
    }

    fn embed(&mut self, rows: usize) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let st = self.stream.clone();
        let d = cfg.d_model as usize;
        match cfg.input_kind {
            InputKind::Tokens => {
                let table = model.embedding.as_ref().ok_or(Error::WrongInputKind { expected: cfg.input_kind })?;
                let [d_i, rows_i] = ints([d, rows])?;
                let mut l = st.launch_builder(&model.kernels.embed_tokens);
                l.arg(table).arg(self.buffers.ids.device()).arg(&mut self.buffers.hidden).arg(&d_i).arg(&rows_i);
                launch(l, plan::embed(d, rows)?)
            }
            InputKind::Vectors => match &model.input {
                Some(projection) => self.linear(projection, Which::Input, Which::Hidden, rows, model.int8),
                None => self.copy(Which::Input, Which::Hidden, rows * d),
            },
        }
    }

    /// One encoder layer over `rows` rows (layer.rs's `encoder_layer`).
    fn layer(&mut self, index: usize, rows: usize, t: usize) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let layer = &model.layers[index];
        let d = cfg.d_model as usize;
        let pre = cfg.norm_placement == NormPlacement::Pre;
        let int8 = model.int8;
        // Attention block.
        let attn_in = if pre {
            self.copy(Which::Hidden, Which::Branch, rows * d)?;
            self.layer_norm(Which::Branch, &layer.n1, rows, d)?;
            Which::Branch
        } else {
            Which::Hidden
        };
        if int8 {
            self.quantize(attn_in, rows, d)?;
        }
        self.linear(&layer.q, attn_in, Which::Query, rows, false)?;
        self.linear(&layer.k, attn_in, Which::Key, rows, false)?;
        self.linear(&layer.v, attn_in, Which::Value, rows, false)?;
        let qk = rows * cfg.qk_width();
        let map = match cfg.feature_map {
            FeatureMap::Relu => &model.kernels.relu,
            _ => &model.kernels.elu_plus_one,
        };
        self.elementwise(map, Which::Query, qk)?;
        self.elementwise(map, Which::Key, qk)?;
        self.attention(index, t)?;
        let v_width = cfg.v_width();
        {
            let st = self.stream.clone();
            let (count, mut l) = (int(rows * v_width)?, st.launch_builder(&model.kernels.flag_non_finite));
            l.arg(&self.buffers.attended).arg(&count).arg(self.buffers.flags.device_mut());
            launch(l, plan::elementwise(rows * v_width)?)?;
        }
        self.linear(&layer.o, Which::Attended, Which::Branch, rows, int8)?;
        self.add_assign(Which::Hidden, Which::Branch, rows * d)?;
        if !pre {
            self.layer_norm(Which::Hidden, &layer.n1, rows, d)?;
        }
        // Feed-forward block.
        let ffn_in = if pre {
            self.copy(Which::Hidden, Which::Branch, rows * d)?;
            self.layer_norm(Which::Branch, &layer.n2, rows, d)?;
            Which::Branch
        } else {
            Which::Hidden
        };
        self.linear(&layer.l1, ffn_in, Which::Ffn, rows, int8)?;
        let act = match cfg.activation {
            Activation::Relu => &model.kernels.relu,
            Activation::Gelu => &model.kernels.gelu,
        };
        self.elementwise(act, Which::Ffn, rows * cfg.d_ff as usize)?;
        self.linear(&layer.l2, Which::Ffn, Which::Branch, rows, int8)?;
        self.add_assign(Which::Hidden, Which::Branch, rows * d)?;
        if !pre {
            self.layer_norm(Which::Hidden, &layer.n2, rows, d)?;
        }
        Ok(())
    }

    fn attention(&mut self, layer: usize, t: usize) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let (heads, f, dv) = (cfg.n_heads as usize, cfg.features_per_head() as usize, cfg.d_value as usize);
        let launch_shape = plan::attention(heads, self.streams.len(), f, dv)?;
        let layer_floats = self.state_floats / cfg.n_layers.max(1) as usize;
        let args = ints([layer * layer_floats, heads, f, dv, t])?;
        let st = self.stream.clone();
        let b = &mut *self.buffers;
        let mut l = st.launch_builder(&model.kernels.attention_step);
        l.arg(b.state_ptrs.device()).arg(&args[0]).arg(&b.factors).arg(&b.query).arg(&b.key).arg(&b.value);
        l.arg(&mut b.attended).arg(&args[1]).arg(&args[2]).arg(&args[3]).arg(&args[4]).arg(&cfg.attention_eps);
        launch(l, launch_shape)
    }

    /// The CPU's `rescale_if_grown` for every stream, on the device: flags each
    /// stream's z (non-finite, or past the growth limit), rescales the grown ones and
    /// counts it in their exponents.
    fn check_state_range(&mut self) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let b = self.streams.len();
        let layer_floats = self.state_floats / cfg.n_layers.max(1) as usize;
        let z_count = cfg.n_heads as usize * cfg.features_per_head() as usize;
        let z_offset = layer_floats - z_count;
        let st = self.stream.clone();
        let args = ints([self.state_floats, layer_floats, z_offset, z_count])?;
        let mut l = st.launch_builder(&model.kernels.check_normalisers);
        l.arg(self.buffers.state_ptrs.device()).arg(&args[0]).arg(&args[1]).arg(&args[2]).arg(&args[3]);
        l.arg(&GROWTH_LIMIT);
        l.arg(self.buffers.z_flags.device_mut());
        launch(l, plan::per_stream(cfg.n_layers as usize * z_count, b)?)?;
        let (growth, max, streams) = (GROWTH_EXPONENT, MAX_STATE_EXPONENT, int(b)?);
        let mut l = st.launch_builder(&model.kernels.rescale_grown);
        l.arg(self.buffers.state_ptrs.device()).arg(&args[0]).arg(self.buffers.z_flags.device());
        l.arg(self.buffers.exponents.device());
        l.arg(&growth).arg(&max);
        launch(l, plan::per_stream(self.state_floats, b)?)?;
        let mut l = st.launch_builder(&model.kernels.bump_exponents);
        l.arg(self.buffers.exponents.device_mut())
            .arg(self.buffers.z_flags.device())
            .arg(&streams)
            .arg(&growth)
            .arg(&max);
        launch(l, plan::elementwise(b)?)
    }

    /// The final norm and the output head (backend.rs's `head`).
    fn head(&mut self, rows: usize) -> Result<(), CudaError> {
        let model = self.model;
        let cfg = *model.config();
        let d = cfg.d_model as usize;
        if let Some(norm) = &model.final_norm {
            self.layer_norm(Which::Hidden, norm, rows, d)?;
        }
        match &model.output {
            Some(head) => self.linear(head, Which::Hidden, Which::Output, rows, model.int8),
            None => self.copy(Which::Hidden, Which::Output, rows * d),
        }
    }

    /// `to = from · Wᵀ + b` over `rows` rows; `quantize` first quantizes `from` (int8
    /// models quantize each input once: pass false where it already is).
    fn linear(&mut self, m: &Linear, from: Which, to: Which, rows: usize, quantize: bool) -> Result<(), CudaError> {
        let model = self.model;
        if quantize && matches!(m.w, DeviceMatrix::I8 { .. }) {
            self.quantize(from, rows, m.cols)?;
        }
        let [n, k, rows_i] = ints([m.rows, m.cols, rows])?;
        let st = self.stream.clone();
        let kern = &model.kernels;
        let shape = plan::matmul(m.rows, rows)?;
        match &m.w {
            DeviceMatrix::F32(w) => {
                let (x, y) = self.buffers.pair(from, to);
                let mut l = st.launch_builder(&kern.matmul_f32);
                l.arg(w).arg(&m.b).arg(x).arg(y).arg(&n).arg(&k).arg(&rows_i);
                launch(l, shape)
            }
            DeviceMatrix::F16(w) => {
                let (x, y) = self.buffers.pair(from, to);
                let mut l = st.launch_builder(&kern.matmul_f16);
                l.arg(w).arg(&m.b).arg(x).arg(y).arg(&n).arg(&k).arg(&rows_i);
                launch(l, shape)
            }
            DeviceMatrix::I8 { words, scales, block } => {
                // The input, quantized, is in `quantized` (see `quantize`).
                let (q, y) = (&*self.quantized, self.buffers.get_mut(to));
                let mut l = st.launch_builder(&kern.matmul_i8);
                l.arg(words).arg(scales).arg(block).arg(&m.b).arg(&q.words).arg(&q.scales).arg(y);
                l.arg(&n).arg(&k).arg(&rows_i);
                launch(l, shape)
            }
        }
    }

    /// Quantizes `rows` rows of `cols` values of `which` into `quantized`.
    fn quantize(&mut self, which: Which, rows: usize, cols: usize) -> Result<(), CudaError> {
        let model = self.model;
        let st = self.stream.clone();
        let [k, rows_i] = ints([cols, rows])?;
        let (x, q) = (&*self.buffers.get_mut(which), &mut *self.quantized);
        let mut l = st.launch_builder(&model.kernels.quantize_rows);
        l.arg(x).arg(&mut q.words).arg(&mut q.scales).arg(&k).arg(&rows_i);
        launch(l, plan::quantize(rows)?)
    }

    fn layer_norm(&mut self, which: Which, norm: &Norm, rows: usize, width: usize) -> Result<(), CudaError> {
        let model = self.model;
        let st = self.stream.clone();
        let eps = model.config().layernorm_eps;
        let [w, r] = ints([width, rows])?;
        let x = self.buffers.get_mut(which);
        let mut l = st.launch_builder(&model.kernels.layer_norm_rows);
        l.arg(x).arg(&norm.gamma).arg(&norm.beta).arg(&eps).arg(&w).arg(&r);
        launch(l, plan::layer_norm(rows)?)
    }

    fn elementwise(&mut self, kernel: &CudaFunction, which: Which, count: usize) -> Result<(), CudaError> {
        let st = self.stream.clone();
        let n = int(count)?;
        let x = self.buffers.get_mut(which);
        let mut l = st.launch_builder(kernel);
        l.arg(x).arg(&n);
        launch(l, plan::elementwise(count)?)
    }

    /// `x += y` over `count` values.
    fn add_assign(&mut self, x: Which, y: Which, count: usize) -> Result<(), CudaError> {
        let model = self.model;
        let st = self.stream.clone();
        let n = int(count)?;
        let (y, x) = self.buffers.pair(y, x);
        let mut l = st.launch_builder(&model.kernels.add_assign);
        l.arg(x).arg(y).arg(&n);
        launch(l, plan::elementwise(count)?)
    }

    fn copy(&mut self, from: Which, to: Which, count: usize) -> Result<(), CudaError> {
        let st = self.stream.clone();
        let (x, y) = self.buffers.pair(from, to);
        let mut dst = y.slice_mut(..count);
        st.memcpy_dtod(&x.slice(..count), &mut dst).map_err(driver("cuMemcpyDtoD"))
    }
}

/// The f32 buffers of a pass, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Hidden,
    Branch,
    Query,
    Key,
    Value,
    Attended,
    Ffn,
    Input,
    Positions,
    Output,
}

impl Buffers {
    fn slots(&mut self) -> [(Which, &mut CudaSlice<f32>); 10] {
        let Buffers { hidden, branch, query, key, value, attended, ffn, input, positions, output, .. } = self;
        [
            (Which::Hidden, hidden),
            (Which::Branch, branch),
            (Which::Query, query),
            (Which::Key, key),
            (Which::Value, value),
            (Which::Attended, attended),
            (Which::Ffn, ffn),
            (Which::Input, input.device_mut()),
            (Which::Positions, positions.device_mut()),
            (Which::Output, output.device_mut()),
        ]
    }

    fn get_mut(&mut self, which: Which) -> &mut CudaSlice<f32> {
        let slot = self.slots().into_iter().find(|(w, _)| *w == which);
        slot.map(|(_, s)| s).expect("every Which has a slot")
    }

    /// `from` to read and `to` to write: two different buffers.
    fn pair(&mut self, from: Which, to: Which) -> (&CudaSlice<f32>, &mut CudaSlice<f32>) {
        debug_assert_ne!(from, to, "a kernel reads and writes different buffers");
        let (mut x, mut y) = (None, None);
        for (w, s) in self.slots() {
            if w == from {
                x = Some::<&CudaSlice<f32>>(s);
            } else if w == to {
                y = Some(s);
            }
        }
        (x.expect("from has a slot"), y.expect("to has a slot"))
    }
}

/// A count or offset as the kernels' `int`: an error, not a wrapped value, past 2^31.
fn int(value: usize) -> Result<i32, CudaError> {
    i32::try_from(value).map_err(|_| CudaError::Unsupported(format!("a pass of {value} values in one buffer")))
}

/// [`int`] of each.
fn ints<const N: usize>(values: [usize; N]) -> Result<[i32; N], CudaError> {
    let mut out = [0; N];
    for (o, v) in out.iter_mut().zip(values) {
        *o = int(v)?;
    }
    Ok(out)
}

fn launch(mut args: cudarc::driver::LaunchArgs<'_>, shape: Launch) -> Result<(), CudaError> {
    let cfg = LaunchConfig { grid_dim: shape.grid, block_dim: shape.block, shared_mem_bytes: shape.shared_bytes };
    // SAFETY: every kernel's arguments were pushed in its signature's order and types
    // (kernels.cu), buffers are sized for the pass's rows (CudaStreams::new) and the
    // shape covers exactly the sizes passed (plan.rs).
    unsafe { args.launch(cfg) }.map(|_| ()).map_err(driver("cuLaunchKernel"))
}
