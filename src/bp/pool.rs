//! A pool of reusable workspaces, so that a `&self` predictor shared between threads allocates
//! its BP buffers once per thread instead of once per call.

use std::sync::Mutex;

/// Workspaces of type `T` waiting to be reused. [`WorkspacePool::with`] takes one (or makes a
/// new one), runs the closure on it and puts it back; a poisoned lock only costs a fresh
/// workspace, never a panic.
pub struct WorkspacePool<T>(Mutex<Vec<T>>);

impl<T> Default for WorkspacePool<T> {
    fn default() -> Self {
        WorkspacePool(Mutex::new(vec![]))
    }
}

impl<T> WorkspacePool<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// `f(workspace)`, the workspace taken from the pool or built by `make`.
    pub fn with<R>(&self, make: impl FnOnce() -> T, f: impl FnOnce(&mut T) -> R) -> R {
        let mut w = self.0.lock().map(|mut v| v.pop()).unwrap_or(None).unwrap_or_else(make);
        let out = f(&mut w);
        if let Ok(mut v) = self.0.lock() {
            v.push(w);
        }
        out
    }
}
