//! An in-memory [`ObjectStore`] that records writes and fails on demand, for testing retries
//! and partial uploads without a network.
//!
//! Injected failures are [`object_store::Error::Generic`], which callers treat as transient.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Name the store gives in its errors.
const STORE: &str = "FaultyStore";

/// In-memory store that records the path of every successful write (puts and multipart
/// uploads, in order), fails writes under chosen prefixes, and fails a chosen number of the
/// next reads (`get`s), counting every read.
#[derive(Debug, Default)]
pub struct FaultyStore {
    inner: InMemory,
    puts: Mutex<Vec<String>>,
    fail_prefixes: Mutex<Vec<String>>,
    get_failures_left: AtomicU32,
    get_calls: AtomicU32,
}

impl FaultyStore {
    /// An empty store that fails nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Paths written so far, in order.
    pub fn puts(&self) -> Vec<String> {
        lock(&self.puts).clone()
    }

    /// Makes writes to paths starting with `prefix` fail (e.g. `"<block id>/"`).
    pub fn fail_writes_under(&self, prefix: impl Into<String>) {
        lock(&self.fail_prefixes).push(prefix.into());
    }

    /// Stops failing writes.
    pub fn heal(&self) {
        lock(&self.fail_prefixes).clear();
    }

    /// Makes the next `n` reads fail.
    pub fn fail_next_gets(&self, n: u32) {
        self.get_failures_left.store(n, Ordering::SeqCst);
    }

    /// How many reads were attempted, failed ones included.
    pub fn get_calls(&self) -> u32 {
        self.get_calls.load(Ordering::SeqCst)
    }

    fn check_write(&self, location: &Path) -> object_store::Result<()> {
        let loc = location.to_string();
        if lock(&self.fail_prefixes)
            .iter()
            .any(|p| loc.starts_with(p.as_str()))
        {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: format!("injected failure writing {loc}").into(),
            });
        }
        lock(&self.puts).push(loc);
        Ok(())
    }

    fn check_read(&self) -> object_store::Result<()> {
        self.get_calls.fetch_add(1, Ordering::SeqCst);
        let failed = self
            .get_failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failed {
            return Err(object_store::Error::Generic {
                store: STORE,
                source: "injected transient failure".into(),
            });
        }
        Ok(())
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not hide the state).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(STORE)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check_write(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check_write(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check_read()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt as _;

    #[tokio::test]
    async fn records_writes_and_fails_on_demand() {
        let store = FaultyStore::new();
        store.put(&Path::from("a/1"), "x".into()).await.unwrap();
        store.fail_writes_under("b/");
        let err = store.put(&Path::from("b/1"), "y".into()).await.unwrap_err();
        assert!(
            err.to_string().contains("injected failure writing b/1"),
            "{err}"
        );
        store.heal();
        store.put(&Path::from("b/2"), "z".into()).await.unwrap();
        assert_eq!(store.puts(), ["a/1", "b/2"]);

        store.fail_next_gets(2);
        for _ in 0..2 {
            let err = store.get(&Path::from("a/1")).await.unwrap_err();
            assert!(
                err.to_string().contains("injected transient failure"),
                "{err}"
            );
        }
        let data = store
            .get(&Path::from("a/1"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&data[..], b"x");
        assert_eq!(store.get_calls(), 3);
    }
}
