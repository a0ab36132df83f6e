//! Run group and ordered graceful shutdown (the role of `oklog/run` plus Thanos' shutdown
//! sequence).
//!
//! A component registers its long-running tasks (HTTP and gRPC servers, syncers) with
//! [`RunGroup::spawn`] and its shutdown hooks (flush the TSDB head, upload blocks) with
//! [`RunGroup::on_shutdown`]. [`RunGroup::run`] then waits for a shutdown signal, a
//! cancellation, or a task ending on its own, and shuts down in this order:
//!
//! 1. the prober goes not-ready (load balancers and the gRPC health service stop routing);
//! 2. the shared [`CancellationToken`] is cancelled: servers stop accepting and drain
//!    in-flight requests within their own grace periods; the group waits for every task;
//! 3. hooks run one after the other in registration order;
//! 4. `run` returns (the first error, if any), and the process exits.

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{BoxError, Error, Result};
use crate::prober::Prober;

type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>> + Send>;

/// Named tasks sharing one cancellation token, plus ordered shutdown hooks.
pub struct RunGroup {
    token: CancellationToken,
    prober: Prober,
    tasks: JoinSet<(String, Result<(), BoxError>)>,
    hooks: Vec<(String, Hook)>,
}

impl std::fmt::Debug for RunGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunGroup")
            .field("tasks", &self.tasks.len())
            .field(
                "hooks",
                &self.hooks.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl RunGroup {
    /// A group whose shutdown marks `prober` not ready first.
    pub fn new(prober: Prober) -> Self {
        RunGroup {
            token: CancellationToken::new(),
            prober,
            tasks: JoinSet::new(),
            hooks: Vec::new(),
        }
    }

    /// The token cancelled when shutdown starts; give (clones of) it to every task.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Runs `task` until it finishes. A task that ends before shutdown was requested
    /// (successfully or not) starts the shutdown, like a failed actor in `oklog/run`.
    pub fn spawn<F, E>(&mut self, name: impl Into<String>, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let name = name.into();
        self.tasks
            .spawn(async move { (name, task.await.map_err(Into::into)) });
    }

    /// Registers a hook to run after all tasks stopped; hooks run in registration order.
    pub fn on_shutdown<F, Fut, E>(&mut self, name: impl Into<String>, hook: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let hook: Hook =
            Box::new(move || Box::pin(async move { hook().await.map_err(Into::into) }));
        self.hooks.push((name.into(), hook));
    }

    /// Waits for `signal`, a cancellation of [`RunGroup::token`] or the end of any task,
    /// then performs the ordered shutdown described in the module docs. Returns the first
    /// error of a task or hook, or [`Error::TaskExited`] if a task stopped on its own.
    pub async fn run<S>(mut self, signal: S) -> Result<()>
    where
        S: Future<Output = ()> + Send,
    {
        let mut first_error: Option<Error> = None;
        tokio::select! {
            () = signal => tracing::info!("shutdown requested"),
            () = self.token.cancelled() => tracing::info!("shutdown requested by cancellation"),
            Some(joined) = self.tasks.join_next() => {
                let error = match flatten(joined) {
                    (name, Ok(())) => {
                        tracing::warn!(task = %name, "task exited before shutdown, stopping");
                        Error::TaskExited { name }
                    }
                    (name, Err(source)) => {
                        tracing::error!(task = %name, err = %source, "task failed, stopping");
                        Error::Task { name, source }
                    }
                };
                first_error = Some(error);
            }
        }
        tracing::info!("shutdown step: marking component not ready");
        self.prober.not_ready("shutting down");
        tracing::info!(
            tasks = self.tasks.len(),
            "shutdown step: stopping servers and tasks"
        );
        self.token.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            match flatten(joined) {
                (name, Ok(())) => tracing::info!(task = %name, "task stopped"),
                (name, Err(source)) => {
                    tracing::error!(task = %name, err = %source, "task failed during shutdown");
                    first_error.get_or_insert(Error::Task { name, source });
                }
            }
        }
        for (name, hook) in self.hooks {
            tracing::info!(hook = %name, "shutdown step: running hook");
            if let Err(source) = hook().await {
                tracing::error!(hook = %name, err = %source, "shutdown hook failed");
                first_error.get_or_insert(Error::Task { name, source });
            }
        }
        tracing::info!("shutdown complete");
        first_error.map_or(Ok(()), Err)
    }
}

fn flatten(
    joined: std::result::Result<(String, Result<(), BoxError>), tokio::task::JoinError>,
) -> (String, Result<(), BoxError>) {
    match joined {
        Ok(pair) => pair,
        Err(join_error) => ("task".to_owned(), Err(Box::new(join_error))),
    }
}

/// Completes on the first SIGTERM or SIGINT, returning the signal's name.
pub async fn shutdown_signal() -> Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signal)?;
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "caught signal, shutting down");
    Ok(name)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn prober() -> Prober {
        let prober = Prober::new("test", &prometheus::Registry::new()).unwrap();
        prober.healthy();
        prober.ready();
        prober
    }

    #[tokio::test]
    async fn order_is_not_ready_then_tasks_then_hooks() {
        let prober = prober();
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut group = RunGroup::new(prober.clone());
        let token = group.token();
        let (task_log, task_prober) = (log.clone(), prober.clone());
        group.spawn("server", async move {
            token.cancelled().await;
            task_log
                .lock()
                .unwrap()
                .push(format!("server stops, ready={}", task_prober.is_ready()));
            Ok::<_, BoxError>(())
        });
        for name in ["flush head", "upload"] {
            let hook_log = log.clone();
            group.on_shutdown(name, move || async move {
                hook_log.lock().unwrap().push(name.to_owned());
                Ok::<_, BoxError>(())
            });
        }
        group.run(async {}).await.unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["server stops, ready=false", "flush head", "upload"]
        );
    }

    #[tokio::test]
    async fn early_task_exit_triggers_shutdown_and_is_reported() {
        let mut group = RunGroup::new(prober());
        let hook_ran = Arc::new(Mutex::new(false));
        let flag = hook_ran.clone();
        group.spawn("syncer", async {
            Err::<(), BoxError>("bucket unreachable".into())
        });
        group.on_shutdown("hook", move || async move {
            *flag.lock().unwrap() = true;
            Ok::<_, BoxError>(())
        });
        let err = group.run(std::future::pending()).await.unwrap_err();
        assert!(err.to_string().contains("syncer"), "{err}");
        assert!(*hook_ran.lock().unwrap());
    }

    #[tokio::test]
    async fn hook_errors_are_returned_but_later_hooks_still_run() {
        let mut group = RunGroup::new(prober());
        let ran = Arc::new(Mutex::new(false));
        let flag = ran.clone();
        group.on_shutdown("first", || async { Err::<(), BoxError>("boom".into()) });
        group.on_shutdown("second", move || async move {
            *flag.lock().unwrap() = true;
            Ok::<_, BoxError>(())
        });
        let token = group.token();
        token.cancel();
        let err = group.run(std::future::pending()).await.unwrap_err();
        assert_eq!(err.to_string(), "first");
        assert!(*ran.lock().unwrap());
    }
}
