//! gemauth processes running in the background ([`Running`]) and what they left
//! ([`Finished`]).

use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Waits for each of `children` (from [`TestEnv::spawn_piped`]) and checks that it succeeded and
/// printed `token`.
pub(crate) fn assert_each_prints(children: Vec<Child>, token: &str) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{token}\n"));
    }
}

/// Waits for each of `children` and checks that it succeeded with nothing on standard error;
/// returns what each printed, in order.
pub(crate) fn quiet_outputs(children: Vec<Child>) -> Vec<String> {
    let mut outputs = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stderr, "");
        outputs.push(String::from_utf8(out.stdout).unwrap());
    }
    outputs
}

/// A gemauth process running in the background. Its standard error goes to a file, so that
/// what gemauth has written is there to read (a pipe's reader could lag behind); its standard
/// output is collected by a thread.
pub(crate) struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: tempfile::NamedTempFile,
    browser_args: PathBuf,
}

pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub(crate) fn code(&self) -> i32 {
        self.status.code().expect("exit code")
    }

    /// The first `hint: ` line of standard error; panics with standard error when there is none.
    pub(crate) fn hint(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("hint: "))
            .unwrap_or_else(|| panic!("{}", self.stderr))
    }

    /// The `warning:` lines of standard error.
    pub(crate) fn warnings(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect()
    }

    /// Standard output as JSON; panics with standard error when it is not.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|_| panic!("{}", self.stderr))
    }

    /// Checks the answer to a command run without any credential: exit code 3, nothing on
    /// standard output, "no credentials found" on standard error.
    pub(crate) fn assert_no_credentials(&self) {
        assert_eq!(self.code(), 3);
        assert_eq!(self.stdout, "");
        assert!(
            self.stderr.contains("no credentials found"),
            "{}",
            self.stderr
        );
    }
}

impl Running {
    pub(crate) fn spawn(mut cmd: Command, browser_args: PathBuf) -> Self {
        let _ = std::fs::remove_file(&browser_args);
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("start gemauth");
        let out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(out).read_to_string(&mut s);
            s
        });
        let stdin = child.stdin.take();
        Running {
            child,
            stdin,
            stdout: Some(stdout),
            stderr,
            browser_args,
        }
    }

    /// Like [`Running::spawn`], with standard input kept open for [`Running::paste`].
    pub(crate) fn spawn_interactive(mut cmd: Command, browser_args: PathBuf) -> Self {
        cmd.stdin(Stdio::piped());
        Self::spawn(cmd, browser_args)
    }

    /// Types a line on the process's standard input.
    pub(crate) fn paste(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with spawn_interactive");
        stdin.write_all(format!("{line}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Types a line on standard input, unless the process has already exited and closed it (a
    /// command that reads nothing).
    pub(crate) fn paste_unless_gone(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with spawn_interactive");
        match stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => panic!("cannot write to gemauth's standard input: {e}"),
        }
    }

    /// Closes standard input (end of file).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The process id.
    #[cfg(target_os = "linux")]
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.stderr.path()).unwrap()).into_owned()
    }

    /// Waits until stderr contains `needle` (true) or the process has exited (false).
    pub(crate) fn wait_stderr_or_exit(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.stderr_so_far().contains(needle) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}: {}",
                self.stderr_so_far()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until stderr contains `needle`; returns stderr.
    pub(crate) fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.stderr_so_far();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "stderr never contained {needle:?}: {s}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The arguments the fake browser was started with.
    pub(crate) fn browser_args(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.browser_args) {
                return s.lines().map(str::to_string).collect();
            }
            assert!(
                Instant::now() < deadline,
                "the browser was never started; stderr: {}",
                self.stderr_so_far()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The URL the fake browser was asked to open (its last argument).
    pub(crate) fn browser_url(&self) -> String {
        self.browser_args().pop().expect("browser got a URL")
    }

    /// The authorization URL as printed on stderr.
    pub(crate) fn printed_url(&self) -> String {
        let s = self.wait_stderr("http");
        s.split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .expect("a URL on stderr")
            .to_string()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn finish(mut self) -> Finished {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("gemauth did not finish; stderr: {}", self.stderr_so_far());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr_so_far();
        Finished {
            status,
            stdout,
            stderr,
        }
    }
}
