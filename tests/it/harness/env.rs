//! The isolated environment of one test ([`TestEnv`]): temp HOME, XDG dirs, CLOUDSDK_CONFIG,
//! the fake server and browser; the binary under test and small file helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;

/// An isolated environment: temp HOME, XDG dirs, CLOUDSDK_CONFIG, fake server and browser.
pub(crate) struct TestEnv {
    pub dir: tempfile::TempDir,
    pub google: FakeGoogle,
    /// GCE_METADATA_HOST: no metadata server, and the attempt is refused at once.
    no_metadata: ClosedPort,
}

impl TestEnv {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "config", "cache", "gcloud-parent"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let (name, script) = FAKE_BROWSER;
        let browser = dir.path().join(name);
        std::fs::write(&browser, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        TestEnv {
            dir,
            google: FakeGoogle::start(),
            no_metadata: ClosedPort::new(),
        }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// gcloud's config dir; gemauth must create it (0700) on first login.
    pub(crate) fn gcloud_dir(&self) -> PathBuf {
        self.path("gcloud-parent").join("gcloud")
    }

    pub(crate) fn adc_path(&self) -> PathBuf {
        self.gcloud_dir()
            .join("application_default_credentials.json")
    }

    /// gemauth's cache: in `XDG_CACHE_HOME` (Linux) or `LOCALAPPDATA` (Windows), both the test's
    /// `cache`; macOS has one place only, under `HOME`.
    pub(crate) fn cache_dir(&self) -> PathBuf {
        if cfg!(target_os = "macos") {
            self.path("home/Library/Caches/gemauth")
        } else {
            self.path("cache/gemauth")
        }
    }

    /// The fake browser as `$BROWSER` names it (a command line, split like a shell's).
    /// The fake browser's script file.
    pub(crate) fn browser_script(&self) -> PathBuf {
        self.path(FAKE_BROWSER.0)
    }

    /// `BROWSER` for the fake browser: a command line.
    pub(crate) fn browser(&self) -> String {
        let script = self.browser_script();
        if cfg!(windows) {
            format!("cscript //nologo \"{}\"", script.display())
        } else {
            format!("'{}'", script.display())
        }
    }

    /// The gemauth binary with an environment that reaches nothing outside the test.
    pub(crate) fn cmd(&self) -> Command {
        let mut cmd = Command::new(gemauth_binary());
        for var in [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "NO_PROXY",
            "no_proxy",
            "DISPLAY",
            "WAYLAND_DISPLAY",
            "RUST_LOG",
            "APPDATA",
            "NO_GCE_CHECK",
            "GOOGLE_CLOUD_QUOTA_PROJECT",
            "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS",
            "CLOUDSDK_AUTH_LOGIN_CONFIG_FILE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("LOCALAPPDATA", self.path("cache"))
            .env("CLOUDSDK_CONFIG", self.gcloud_dir())
            .env("BROWSER", self.browser())
            .env("GEMAUTH_TIMEOUT", "10")
            // `status --check` asks the fake's model list, never Google's.
            .env(
                "GEMAUTH_CHECK_API_URL",
                format!("{}/v1/models", self.google.base),
            )
            // Never look for a real metadata server: a closed loopback port answers at once.
            .env(
                "GCE_METADATA_HOST",
                format!("127.0.0.1:{}", self.no_metadata.port()),
            )
            .stdin(Stdio::null());
        cmd
    }

    /// Gives another command (a wrapper such as `sh -c` that then runs gemauth) the environment
    /// of [`TestEnv::cmd`].
    pub(crate) fn isolate<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in self.cmd().get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd
    }

    pub(crate) fn client_json(&self) -> serde_json::Value {
        serde_json::json!({"installed": {
            "client_id": CLIENT_ID,
            "project_id": PROJECT_ID,
            "auth_uri": format!("{}/auth", self.google.base),
            "token_uri": format!("{}/token", self.google.base),
            "revoke_uri": format!("{}/revoke", self.google.base),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": CLIENT_SECRET,
            "redirect_uris": ["http://localhost"]
        }})
    }

    pub(crate) fn write_client(&self, value: &serde_json::Value) -> PathBuf {
        let path = self.path("client_secret.json");
        std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
        path
    }

    pub(crate) fn client_file(&self) -> PathBuf {
        self.write_client(&self.client_json())
    }

    /// Starts `gemauth login --client-id-file … ARGS` in the background.
    pub(crate) fn start_login(&self, args: &[&str]) -> Running {
        let client = self.client_file();
        let mut cmd = self.cmd();
        cmd.arg("login")
            .arg("--client-id-file")
            .arg(&client)
            .args(args);
        Running::spawn(cmd, self.path("browser-args"))
    }

    /// Starts `gemauth login --no-browser --client-id-file … ARGS` with stdin open.
    pub(crate) fn start_headless(&self, args: &[&str]) -> Running {
        let client = self.client_file();
        let mut cmd = self.cmd();
        cmd.arg("login")
            .arg("--no-browser")
            .arg("--client-id-file")
            .arg(&client)
            .args(args);
        Running::spawn_interactive(cmd, self.path("browser-args"))
    }

    /// Calls `start` (e.g. [`TestEnv::start_login`]) with `["--port", PORT]`, PORT a port that
    /// was free a moment ago, and returns the login once gemauth has bound it, with the port.
    /// Another program may take the port between the test's check and gemauth's bind: gemauth
    /// then exits saying so, and another port is tried.
    pub(crate) fn start_on_a_free_port(
        &self,
        start: impl Fn(&[&str]) -> Running,
    ) -> (Running, u16) {
        for _ in 0..10 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|probe| probe.local_addr())
                .expect("a free loopback port")
                .port();
            let mut run = start(&["--port", &port.to_string()]);
            // The authorization URL is printed once the listener is bound.
            if run.wait_stderr_or_exit(&format!("{}/auth?", self.google.base)) {
                return (run, port);
            }
            let done = run.finish();
            assert!(
                done.code() == 1 && done.stderr.contains(&format!("port {port}")),
                "{}",
                done.stderr
            );
        }
        panic!("10 free ports in a row were taken before gemauth could bind them");
    }

    /// Runs a complete, approved login with the default settings.
    pub(crate) fn login(&self) -> Finished {
        let run = self.start_login(&[]);
        let url = run.browser_url();
        let page = follow_authorization(&url);
        assert_eq!(page.status, 200, "{}", page.body);
        let done = run.finish();
        assert!(done.status.success(), "login failed: {}", done.stderr);
        done
    }

    /// A user's credentials as the source of another credential (impersonation): the fields
    /// every authorized_user file has, with this server's token endpoint.
    pub(crate) fn user_source(&self, refresh_token: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "token_uri": format!("{}/token", self.google.base),
        })
    }

    /// Writes an authorized_user file by hand (refresh token registered at the fake server).
    pub(crate) fn write_credentials(&self, path: &Path, refresh_token: &str) -> Vec<u8> {
        self.google.add_refresh_token(refresh_token);
        let value = serde_json::json!({
            "type": "authorized_user",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": refresh_token,
            "quota_project_id": PROJECT_ID,
            "universe_domain": "googleapis.com",
            "token_uri": format!("{}/token", self.google.base),
            "revoke_uri": format!("{}/revoke", self.google.base),
            "custom_field": {"kept": true},
        });
        let bytes = serde_json::to_vec_pretty(&value).unwrap();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        write_private(path, &bytes);
        bytes
    }

    /// Writes a JSON credential file (mode 0600) in the test directory.
    pub(crate) fn write_json(&self, name: &str, value: &serde_json::Value) -> PathBuf {
        let path = self.path(name);
        write_private(&path, &serde_json::to_vec_pretty(value).unwrap());
        path
    }

    /// Writes `impersonated.json`: an impersonated_service_account acting through `url` with
    /// [`Self::user_source`] of `1//source` as its source, plus the fields of `more` (an
    /// object; its fields win).
    pub(crate) fn impersonated_file(&self, url: &str, more: serde_json::Value) -> PathBuf {
        let mut value = serde_json::json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": url,
            "source_credentials": self.user_source("1//source"),
        });
        if let serde_json::Value::Object(fields) = more {
            value.as_object_mut().unwrap().extend(fields);
        }
        self.write_json("impersonated.json", &value)
    }

    /// Starts gemauth with ARGS, its output piped (for many concurrent processes). Under Wine,
    /// starting many processes at once now and then fails with "Internal error" (OS error 1359)
    /// before gemauth runs at all: that start is tried again, a few times.
    pub(crate) fn spawn_piped<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Child {
        let mut tries = 0;
        loop {
            match self
                .cmd()
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            {
                Ok(child) => return child,
                Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => panic!("cannot start gemauth: {e}"),
            }
        }
    }

    /// Cache entries (`KEY.json`; not the temp files of a writer that was killed mid-write).
    pub(crate) fn cached_tokens(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.cache_dir().join("tokens")) {
            Ok(entries) => entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect(),
            Err(_) => vec![],
        }
    }

    /// Makes every cached token look expired.
    pub(crate) fn expire_cache(&self) {
        for path in self.cached_tokens() {
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["obtained_at"] = 1000.into();
            v["expires_at"] = 4600.into();
            std::fs::write(&path, v.to_string()).unwrap();
        }
    }

    /// Runs a command to completion with more environment variables (30 s limit).
    pub(crate) fn run_with<V: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[&str],
        vars: &[(&str, V)],
    ) -> Finished {
        let mut cmd = self.cmd();
        cmd.args(args);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        Running::spawn(cmd, self.path("browser-args")).finish()
    }

    /// Runs a command to completion (30 s limit).
    pub(crate) fn run(&self, args: &[&str]) -> Finished {
        let mut cmd = self.cmd();
        cmd.args(args);
        Running::spawn(cmd, self.path("browser-args")).finish()
    }

    /// Runs `gemauth revoke` and checks that it revoked `refresh_token` at the server (one
    /// request), said so on standard error only, and removed the ADC file and the cache.
    /// Returns the revocation request.
    pub(crate) fn assert_revokes(&self, refresh_token: &str) -> Seen {
        let done = self.run(&["revoke"]);
        assert_eq!(done.code(), 0, "{}", done.stderr);
        assert_eq!(done.stdout, "");
        assert!(done.stderr.contains("Revoked the grant"), "{}", done.stderr);
        let seen = self.google.seen("/revoke");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].form["token"], refresh_token);
        assert!(!self.google.refresh_token_valid(refresh_token));
        assert!(!self.adc_path().exists());
        assert!(self.cached_tokens().is_empty());
        seen[0].clone()
    }
}

/// The fake server's IAM Credentials `generateAccessToken` for
/// target@test-project-1.iam.gserviceaccount.com.
pub(crate) fn impersonation_url(env: &TestEnv) -> String {
    format!(
        "{}/v1/projects/-/serviceAccounts/target@test-project-1.iam.gserviceaccount.com:generateAccessToken",
        env.google.base
    )
}

/// The binary under test: the one `cargo test` built, or `GEMAUTH_TEST_BINARY` (.ci/run points
/// it at the static release build, to run the tests against the binary that is shipped).
pub(crate) fn gemauth_binary() -> PathBuf {
    match std::env::var_os("GEMAUTH_TEST_BINARY") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_gemauth")),
    }
}

/// Writes a file readable by its owner only, as credential files should be.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

pub(crate) fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("file exists")).expect("valid JSON")
}

#[cfg(unix)]
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// True when the tests run as root (permission checks cannot be exercised then).
#[cfg(unix)]
pub(crate) fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
