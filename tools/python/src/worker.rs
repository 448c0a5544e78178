//! A runtime object borrows memory it also needs owned (a session borrows its arena
//! and the model's bytes; a recognizer its decoder's tables as well), so it cannot
//! be a field of a Python object without unsafe code. Each one lives instead on a
//! thread of its own, which owns it and everything it borrows; a Python call sends
//! that thread a request and waits for the reply with the GIL released.

use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;

use crate::LinrtError;

pub struct Worker<Request, Reply> {
    requests: Option<mpsc::Sender<Request>>,
    replies: Mutex<mpsc::Receiver<Reply>>,
    thread: Option<JoinHandle<()>>,
}

impl<Request: Send + 'static, Reply: Send + 'static> Worker<Request, Reply> {
    /// Runs `serve` on a new thread: it sends one reply saying whether it started,
    /// then one per request, in order, until the worker is dropped.
    pub fn start(
        py: Python<'_>,
        name: &str,
        serve: impl FnOnce(mpsc::Receiver<Request>, mpsc::Sender<Reply>) + Send + 'static,
    ) -> PyResult<(Self, Reply)> {
        let (request_tx, request_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || serve(request_rx, reply_tx))
            .map_err(|e| LinrtError::new_err(format!("cannot start a thread: {e}")))?;
        let worker = Worker { requests: Some(request_tx), replies: Mutex::new(reply_rx), thread: Some(thread) };
        let first = worker.wait(py, None)?;
        Ok((worker, first))
    }

    /// Sends `request` and returns its reply.
    pub fn call(&self, py: Python<'_>, request: Request) -> PyResult<Reply> {
        self.wait(py, Some(request))
    }

    fn wait(&self, py: Python<'_>, request: Option<Request>) -> PyResult<Reply> {
        py.detach(|| {
            // The lock pairs each request with its reply when Python threads share the object.
            let replies = self.replies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let (Some(request), Some(requests)) = (request, &self.requests) {
                requests.send(request).map_err(|_| stopped())?;
            }
            replies.recv().map_err(|_| stopped())
        })
    }
}

fn stopped() -> PyErr {
    LinrtError::new_err("linrt's worker thread stopped (a bug: please report it)")
}

impl<Request, Reply> Drop for Worker<Request, Reply> {
    fn drop(&mut self) {
        // Closing the request channel ends the thread's loop.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
