//! `gemauth set-quota-project` and `gemauth print-quota-project`: the project billed for API
//! quota, stored as `quota_project_id` in the credential file.

use serde_json::Value;

use super::report::{Error, Result};
use crate::cli::{CredentialFileArgs, SetQuotaProjectArgs};
use crate::credentials::{self, validate_project_id};
use crate::store::{self, CredentialLock};

pub(crate) fn set(args: SetQuotaProjectArgs) -> Result<()> {
    let project = args.project.trim();
    validate_project_id(project)?;
    let path = match &args.credential_file {
        Some(p) => p.clone(),
        None => store::well_known_path(&crate::env::Env::Process)?,
    };
    if !store::is_present(&path) {
        return Err(crate::Error::NoCredentials { searched: path }.into());
    }
    let _lock = CredentialLock::acquire(&path)?;
    credentials::update_json_object(&path, None, |map| {
        map.insert(
            "quota_project_id".into(),
            Value::String(project.to_string()),
        );
        Ok(())
    })?;
    eprintln!("Quota project set to {project} in {}", path.display());
    if args.credential_file.is_none() {
        super::warn_if_shadowed_by_env();
    }
    Ok(())
}

pub(crate) fn print(args: CredentialFileArgs) -> Result<()> {
    let (path, _source) =
        store::discover(&crate::env::Env::Process, args.credential_file.as_deref())?;
    let map = credentials::load_json_object(&path)?;
    let from_file = map.get("quota_project_id").and_then(Value::as_str);
    match super::effective_quota_project(from_file)? {
        Some(project) => super::print_stdout(&project),
        None => Err(Error::NoQuotaProject { path }),
    }
}
