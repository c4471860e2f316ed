//! `[metrics]`: the Prometheus endpoint and the dashboard's load tests.

use serde::{Deserialize, Serialize};

use crate::Secret;

/// Monitoring settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Bearer token `/metrics` requires (`Authorization: Bearer …`); unset: open.
    pub token: Option<Secret>,
    /// Whether admins may start load tests against this server from the dashboard
    /// (`POST /api/v1/performance/load-tests`). They create consultations and users.
    pub load_tests: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            token: None,
            load_tests: false,
        }
    }
}
