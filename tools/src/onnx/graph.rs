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

    pub fn has_initializer(&self, name: &str) -> bool {
        self.initializer_index(name).is_some()
    }

    /// Dims of an initializer without loading its data.
    pub fn initializer_dims(&self, name: &str) -> Option<Vec<usize>> {
        let t = &self.graph().initializer[self.initializer_index(name)?];
        t.dims.iter().map(|&d| usize::try_from(d).ok()).collect()
    }

    /// Loads an initializer (inline or external data) as f32 values with its shape.
    pub fn f32_initializer(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let index = self.initializer_index(name).ok_or_else(|| anyhow!("missing tensor {name}"))?;
        let proto = &self.graph().initializer[index];
        let dir = self.path.parent().and_then(|p| p.to_str()).map(|s| if s.is_empty() { "." } else { s });
        let tensor = guard("decoding a tensor", || {
            tract_onnx::tensor::load_tensor(&tract_onnx::data_resolver::MmapDataResolver, proto, dir)
        })
        .with_context(|| format!("cannot decode tensor {name}"))?;
        let values = tensor_to_f32(&tensor).with_context(|| format!("tensor {name} is not numeric"))?;
        Ok((tensor.shape().to_vec(), values))
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

/// Any numeric tract tensor as a flat f32 vector.
pub fn tensor_to_f32(t: &Tensor) -> Result<Vec<f32>> {
    let cast = t.cast_to::<f32>()?;
    let view = cast.try_as_plain_ram()?;
    Ok(view.as_slice::<f32>()?.to_vec())
}
