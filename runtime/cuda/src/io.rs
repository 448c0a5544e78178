//! The buffers a pass exchanges with the host (inputs, outputs, flags, exponents).
//!
//! On an integrated GPU (Jetson: one memory for CPU and GPU) they are page-locked host
//! memory mapped into the device's address space: the host writes inputs where the
//! kernels read them and reads outputs where the kernels wrote them, with no copy. On a
//! discrete GPU they are device memory and every pass copies, asynchronously, on the
//! model's stream. Either way the kernels see a `CudaSlice`.

use crate::error::{driver, CudaError};
use cudarc::driver::{sys, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits};
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// Where the host-exchanged buffers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMemory {
    /// Device memory, copied each pass (discrete GPUs).
    Copied,
    /// Mapped page-locked host memory (integrated GPUs; works on discrete ones too,
    /// over the bus, which is how it is tested there).
    Mapped,
}

/// Page-locked host memory that the device addresses directly.
pub(crate) struct Mapped<T> {
    /// Kept until the host memory is freed: the context must outlive the free.
    stream: Arc<CudaStream>,
    host: *mut T,
    len: usize,
    /// The device's view of the same bytes. Never freed as device memory: it is
    /// leaked back to a raw pointer in `drop`, then the host allocation is freed.
    slice: ManuallyDrop<CudaSlice<T>>,
}

impl<T: DeviceRepr + ValidAsZeroBits> Mapped<T> {
    fn new(stream: &Arc<CudaStream>, len: usize) -> Result<Self, CudaError> {
        let len = len.max(1);
        let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or(linrt::Error::SizeOverflow)?;
        let mut host: *mut std::ffi::c_void = std::ptr::null_mut();
        let flags = sys::CU_MEMHOSTALLOC_DEVICEMAP | sys::CU_MEMHOSTALLOC_PORTABLE;
        stream.context().bind_to_thread().map_err(driver("cuCtxSetCurrent"))?;
        // SAFETY: host is a live out-pointer; the driver allocates `bytes` bytes.
        check(unsafe { sys::cuMemHostAlloc(&mut host, bytes, flags) }, "cuMemHostAlloc")?;
        // SAFETY: the allocation above is `bytes` long; zero bits are a valid T
        // (ValidAsZeroBits).
        unsafe { std::ptr::write_bytes(host.cast::<u8>(), 0, bytes) };
        let mut device: sys::CUdeviceptr = 0;
        // SAFETY: host came from cuMemHostAlloc with DEVICEMAP; device is a live out-pointer.
        let got = unsafe { sys::cuMemHostGetDevicePointer_v2(&mut device, host, 0) };
        if let Err(e) = check(got, "cuMemHostGetDevicePointer") {
            // SAFETY: freed once, here, and not used again.
            unsafe { sys::cuMemFreeHost(host) };
            return Err(e);
        }
        // SAFETY: device addresses exactly len T's (the mapping of the allocation
        // above), which outlive the slice: drop leaks it before freeing them.
        let slice = unsafe { stream.upgrade_device_ptr::<T>(device, len) };
        Ok(Mapped { stream: stream.clone(), host: host.cast(), len, slice: ManuallyDrop::new(slice) })
    }

    fn host(&mut self) -> &mut [T] {
        // SAFETY: host holds len initialised T's (zeroed at allocation, written only
        // as T since) and is borrowed mutably through self; the device does not
        // touch it between passes (every pass ends in a stream synchronisation).
        unsafe { std::slice::from_raw_parts_mut(self.host, self.len) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here; the slice's device pointer is the mapping, which
        // cuMemFreeHost releases below, so it must not be freed as device memory.
        let slice = unsafe { ManuallyDrop::take(&mut self.slice) };
        let _ = slice.leak();
        // The context is alive (self.stream holds it) and current for the free.
        let _ = self.stream.context().bind_to_thread();
        // SAFETY: the host allocation from cuMemHostAlloc, freed exactly once.
        unsafe { sys::cuMemFreeHost(self.host.cast()) };
    }
}

fn check(result: sys::CUresult, call: &'static str) -> Result<(), CudaError> {
    if result == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Driver { call, message: format!("{result:?}") })
    }
}

/// A host-exchanged buffer of either kind.
pub(crate) enum IoBuffer<T> {
    Copied(CudaSlice<T>),
    Mapped(Mapped<T>),
}

impl<T: DeviceRepr + ValidAsZeroBits + Copy> IoBuffer<T> {
    pub fn new(stream: &Arc<CudaStream>, len: usize, memory: IoMemory) -> Result<Self, CudaError> {
        Ok(match memory {
            IoMemory::Copied => IoBuffer::Copied(stream.alloc_zeros::<T>(len.max(1)).map_err(driver("cuMemAlloc"))?),
            IoMemory::Mapped => IoBuffer::Mapped(Mapped::new(stream, len)?),
        })
    }

    /// What the kernels read and write.
    pub fn device(&self) -> &CudaSlice<T> {
        match self {
            IoBuffer::Copied(s) => s,
            IoBuffer::Mapped(m) => &m.slice,
        }
    }

    pub fn device_mut(&mut self) -> &mut CudaSlice<T> {
        match self {
            IoBuffer::Copied(s) => s,
            IoBuffer::Mapped(m) => &mut m.slice,
        }
    }

    /// The host's values into the start of the buffer, before a pass.
    pub fn write(&mut self, stream: &Arc<CudaStream>, values: &[T]) -> Result<(), CudaError> {
        match self {
            IoBuffer::Copied(s) => {
                stream.memcpy_htod(values, &mut s.slice_mut(..values.len())).map_err(driver("cuMemcpyHtoD"))
            }
            IoBuffer::Mapped(m) => {
                m.host()[..values.len()].copy_from_slice(values);
                Ok(())
            }
        }
    }

    /// Queues the copy of the buffer's start into `out` (copied buffers); call
    /// [`IoBuffer::finish_read`] after the stream is synchronised.
    pub fn queue_read(&self, stream: &Arc<CudaStream>, out: &mut [T]) -> Result<(), CudaError> {
        match self {
            IoBuffer::Copied(s) => stream.memcpy_dtoh(&s.slice(..out.len()), out).map_err(driver("cuMemcpyDtoH")),
            IoBuffer::Mapped(_) => Ok(()),
        }
    }

    /// Completes a read after the stream is synchronised (mapped buffers: a copy out
    /// of host memory the kernels wrote).
    pub fn finish_read(&mut self, out: &mut [T]) {
        if let IoBuffer::Mapped(m) = self {
            out.copy_from_slice(&m.host()[..out.len()]);
        }
    }
}
