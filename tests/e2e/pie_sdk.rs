//! Inferlets built with Pie's published SDK (`inferlet` 0.2.0) run unmodified.

use crate::crust;
use crust_tests::{inferlet, scratch_dir};

#[test]
fn a_pie_sdk_inferlet_runs_unmodified() {
    let cache = scratch_dir("pie-hello");
    let path = inferlet("pie-hello").display().to_string();
    let run = crust(&["run", &path, "--", "alpha", "beta gamma"], &cache);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let id = lines[0].strip_prefix("pie instance ").expect("prints its instance id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(lines[1], "pie arguments alpha beta gamma");
    assert_eq!(lines[2], "pie says hi to alpha,beta gamma");
}

#[test]
fn a_pie_sdk_err_fails_the_run_with_its_text() {
    let cache = scratch_dir("pie-fail");
    let path = inferlet("pie-fail").display().to_string();
    let run = crust(&["run", &path, "--", "x", "y", "z"], &cache);
    assert_eq!(run.status, Some(1));
    assert!(run.stderr.contains("pie-fail is about to fail"), "its stderr streams: {}", run.stderr);
    assert!(run.stderr.contains("the inferlet failed: pie-fail refused with 3 argument(s)"), "{}", run.stderr);
}
