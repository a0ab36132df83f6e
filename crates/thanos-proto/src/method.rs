//! Fully-qualified gRPC method paths (`/<package>.<Service>/<Method>`) of the
//! RPCs a drop-in Thanos component must serve. These strings are the
//! compatibility surface: they must never change.

/// `thanos.Store/Series`: server-streaming series read.
pub const STORE_SERIES: &str = "/thanos.Store/Series";
/// `thanos.Store/LabelNames`: unary label-name query.
pub const STORE_LABEL_NAMES: &str = "/thanos.Store/LabelNames";
/// `thanos.Store/LabelValues`: unary label-value query.
pub const STORE_LABEL_VALUES: &str = "/thanos.Store/LabelValues";
/// `thanos.WriteableStore/RemoteWrite`: receive peer replication.
pub const WRITEABLE_STORE_REMOTE_WRITE: &str = "/thanos.WriteableStore/RemoteWrite";
/// `thanos.info.Info/Info`: capability discovery used by queriers.
pub const INFO_INFO: &str = "/thanos.info.Info/Info";
/// `thanos.Exemplars/Exemplars`: server-streaming exemplar query.
pub const EXEMPLARS_EXEMPLARS: &str = "/thanos.Exemplars/Exemplars";
/// `thanos.Status/TSDBStatistics`: server-streaming TSDB cardinality stats.
pub const STATUS_TSDB_STATISTICS: &str = "/thanos.Status/TSDBStatistics";
/// `thanos.Metadata/MetricMetadata`: server-streaming metric metadata.
pub const METADATA_METRIC_METADATA: &str = "/thanos.Metadata/MetricMetadata";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FILE_DESCRIPTOR_SET;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    /// Builds `/<package>.<service>/<method>` for every method in the
    /// embedded descriptor set.
    fn described_paths() -> Vec<String> {
        let fds = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let mut paths = Vec::new();
        for file in &fds.file {
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        paths
    }

    #[test]
    fn constants_exist_in_descriptor_set() {
        let paths = described_paths();
        for path in [
            STORE_SERIES,
            STORE_LABEL_NAMES,
            STORE_LABEL_VALUES,
            WRITEABLE_STORE_REMOTE_WRITE,
            INFO_INFO,
            EXEMPLARS_EXEMPLARS,
            STATUS_TSDB_STATISTICS,
            METADATA_METRIC_METADATA,
        ] {
            assert!(paths.iter().any(|p| p == path), "{path} not in {paths:?}");
        }
    }

    #[test]
    fn constants_match_generated_service_names() {
        use crate::thanos::exemplars_server::SERVICE_NAME as EXEMPLARS;
        use crate::thanos::info::info_server::SERVICE_NAME as INFO;
        use crate::thanos::metadata_server::SERVICE_NAME as METADATA;
        use crate::thanos::status_server::SERVICE_NAME as STATUS;
        use crate::thanos::store_server::SERVICE_NAME as STORE;
        use crate::thanos::writeable_store_server::SERVICE_NAME as WRITEABLE;

        assert_eq!(STORE_SERIES, format!("/{STORE}/Series"));
        assert_eq!(STORE_LABEL_NAMES, format!("/{STORE}/LabelNames"));
        assert_eq!(STORE_LABEL_VALUES, format!("/{STORE}/LabelValues"));
        assert_eq!(
            WRITEABLE_STORE_REMOTE_WRITE,
            format!("/{WRITEABLE}/RemoteWrite")
        );
        assert_eq!(INFO_INFO, format!("/{INFO}/Info"));
        assert_eq!(EXEMPLARS_EXEMPLARS, format!("/{EXEMPLARS}/Exemplars"));
        assert_eq!(STATUS_TSDB_STATISTICS, format!("/{STATUS}/TSDBStatistics"));
        assert_eq!(
            METADATA_METRIC_METADATA,
            format!("/{METADATA}/MetricMetadata")
        );
    }
}
