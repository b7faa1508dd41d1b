//! Man pages: `gemauth man` (the top page), `gemauth man SUBCOMMAND` (one page per subcommand,
//! with its options) and `gemauth man --dir DIR` (every page as a file). Every page a page refers
//! to exists, and groff renders each without a warning. Also the top `--help`'s example.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::harness::*;
use crate::runner::{Trial, trials};

/// The subcommands `gemauth --help` lists (the `help` pseudo-command aside).
fn subcommands(env: &TestEnv) -> Vec<String> {
    let help = env.run(&["--help"]);
    assert_eq!(help.code(), 0, "{}", help.stderr);
    let mut in_commands = false;
    let mut names = Vec::new();
    for line in help.stdout.lines() {
        if line == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap().to_string();
            if name != "help" {
                names.push(name);
            }
        }
    }
    assert!(names.len() > 10, "{}", help.stdout);
    names
}

/// The long options `gemauth SUB --help` lists.
fn long_options(env: &TestEnv, sub: &str) -> Vec<String> {
    let help = env.run(&[sub, "--help"]);
    assert_eq!(help.code(), 0, "{sub}: {}", help.stderr);
    help.stdout
        .lines()
        .filter_map(|line| {
            let word = line
                .trim_start()
                .split([' ', ','])
                .find(|w| w.starts_with("--"))?;
            Some(word.trim_end_matches('.').to_string())
        })
        .collect()
}

/// Every `NAME(1)` a page refers to (`gemauth\-login(1)` in roff).
fn references(page: &str) -> BTreeSet<String> {
    let text = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "");
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("(1)") {
        let name: String = text[..at]
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if name.starts_with("gemauth") {
            found.insert(name);
        }
    }
    found
}

fn roff_option(option: &str) -> String {
    option.replace('-', "\\-")
}

fn every_page_exists_with_its_options_and_every_reference_resolves() {
    let env = TestEnv::new();
    let dir = env.path("man/man1");
    let done = env.run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    assert_eq!(done.stdout, "", "pages go to files, not stdout");
    let pages: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected: BTreeSet<String> = subcommands(&env)
        .iter()
        .map(|sub| format!("gemauth-{sub}.1"))
        .collect();
    expected.insert("gemauth.1".into());
    assert_eq!(pages, expected);

    let top = std::fs::read_to_string(dir.join("gemauth.1")).unwrap();
    assert_eq!(
        env.run(&["man"]).stdout,
        top,
        "`gemauth man` prints the top page"
    );
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for name in references(&text) {
            assert!(
                pages.contains(&format!("{name}.1")),
                "{page} refers to {name}(1), which has no page"
            );
        }
    }
    assert!(
        references(&top).len() > 10,
        "the top page lists the subcommands' pages"
    );

    for sub in subcommands(&env) {
        let file = std::fs::read_to_string(dir.join(format!("gemauth-{sub}.1"))).unwrap();
        let printed = env.run(&["man", &sub]);
        assert_eq!(printed.code(), 0, "{sub}: {}", printed.stderr);
        assert_eq!(printed.stdout, file, "`gemauth man {sub}` prints its page");
        assert!(
            file.contains(&format!(".TH gemauth-{sub} 1 ")),
            "{sub}: {}",
            &file[..200.min(file.len())]
        );
        assert!(
            references(&file).contains("gemauth"),
            "{sub}: no SEE ALSO gemauth(1)"
        );
        for option in long_options(&env, &sub) {
            assert!(
                file.contains(&roff_option(&option)),
                "gemauth-{sub}.1 lacks {option}"
            );
        }
    }
    // The examples keep their lines (no-fill), and the exit codes have their section.
    let login = std::fs::read_to_string(dir.join("gemauth-login.1")).unwrap();
    assert!(login.contains(".SH EXAMPLES"), "{login}");
    assert!(login.contains(".SH \"EXIT STATUS\""), "{login}");
    assert!(login.contains(".nf"), "{login}");
}

fn an_unknown_page_is_a_usage_error() {
    let env = TestEnv::new();
    let done = env.run(&["man", "no-such-command"]);
    assert_eq!(done.code(), 2, "{}", done.stderr);
    assert_eq!(done.stdout, "");
    assert!(done.stderr.contains("no-such-command"), "{}", done.stderr);
    assert!(done.stderr.contains("hint: "), "{}", done.stderr);
}

fn groff_renders_every_page_without_warnings() {
    let env = TestEnv::new();
    let dir = env.path("pages");
    let done = env.run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(done.code(), 0, "{}", done.stderr);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let page = entry.unwrap().path();
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff is needed for this test (`bash .ci/run` installs it)");
        assert!(out.status.success(), "{}", page.display());
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "groff warnings for {}",
            page.display()
        );
        count += 1;
    }
    assert!(count > 10);
    check_rendered_example(&dir.join("gemauth-login.1"));
}

/// The example lines stay lines once rendered.
fn check_rendered_example(page: &Path) {
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-P-cbou"])
        .arg(page)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim() == "gemauth login --client-id-file client_secret.json"),
        "{text}"
    );
}

fn the_top_help_example_sends_the_quota_project() {
    let env = TestEnv::new();
    let help = env.run(&["--help"]);
    assert_eq!(help.code(), 0);
    assert!(
        help.stdout
            .contains("-H \"x-goog-user-project: $(gemauth print-quota-project)\""),
        "{}",
        help.stdout
    );
}

/// The tests of this module, for the runner (main.rs).
pub(crate) fn tests() -> Vec<Trial> {
    trials![
        every_page_exists_with_its_options_and_every_reference_resolves,
        an_unknown_page_is_a_usage_error,
        groff_renders_every_page_without_warnings => Groff,
        the_top_help_example_sends_the_quota_project,
    ]
}
