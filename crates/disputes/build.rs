//! Records the commit the binary is built from (`disputes --version`, `disputes_build_info`):
//! `DISPUTES_COMMIT` when set (a build without the git history, e.g. in a container), else
//! `git rev-parse`, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DISPUTES_COMMIT");
    let commit = std::env::var("DISPUTES_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=DISPUTES_COMMIT={commit}");
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // Rebuild when HEAD moves (a commit, a checkout).
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned());
    if let Some(dir) = git_dir {
        for file in ["HEAD", "packed-refs"] {
            let path = Path::new(&dir).join(file);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        if let Ok(head) = std::fs::read_to_string(Path::new(&dir).join("HEAD")) {
            if let Some(reference) = head.trim().strip_prefix("ref: ") {
                let path = Path::new(&dir).join(reference);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    }
    Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
}
