//! The environment as a value: the process's variables, or a fixed set (unit tests), read
//! through one type wherever gemauth's core looks at a variable.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where environment variables are read.
#[derive(Debug, Clone)]
pub(crate) enum Env {
    /// The process's environment.
    Process,
    /// A fixed set of variables (unit tests).
    #[cfg(test)]
    Fixed(std::collections::BTreeMap<String, String>),
}

impl Env {
    /// A variable's value, when it is set and valid Unicode.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            #[cfg(test)]
            Env::Fixed(vars) => vars.get(name).cloned(),
        }
    }

    /// A variable's value as the OS has it (paths need not be Unicode).
    pub(crate) fn var_os(&self, name: &str) -> Option<OsString> {
        match self {
            Env::Process => std::env::var_os(name),
            #[cfg(test)]
            Env::Fixed(vars) => vars.get(name).map(OsString::from),
        }
    }

    /// A variable that names a path, when it is set and not empty.
    pub(crate) fn path(&self, name: &str) -> Option<PathBuf> {
        self.var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    /// The home directory: the platform's idea of it for the process (`$HOME`, else the
    /// password database; the profile folder on Windows), `HOME` for a fixed set.
    pub(crate) fn home_dir(&self) -> Option<PathBuf> {
        match self {
            Env::Process => dirs::home_dir(),
            #[cfg(test)]
            Env::Fixed(_) => self.path("HOME"),
        }
    }
}
