//! [`Bucket`]: an object store client whose every operation goes through retries and metrics,
//! mirroring Thanos's `objstore.Bucket` interface and its metrics wrapper.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attributes, ListResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use crate::config::DEFAULT_PART_SIZE;
use crate::error::{Error, Result};
use crate::metrics::{BucketMetrics, BucketSeries};

/// Multipart parts uploaded concurrently by one upload.
const MAX_PARTS_IN_FLIGHT: usize = 4;

/// Bucket operation, as used for the `operation` metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Whole-object read.
    Get = 0,
    /// Ranged read.
    GetRange,
    /// Existence check.
    Exists,
    /// Object write.
    Upload,
    /// Object deletion.
    Delete,
    /// Listing.
    Iter,
    /// Object metadata read (size, last modified).
    Attributes,
}

impl Operation {
    /// Every operation, in label-initialisation order.
    pub const ALL: [Operation; 7] = [
        Operation::Get,
        Operation::GetRange,
        Operation::Exists,
        Operation::Upload,
        Operation::Delete,
        Operation::Iter,
        Operation::Attributes,
    ];

    /// The `operation` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::GetRange => "get_range",
            Operation::Exists => "exists",
            Operation::Upload => "upload",
            Operation::Delete => "delete",
            Operation::Iter => "iter",
            Operation::Attributes => "attributes",
        }
    }

    /// Reads for which "object not found" is an expected answer, not a failure.
    fn not_found_expected(self) -> bool {
        matches!(
            self,
            Operation::Get | Operation::GetRange | Operation::Exists | Operation::Attributes
        )
    }
}

/// Retries with exponential backoff (and jitter) for transient errors. Not-found,
/// already-exists, precondition, permission and other definite answers are never retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff before the first retry; doubled for each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of a single backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries, 200 ms initial backoff, 10 s maximum backoff.
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0-based): `initial * 2^retry` capped at the maximum,
    /// then jittered into its upper half.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX));
        let capped = exp.min(self.max_backoff);
        let half = capped / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            RandomState::new().hash_one(retry) % nanos
        };
        half + Duration::from_nanos(jitter)
    }
}

/// Whether an error may go away on retry.
fn is_transient(err: &object_store::Error) -> bool {
    matches!(
        err,
        object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
    )
}

/// How uploads are written.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Objects larger than this are written with a multipart upload in parts of this size.
    pub part_size: usize,
    /// Write every object with a single PUT, whatever its size.
    pub disable_multipart: bool,
    /// Attributes (user metadata, storage class) set on every uploaded object.
    pub attributes: Attributes,
}

impl Default for UploadOptions {
    /// 64 MiB parts, multipart enabled, no attributes.
    fn default() -> Self {
        Self {
            part_size: DEFAULT_PART_SIZE as usize,
            disable_multipart: false,
            attributes: Attributes::new(),
        }
    }
}

/// An object store bucket whose operations are retried and instrumented. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bucket {
    inner: Arc<BucketInner>,
}

#[derive(Debug, Clone)]
struct BucketInner {
    name: String,
    store: Arc<dyn ObjectStore>,
    retry: RetryPolicy,
    upload: UploadOptions,
    series: BucketSeries,
    local_dir: Option<PathBuf>,
}

impl Bucket {
    /// Wraps `store`. `name` is the `bucket` label value; all series of this bucket are created
    /// (at 0) right away.
    pub fn new(
        name: impl Into<String>,
        store: Arc<dyn ObjectStore>,
        retry: RetryPolicy,
        upload: UploadOptions,
        metrics: &BucketMetrics,
    ) -> Self {
        let name = name.into();
        let series = metrics.for_bucket(&name);
        Self {
            inner: Arc::new(BucketInner {
                name,
                store,
                retry,
                upload: UploadOptions {
                    part_size: upload.part_size.max(1),
                    ..upload
                },
                series,
                local_dir: None,
            }),
        }
    }

    /// Records that the objects of this bucket are the files under `dir` on the local file
    /// system (object `a/b` is `dir/a/b`), so readers may map them instead of issuing
    /// range requests. Set by the FILESYSTEM provider.
    pub fn with_local_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        Arc::make_mut(&mut self.inner).local_dir = Some(dir.into());
        self
    }

    /// The local directory holding this bucket's objects (see [`Bucket::with_local_dir`]);
    /// `None` for remote object storage.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.inner.local_dir.as_deref()
    }

    /// Bucket name (the `bucket` metrics label value).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The underlying store (prefix applied), bypassing retries and metrics.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Retry policy in use.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// Runs `f` with retries for transient errors, counting one operation.
    async fn run<T, F, Fut>(&self, op: Operation, path: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let series = self.inner.series.op(op);
        series.ops.inc();
        let start = Instant::now();
        let mut retry = 0;
        loop {
            match f().await {
                Ok(value) => {
                    series.duration.observe(start.elapsed().as_secs_f64());
                    return Ok(value);
                }
                Err(err) if is_transient(&err) && retry < self.inner.retry.max_retries => {
                    let backoff = self.inner.retry.backoff(retry);
                    tracing::warn!(
                        bucket = %self.inner.name,
                        operation = op.as_str(),
                        path,
                        retry = retry + 1,
                        backoff_ms = backoff.as_millis() as u64,
                        err = %err,
                        "retrying object storage operation"
                    );
                    tokio::time::sleep(backoff).await;
                    retry += 1;
                }
                Err(err) => {
                    let expected = op.not_found_expected()
                        && matches!(err, object_store::Error::NotFound { .. });
                    if !expected {
                        series.failures.inc();
                    }
                    return Err(Error::Operation {
                        bucket: self.inner.name.clone(),
                        operation: op.as_str(),
                        path: path.to_owned(),
                        source: Box::new(err),
                    });
                }
            }
        }
    }

    fn record_fetched(&self, op: Operation, bytes: usize) {
        let series = self.inner.series.op(op);
        series.fetched_bytes.inc_by(bytes as u64);
        series.transferred_bytes.observe(bytes as f64);
    }

    /// Reads a whole object (operation `get`).
    pub async fn get(&self, path: &Path) -> Result<Bytes> {
        let store = &self.inner.store;
        let data = self
            .run(Operation::Get, path.as_ref(), || async move {
                store.get(path).await?.bytes().await
            })
            .await?;
        self.record_fetched(Operation::Get, data.len());
        Ok(data)
    }

    /// Reads a byte range of an object (operation `get_range`).
    pub async fn get_range(&self, path: &Path, range: Range<u64>) -> Result<Bytes> {
        let store = &self.inner.store;
        let data = self
            .run(Operation::GetRange, path.as_ref(), || {
                let range = range.clone();
                async move { store.get_range(path, range).await }
            })
            .await?;
        self.record_fetched(Operation::GetRange, data.len());
        Ok(data)
    }

    /// Reads several byte ranges of one object, coalescing nearby ranges into fewer requests
    /// (one `get_range` operation).
    pub async fn get_ranges(&self, path: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let store = &self.inner.store;
        let parts = self
            .run(Operation::GetRange, path.as_ref(), || async move {
                store.get_ranges(path, ranges).await
            })
            .await?;
        self.record_fetched(Operation::GetRange, parts.iter().map(Bytes::len).sum());
        Ok(parts)
    }

    /// Whether an object exists (operation `exists`).
    pub async fn exists(&self, path: &Path) -> Result<bool> {
        let store = &self.inner.store;
        self.run(Operation::Exists, path.as_ref(), || async move {
            match store.head(path).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(err) => Err(err),
            }
        })
        .await
    }

    /// Object metadata: size, last modification time, ETag (operation `attributes`).
    pub async fn attributes(&self, path: &Path) -> Result<ObjectMeta> {
        let store = &self.inner.store;
        self.run(Operation::Attributes, path.as_ref(), || async move {
            store.head(path).await
        })
        .await
    }

    /// Deletes an object (operation `delete`).
    pub async fn delete(&self, path: &Path) -> Result<()> {
        let store = &self.inner.store;
        self.run(Operation::Delete, path.as_ref(), || async move {
            store.delete(path).await
        })
        .await
    }

    /// Lists every object under `prefix` recursively (operation `iter`).
    pub async fn list(&self, prefix: Option<&Path>) -> Result<Vec<ObjectMeta>> {
        use futures::TryStreamExt;
        let store = &self.inner.store;
        let label = prefix.map(|p| p.as_ref()).unwrap_or("");
        self.run(Operation::Iter, label, || async move {
            store.list(prefix).try_collect::<Vec<_>>().await
        })
        .await
    }

    /// Lists the direct children of `prefix`: objects and common prefixes ("directories")
    /// (operation `iter`).
    pub async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let store = &self.inner.store;
        let label = prefix.map(|p| p.as_ref()).unwrap_or("");
        self.run(Operation::Iter, label, || async move {
            store.list_with_delimiter(prefix).await
        })
        .await
    }

    /// Writes an object from memory (operation `upload`); objects larger than the part size are
    /// written with a multipart upload unless multipart is disabled.
    pub async fn upload(&self, path: &Path, data: Bytes) -> Result<()> {
        let store = &self.inner.store;
        let opts = &self.inner.upload;
        let len = data.len();
        self.run(Operation::Upload, path.as_ref(), || {
            let data = data.clone();
            async move {
                if opts.disable_multipart || data.len() <= opts.part_size {
                    let put = PutOptions {
                        attributes: opts.attributes.clone(),
                        ..PutOptions::default()
                    };
                    store.put_opts(path, PutPayload::from(data), put).await?;
                    return Ok(());
                }
                let mp = PutMultipartOptions {
                    attributes: opts.attributes.clone(),
                    ..PutMultipartOptions::default()
                };
                let upload = store.put_multipart_opts(path, mp).await?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
                let mut rest = data;
                while !rest.is_empty() {
                    if let Err(err) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                        // Best effort: the upload failed anyway, keep its error.
                        let _ = writer.abort().await;
                        return Err(err);
                    }
                    let chunk = rest.split_to(rest.len().min(opts.part_size));
                    writer.put(chunk);
                }
                writer.finish().await?;
                Ok(())
            }
        })
        .await?;
        self.finish_upload(len);
        Ok(())
    }

    /// Uploads a local file (operation `upload`), streaming it part by part when it is larger
    /// than the part size. A retry re-reads the file from the start.
    pub async fn upload_file(&self, path: &Path, local: &std::path::Path) -> Result<()> {
        let store = &self.inner.store;
        let opts = &self.inner.upload;
        let local_err = |source| Error::LocalFile {
            path: local.to_path_buf(),
            source,
        };
        let size = tokio::fs::metadata(local).await.map_err(local_err)?.len();
        if opts.disable_multipart || size <= opts.part_size as u64 {
            let data = tokio::fs::read(local).await.map_err(local_err)?;
            return self.upload(path, Bytes::from(data)).await;
        }
        self.run(Operation::Upload, path.as_ref(), || async move {
            let mut file = tokio::fs::File::open(local)
                .await
                .map_err(|e| io_to_store_error(local, e))?;
            let mp = PutMultipartOptions {
                attributes: opts.attributes.clone(),
                ..PutMultipartOptions::default()
            };
            let upload = store.put_multipart_opts(path, mp).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, opts.part_size);
            loop {
                if let Err(err) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                    let _ = writer.abort().await;
                    return Err(err);
                }
                let mut buf = Vec::with_capacity(opts.part_size);
                let read = (&mut file)
                    .take(opts.part_size as u64)
                    .read_to_end(&mut buf)
                    .await;
                match read {
                    Ok(0) => break,
                    Ok(_) => writer.put(Bytes::from(buf)),
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(io_to_store_error(local, e));
                    }
                }
            }
            writer.finish().await?;
            Ok(())
        })
        .await?;
        self.finish_upload(usize::try_from(size).unwrap_or(usize::MAX));
        Ok(())
    }

    fn finish_upload(&self, len: usize) {
        let series = &self.inner.series;
        series
            .op(Operation::Upload)
            .transferred_bytes
            .observe(len as f64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        series.last_upload.set(now);
    }
}

/// A local read error during a streamed upload, as a store error (retried like other generic
/// errors, since the whole upload restarts from the beginning of the file).
fn io_to_store_error(local: &std::path::Path, err: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "local file",
        source: format!("read {}: {err}", local.display()).into(),
    }
}
