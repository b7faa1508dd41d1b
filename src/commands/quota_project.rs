//! `gemauth set-quota-project` and `gemauth print-quota-project`: the project billed for API
//! quota, stored as `quota_project_id` in the credential file.

use std::path::Path;

use serde_json::Value;

use crate::cli::{CredentialFileArgs, SetQuotaProjectArgs};
use crate::credentials::{self, read_regular_file, validate_project_id};
use crate::error::{Error, Result};
use crate::store::{self, CredentialLock};

fn load_value(path: &Path) -> Result<serde_json::Map<String, Value>> {
    let bytes = read_regular_file(path).map_err(|problem| Error::CredentialFile {
        path: path.to_path_buf(),
        problem,
    })?;
    // Validates the file the way every other command does before touching it.
    credentials::parse_credential_file(path, &bytes)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::CredentialFile {
            path: path.to_path_buf(),
            problem: "is not a JSON object".into(),
        }),
    }
}

pub fn set(args: SetQuotaProjectArgs) -> Result<()> {
    let project = args.project.trim();
    validate_project_id(project)?;
    let path = match &args.credential_file {
        Some(p) => p.clone(),
        None => store::well_known_path()?,
    };
    if !path.exists() {
        return Err(Error::NoCredentials { searched: path });
    }
    let _lock = CredentialLock::acquire(&path)?;
    let mut map = load_value(&path)?;
    map.insert(
        "quota_project_id".into(),
        Value::String(project.to_string()),
    );
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(map))
        .map_err(|e| Error::Internal(format!("cannot serialize: {e}")))?;
    bytes.push(b'\n');
    store::write_atomic(&path, &bytes)?;
    eprintln!("Quota project set to {project} in {}", path.display());
    if args.credential_file.is_none() {
        super::warn_if_shadowed_by_env();
    }
    Ok(())
}

pub fn print(args: CredentialFileArgs) -> Result<()> {
    let (path, _source) = store::discover(args.credential_file.as_deref())?;
    let map = load_value(&path)?;
    let from_file = map.get("quota_project_id").and_then(Value::as_str);
    match super::effective_quota_project(from_file)? {
        Some(project) => super::print_stdout(&project),
        None => Err(Error::NoQuotaProject { path }),
    }
}
