//! The deploy backend in force (`DEPLOY_BACKEND`), as the executor carries it: the one place that
//! knows both implementations of [`Backend`].

use std::path::Path;
use std::sync::Arc;

use super::backend::Backend;
use super::docker::Docker;
use super::processes::Processes;

/// The backend in force (`DEPLOY_BACKEND`), as the executor carries it.
#[derive(Clone, Default)]
pub enum Deploy {
    /// Local processes under the action context's `state_dir`.
    #[default]
    Process,
    Docker(Arc<Docker>),
}

impl Deploy {
    /// The backend, with local processes kept under `state_dir`.
    pub fn backend(&self, state_dir: &Path) -> Arc<dyn Backend> {
        match self {
            Deploy::Process => Arc::new(Processes::new(state_dir)),
            Deploy::Docker(docker) => docker.clone(),
        }
    }
}

impl std::fmt::Debug for Deploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Deploy::Process => f.write_str("Process"),
            Deploy::Docker(docker) => write!(f, "Docker({})", docker.describe()),
        }
    }
}
