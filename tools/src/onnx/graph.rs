//! The ONNX protobuf as the converter sees it: initializers by name, nodes, graph
//! inputs and outputs, metadata. Parsing and tensor decoding go through tract-onnx.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tract_onnx::pb::{self, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::*;

use super::guard;

/// ONNX element type codes (TensorProto.DataType) the converter cares about.
pub const ONNX_FLOAT: i32 = 1;
/// float16: what `model.half()` before export gives.
pub const ONNX_FLOAT16: i32 = 10;
pub const ONNX_INT32: i32 = 6;
pub const ONNX_INT64: i32 = 7;

/// A graph input or output: name, element type, dims (None where symbolic).
#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: i32,
    pub dims: Vec<Option<i64>>,
}

/// A loaded ONNX model.
pub struct OnnxGraph {
    pub path: PathBuf,
    pub proto: pb::ModelProto,
    graph: pb::GraphProto,
    pub metadata: BTreeMap<String, String>,
    initializers: HashMap<String, usize>,
}

impl OnnxGraph {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::from_bytes(bytes, path)
    }

    /// The graph in `bytes`, read as if from `path` (named in messages; external
    /// tensor data is looked for beside it).
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let mut proto = guard("parsing the ONNX protobuf", || {
            use tract_onnx::prelude::Framework;
            let mut cursor = std::io::Cursor::new(bytes);
            tract_onnx::onnx().proto_model_for_read(&mut cursor)
        })
        .with_context(|| format!("{} is not a valid ONNX model", path.display()))?;
        let graph = proto.graph.take().ok_or_else(|| anyhow!("{} has no graph", path.display()))?;
        if graph.node.is_empty() {
            bail!("{} has an empty graph", path.display());
        }
        let initializers = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let metadata = proto.metadata_props.iter().map(|e| (e.key.clone(), e.value.clone())).collect();
        Ok(OnnxGraph { path: path.to_path_buf(), proto, graph, metadata, initializers })
    }

    fn graph(&self) -> &pb::GraphProto {
        &self.graph
    }

    pub fn nodes(&self) -> &[pb::NodeProto] {
        &self.graph().node
    }

    pub fn initializer_names(&self) -> impl Iterator<Item = &str> {
        self.graph().initializer.iter().map(|t| t.name.as_str())
    }

    /// The initializer behind `name`: itself, or the source of the Identity nodes
    /// that exporters write for parameters equal to another one.
    fn initializer_index(&self, name: &str) -> Option<usize> {
        let mut name = name;
        for _ in 0..16 {
            if let Some(&i) = self.initializers.get(name) {
                return Some(i);
            }
            let node = self.producer(name).filter(|n| n.op_type == "Identity")?;
            name = node.input.first()?;
        }
        None
    }

    /// True when both names lead to the same initializer.
    pub fn same_initializer(&self, a: &str, b: &str) -> bool {
        matches!((self.initializer_index(a), self.initializer_index(b)), (Some(x), Some(y)) if x == y)
    }

    /// The parameter PyTorch calls `name`: the initializer of that name (or behind
    /// Identity nodes), else where exporters that fold or deduplicate constants put
    /// it (see `params.rs`). The flag says it is stored transposed.
    fn param(&self, name: &str) -> Option<(usize, bool)> {
        if let Some(i) = self.initializer_index(name) {
            return Some((i, false));
        }
        super::params::locate(self, name)
    }

    pub fn has_initializer(&self, name: &str) -> bool {
        self.param(name).is_some()
    }

    /// Dims of a parameter without loading its data (as PyTorch has it).
    pub fn initializer_dims(&self, name: &str) -> Option<Vec<usize>> {
        let (index, transposed) = self.param(name)?;
        let t = &self.graph().initializer[index];
        let mut dims: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).ok()).collect::<Option<_>>()?;
        if transposed {
            dims.reverse();
        }
        Some(dims)
    }

    /// Loads a parameter (inline or external data) as f32 values with its shape, as
    /// PyTorch has it.
    pub fn f32_initializer(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (index, transposed) = self.param(name).ok_or_else(|| anyhow!("missing tensor {name}"))?;
        let proto = &self.graph().initializer[index];
        let dir = self.path.parent().and_then(|p| p.to_str()).map(|s| if s.is_empty() { "." } else { s });
        let tensor = guard("decoding a tensor", || {
            tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, proto, dir)
        })
        .with_context(|| format!("cannot decode tensor {name}"))?;
        let values = tensor_to_f32(&tensor).with_context(|| format!("tensor {name} is not numeric"))?;
        let shape = tensor.shape().to_vec();
        if transposed {
            return transpose(&shape, &values).ok_or_else(|| anyhow!("tensor {name} is not a matrix"));
        }
        Ok((shape, values))
    }

    /// The graph name of the initializer that holds parameter `name` (itself, or an
    /// anonymous one an exporter folded it into).
    pub fn stored_name(&self, name: &str) -> Option<&str> {
        self.param(name).map(|(i, _)| self.graph().initializer[i].name.as_str())
    }

    /// The initializer a graph value comes from, directly or through Identity.
    pub(crate) fn initializer_behind(&self, value: &str) -> Option<usize> {
        self.initializer_index(value)
    }

    /// Integer values of a constant (initializer or Constant node output).
    pub fn constant_ints(&self, name: &str) -> Option<Vec<i64>> {
        let proto = self.constant_proto(name)?;
        let tensor = guard("decoding a constant", || {
            tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, proto, None)
        })
        .ok()?;
        let cast = tensor.cast_to::<i64>().ok()?;
        let view = cast.try_as_plain_ram().ok()?;
        view.as_slice::<i64>().ok().map(|s| s.to_vec())
    }

    /// A scalar (or one-element) float constant.
    pub fn constant_scalar(&self, name: &str) -> Option<f32> {
        let proto = self.constant_proto(name)?;
        if proto.dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d)) != Some(1) {
            return None;
        }
        let tensor = guard("decoding a constant", || {
            tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, proto, None)
        })
        .ok()?;
        tensor_to_f32(&tensor).ok()?.first().copied()
    }

    /// All values of a float constant (initializer or Constant node output).
    pub fn constant_floats(&self, name: &str) -> Option<Vec<f32>> {
        let proto = self.constant_proto(name)?;
        let tensor = guard("decoding a constant", || {
            tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, proto, None)
        })
        .ok()?;
        tensor_to_f32(&tensor).ok()
    }

    fn constant_proto(&self, name: &str) -> Option<&pb::TensorProto> {
        if let Some(&i) = self.initializers.get(name) {
            return Some(&self.graph().initializer[i]);
        }
        let node = self
            .nodes()
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.first().map(|o| o == name).unwrap_or(false))?;
        node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref())
    }

    /// The node producing `output`, if any.
    pub fn producer(&self, output: &str) -> Option<&pb::NodeProto> {
        self.nodes().iter().find(|n| n.output.iter().any(|o| o == output))
    }

    /// Nodes reading `value`.
    pub fn consumers(&self, value: &str) -> Vec<&pb::NodeProto> {
        self.nodes().iter().filter(|n| n.input.iter().any(|i| i == value)).collect()
    }

    /// Graph inputs that are not initializers.
    pub fn inputs(&self) -> Vec<ValueInfo> {
        self.graph().input.iter().filter(|v| !self.initializers.contains_key(&v.name)).map(value_info).collect()
    }

    pub fn outputs(&self) -> Vec<ValueInfo> {
        self.graph().output.iter().map(value_info).collect()
    }

    /// True when any initializer or graph input is float16 (`model.half()` before export).
    pub fn has_float16(&self) -> bool {
        let g = self.graph();
        g.initializer.iter().any(|t| t.data_type == ONNX_FLOAT16)
            || self.inputs().iter().any(|v| v.elem_type == ONNX_FLOAT16)
    }

    /// The model with every float16 tensor, type and cast made float32: the same
    /// computation with weights that f16 rounded, in f32 arithmetic. Verification runs
    /// this, so it compares the mapping of weights, not f16 rounding of activations
    /// (and tract's f16 support, which misreads some f16 Gemm nodes, stays out of it).
    pub fn widened_to_f32(&self) -> Result<pb::ModelProto> {
        let mut graph = self.graph().clone();
        let dir = self.path.parent().and_then(|p| p.to_str()).map(|s| if s.is_empty() { "." } else { s });
        for t in graph.initializer.iter_mut().filter(|t| t.data_type == ONNX_FLOAT16) {
            *t = widened_tensor(t, dir)?;
        }
        let types = graph.input.iter_mut().chain(graph.output.iter_mut()).chain(graph.value_info.iter_mut());
        for v in types {
            if let Some(type_proto::Value::TensorType(t)) = v.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if t.elem_type == ONNX_FLOAT16 {
                    t.elem_type = ONNX_FLOAT;
                }
            }
        }
        for node in graph.node.iter_mut() {
            for a in node.attribute.iter_mut() {
                if node.op_type == "Cast" && a.name == "to" && a.i == ONNX_FLOAT16 as i64 {
                    a.i = ONNX_FLOAT as i64;
                }
                if let Some(t) = a.t.as_mut().filter(|t| t.data_type == ONNX_FLOAT16) {
                    *t = widened_tensor(t, dir)?;
                }
            }
        }
        let mut proto = self.proto.clone();
        proto.graph = Some(graph);
        Ok(proto)
    }

    /// Producer name and version written by the exporter.
    pub fn producer_tag(&self) -> String {
        format!("{} {}", self.proto.producer_name, self.proto.producer_version).trim().to_string()
    }
}

fn value_info(v: &pb::ValueInfoProto) -> ValueInfo {
    let (elem_type, dims) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(dimension::Value::DimValue(v)) => Some(v),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (t.elem_type, dims)
        }
        _ => (0, vec![]),
    };
    ValueInfo { name: v.name.clone(), elem_type, dims }
}

/// A `[rows, cols]` matrix as `[cols, rows]`; None for anything else.
pub fn transpose(shape: &[usize], values: &[f32]) -> Option<(Vec<usize>, Vec<f32>)> {
    let [rows, cols] = *shape else {
        return None;
    };
    if rows.checked_mul(cols) != Some(values.len()) {
        return None;
    }
    let t = (0..values.len()).map(|i| values[(i % rows) * cols + i / rows]).collect();
    Some((vec![cols, rows], t))
}

/// A float16 tensor as the same values in float32, stored inline.
fn widened_tensor(t: &pb::TensorProto, dir: Option<&str>) -> Result<pb::TensorProto> {
    let tensor = guard("decoding a float16 tensor", || {
        tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, t, dir)
    })
    .with_context(|| format!("cannot decode tensor {}", t.name))?;
    let values = tensor_to_f32(&tensor)?;
    Ok(pb::TensorProto {
        dims: t.dims.clone(),
        data_type: ONNX_FLOAT,
        name: t.name.clone(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    })
}

/// Any numeric tract tensor as a flat f32 vector.
pub fn tensor_to_f32(t: &Tensor) -> Result<Vec<f32>> {
    let cast = t.cast_to::<f32>()?;
    let view = cast.try_as_plain_ram()?;
    Ok(view.as_slice::<f32>()?.to_vec())
}
