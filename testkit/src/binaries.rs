//! Finding server binaries on PATH or where Debian puts them.

use std::path::{Path, PathBuf};

const SEARCH_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/bin",
    "/usr/local/bin",
    "/usr/lib/postgresql/15/bin",
];

/// The path of `name`, or a panic that says how to get it.
pub fn find(name: &str, package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    // PostgreSQL's server binaries first from its own directory: /usr/bin holds only wrappers.
    let preferred = if package.starts_with("postgresql") {
        vec![PathBuf::from("/usr/lib/postgresql/15/bin")]
    } else {
        Vec::new()
    };
    preferred
        .into_iter()
        .chain(path_dirs)
        .chain(SEARCH_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "{name} not found on PATH or in {SEARCH_DIRS:?}: install the Debian package \
                 {package} (`make test` installs everything the tests need)"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
