//! `thanos.WriteableStore/RemoteWrite`: the gRPC write path receivers forward to each
//! other over (mirrors Thanos `pkg/receive/handler.go` `RemoteWrite`).
//!
//! The request's tenants (`timeseriesTenantData`, or the legacy `timeseries` + `tenant`
//! when that is empty) are validated like an HTTP write and handed to the same
//! [`Distributor`]; errors become gRPC statuses through [`WriteError::to_status`]
//! (conflict → `AlreadyExists`, not ready → `Unavailable`, replica number above the
//! replication factor → `InvalidArgument`, anything else `Internal`). Use
//! [`WriteableService::server`] to get the tonic service, wrapped so that it accepts
//! `grpc-encoding: snappy` ([`SnappyDecompression`]).

use std::sync::{Arc, OnceLock};

use thanos_proto::thanos::writeable_store_server::{WriteableStore, WriteableStoreServer};
use thanos_proto::thanos::{WriteRequest, WriteResponse};
use thanos_server::{MAX_MESSAGE_SIZE, Prober};
use tonic::{Request, Response, Status};

use crate::error::WriteError;
use crate::forward::Distributor;
use crate::grpc_snappy::SnappyDecompression;
use crate::multitsdb::validate_tenant;
use crate::write::Batch;

/// The `thanos.WriteableStore` implementation; answers `Unavailable` until a
/// [`Distributor`] is attached and the prober is ready. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WriteableService {
    distributor: Arc<OnceLock<Arc<Distributor>>>,
    prober: Prober,
    default_tenant: String,
}

impl WriteableService {
    /// A service gated by `prober`; requests without a tenant are written for
    /// `default_tenant` (`--receive.default-tenant-id`).
    pub fn new(prober: Prober, default_tenant: impl Into<String>) -> Self {
        Self {
            distributor: Arc::new(OnceLock::new()),
            prober,
            default_tenant: default_tenant.into(),
        }
    }

    /// Sets the distributor writes go to; false if one was already attached.
    pub fn attach(&self, distributor: Arc<Distributor>) -> bool {
        self.distributor.set(distributor).is_ok()
    }

    /// The tonic server for [`thanos_server::GrpcServer::add_service`], accepting
    /// Thanos's snappy compression.
    pub fn server(&self) -> SnappyDecompression<WriteableStoreServer<WriteableService>> {
        SnappyDecompression::new(
            WriteableStoreServer::new(self.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            MAX_MESSAGE_SIZE,
        )
    }

    /// Writes every tenant of `request`; the first failure is returned.
    pub async fn write(&self, request: WriteRequest) -> Result<(), WriteError> {
        let Some(distributor) = self.distributor.get().filter(|_| self.prober.is_ready()) else {
            return Err(WriteError::NotReady);
        };
        let WriteRequest {
            timeseries,
            tenant,
            replica,
            timeseries_tenant_data,
        } = request;
        let tuples = if timeseries_tenant_data.is_empty() {
            vec![(tenant, timeseries)]
        } else {
            timeseries_tenant_data
                .into_iter()
                .map(|t| (t.tenant, t.timeseries))
                .collect()
        };
        for (tenant, series) in tuples {
            let tenant = if tenant.is_empty() {
                self.default_tenant.clone()
            } else {
                tenant
            };
            validate_tenant(&tenant)?;
            let batch = Batch::from_timeseries(&series);
            drop(series);
            distributor.write(&tenant, batch, replica).await.1?;
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl WriteableStore for WriteableService {
    async fn remote_write(
        &self,
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        match self.write(request.into_inner()).await {
            Ok(()) => Ok(Response::new(WriteResponse {})),
            Err(err) => {
                tracing::debug!(err = %err, "gRPC remote write failed");
                Err(err.to_status())
            }
        }
    }
}
