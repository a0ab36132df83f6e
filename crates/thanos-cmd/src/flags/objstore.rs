//! Object storage flags (components.md §1.6) and other path-or-content config pairs.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

/// `--objstore.config-file` / `--objstore.config` (mutually exclusive).
#[derive(Debug, Clone, Args)]
pub struct ObjstoreFlags {
    /// Path to YAML file that contains object store configuration.
    #[arg(
        id = "objstore.config-file",
        long = "objstore.config-file",
        value_name = "FILE",
        conflicts_with = "objstore.config"
    )]
    pub objstore_config_file: Option<PathBuf>,

    /// Alternative to --objstore.config-file: the object store YAML itself.
    #[arg(id = "objstore.config", long = "objstore.config", value_name = "YAML")]
    pub objstore_config: Option<String>,
}

/// Reads a `--<flag>-file` / `--<flag>` pair (`flag` is the inline flag's name without the
/// dashes, e.g. `tracing.config` or `receive.hashrings`): the file's content, the inline
/// content, or `None` when neither is given. Empty values count as not given.
pub fn read_pair(
    flag: &str,
    file: Option<&std::path::Path>,
    inline: Option<&str>,
) -> anyhow::Result<Option<String>> {
    if let Some(path) = file.filter(|path| !path.as_os_str().is_empty()) {
        let content = std::fs::read_to_string(path)
            .with_context(|| format!("read --{flag}-file {}", path.display()))?;
        return Ok(Some(content));
    }
    Ok(inline.filter(|text| !text.is_empty()).map(str::to_owned))
}

impl ObjstoreFlags {
    /// Parses and validates the bucket configuration with `thanos-objstore`; `None` when
    /// neither flag is given (or both are empty).
    pub fn bucket_config(&self) -> anyhow::Result<Option<thanos_objstore::BucketConfig>> {
        match thanos_objstore::BucketConfig::from_flags(
            self.objstore_config_file.as_deref(),
            self.objstore_config.as_deref(),
        ) {
            Ok(config) => Ok(Some(config)),
            Err(thanos_objstore::Error::NotConfigured) => Ok(None),
            Err(err) => Err(anyhow::Error::new(err)
                .context("invalid --objstore.config-file / --objstore.config")),
        }
    }
}
