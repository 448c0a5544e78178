//! linrt on NVIDIA GPUs, for Jetson-class boards (an integrated GPU sharing the
//! CPU's memory) and discrete cards, beside the CPU kernels and off by default.
//!
//! - the driver and NVRTC are loaded at run time ([`probe`]): building needs no CUDA
//!   toolkit, and a machine without them gets an error, never a panic;
//! - the kernels (kernels.cu) are compiled by NVRTC for the device's own
//!   architecture and cached on disk ([`compile`]);
//! - a model's weights are rearranged on the host into the kernels' layouts
//!   ([`weights`]) and uploaded once ([`CudaModel`]);
//! - [`Cuda`] implements the runtime's backend seam (`linrt::Backend`): `prepare`
//!   uploads a model, `forward` runs B streams × T positions, each stream's state
//!   ([`CudaState`]) and the scratch ([`CudaWorkspace`]) in device memory; states
//!   save in the CPU's byte format. [`CudaStreams`] and [`CudaSession`] wrap it.

pub mod compile;
mod device;
pub mod error;
mod io;
pub mod plan;
pub mod probe;
mod session;
mod streams;
pub mod weights;

pub use device::{check_supported, forward, Cuda, CudaModel, CudaState, CudaWorkspace};
pub use error::CudaError;
pub use io::IoMemory;
pub use probe::{devices, DeviceInfo};
pub use session::CudaSession;
pub use streams::CudaStreams;
