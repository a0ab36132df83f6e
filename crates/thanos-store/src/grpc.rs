//! tonic service implementations: `thanos.Store` and `thanos.info.Info` over a
//! [`BucketStore`].

use thanos_proto::storepb::{SeriesStream, batch_series};
use thanos_proto::thanos::info::info_server::Info;
use thanos_proto::thanos::info::{InfoRequest, InfoResponse};
use thanos_proto::thanos::store_server::Store;
use thanos_proto::thanos::{
    LabelNamesRequest, LabelNamesResponse, LabelValuesRequest, LabelValuesResponse, SeriesRequest,
    SeriesResponse,
};
use tonic::{Request, Response, Status};

use crate::store::BucketStore;

#[tonic::async_trait]
impl Store for BucketStore {
    type SeriesStream = SeriesStream;

    async fn series(
        &self,
        request: Request<SeriesRequest>,
    ) -> Result<Response<Self::SeriesStream>, Status> {
        use futures::StreamExt as _;
        let req = request.into_inner();
        let batch_size = req.response_batch_size;
        let series = self.series_stream(req).await.map_err(|e| {
            tracing::debug!(err = %e, "series call failed");
            e.to_status()
        })?;
        let frames = series.map(|r| match r {
            Ok(s) => Ok(SeriesResponse::series(s)),
            Err(e) => {
                tracing::debug!(err = %e, "series call failed");
                Err(e.to_status())
            }
        });
        Ok(Response::new(batch_series(frames, batch_size)))
    }

    async fn label_names(
        &self,
        request: Request<LabelNamesRequest>,
    ) -> Result<Response<LabelNamesResponse>, Status> {
        let names = BucketStore::label_names(self, request.get_ref()).await?;
        Ok(Response::new(LabelNamesResponse {
            names,
            ..LabelNamesResponse::default()
        }))
    }

    async fn label_values(
        &self,
        request: Request<LabelValuesRequest>,
    ) -> Result<Response<LabelValuesResponse>, Status> {
        let values = BucketStore::label_values(self, request.get_ref()).await?;
        Ok(Response::new(LabelValuesResponse {
            values,
            ..LabelValuesResponse::default()
        }))
    }
}

#[tonic::async_trait]
impl Info for BucketStore {
    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(BucketStore::info(self)?))
    }
}
