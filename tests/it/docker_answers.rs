//! Docker's credential-helper protocol at its edges: a server URL gemauth cannot read is "not
//! mine" (Docker's "credentials not found" answer, exit 1, so that Docker goes on without
//! credentials), and a Docker config file over the size limit is reported as Docker's file.

use crate::harness::*;
use crate::runner::{Trial, trials};

/// `gemauth ARGS` with `input` on stdin (then closed), Docker's config in `home/.docker`.
fn docker_helper(env: &TestEnv, args: &[&str], input: &str) -> Finished {
    let mut cmd = env.cmd();
    cmd.env("DOCKER_CONFIG", env.path("home/.docker"))
        .args(args);
    let mut run = Running::spawn_interactive(cmd, env.path("browser-args"));
    // A command that reads nothing (configure-docker) may have exited before the line is written.
    run.paste_unless_gone(input);
    run.close_stdin();
    run.finish()
}

fn a_malformed_server_url_gets_the_not_found_answer() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//docker-grant");
    for server_url in [
        "https://gcr.io@evil.com",
        "https://user:pass@gcr.io",
        "gcr.io:99999",
        "a b",
        "https://",
        "",
        "   \n",
        "not a host",
        "gcr.io:notaport",
        "gcr.io\u{1b}[31m",
    ] {
        let done = docker_helper(&env, &["docker-credential", "get"], server_url);
        assert_eq!(done.code(), 1, "{server_url:?}: {}", done.stderr);
        assert_eq!(
            done.stdout, "credentials not found in native keychain\n",
            "{server_url:?}"
        );
        assert_eq!(done.stderr, "", "{server_url:?}");
    }
    assert!(env.google.seen("/token").is_empty(), "a token was obtained");
}

fn an_oversized_docker_config_is_named_as_dockers_file() {
    let env = TestEnv::new();
    env.write_credentials(&env.adc_path(), "1//docker-grant");
    let dir = env.path("home/.docker");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.json");
    let mut big = String::from("{\"auths\":{},\"pad\":\"");
    big.push_str(&"x".repeat(1100 * 1024));
    big.push_str("\"}");
    std::fs::write(&config, &big).unwrap();
    for (args, input) in [
        (&["docker-credential", "get"][..], "registry.example.com"),
        (&["configure-docker"], ""),
    ] {
        let done = docker_helper(&env, args, input);
        assert_eq!(done.code(), 1, "{args:?}: {}", done.stderr);
        assert_eq!(done.stdout, "", "{args:?}");
        let first = done.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(&config.display().to_string())
                && first.contains("Docker's config file")
                && first.contains("too large"),
            "{args:?}: {}",
            done.stderr
        );
        assert!(!first.contains("credential"), "{args:?}: {}", done.stderr);
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), big, "changed");
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        a_malformed_server_url_gets_the_not_found_answer,
        an_oversized_docker_config_is_named_as_dockers_file,
    ]
}
