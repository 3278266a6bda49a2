//! A small preprocessor for the WGSL sources, so a kernel's variants live in
//! its shader file instead of in string edits on the host. Directives take a
//! whole line:
//!
//! - `#include "path"`: the file at `path` (relative to `shaders/`), itself preprocessed;
//! - `#if NAME` / `#ifdef NAME`, `#if !NAME` / `#ifndef NAME`, `#else`, `#endif`:
//!   keep lines by whether `NAME` is defined (they nest);
//! - `#define NAME`: defines `NAME` from here on (a flag, no value).
//!
//! WGSL itself never starts a line with `#`, so nothing else is touched.

use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    #[error("{file}:{line}: {message}")]
    At { file: String, line: usize, message: String },
    #[error("{0}: no such shader")]
    Missing(String),
    #[error("{0} includes itself")]
    Cycle(String),
}

/// `file` with its directives applied for the names in `defined`; `read`
/// gives a shader's source by its path.
pub fn preprocess<'a>(file: &str, defined: &[&str], read: &dyn Fn(&str) -> Option<&'a str>) -> Result<String, PreprocessError> {
    let mut state = State { read, defined: defined.iter().map(|d| d.to_string()).collect(), open: Vec::new(), out: String::new() };
    state.file(file)?;
    Ok(state.out)
}

struct State<'r, 'a> {
    read: &'r dyn Fn(&str) -> Option<&'a str>,
    defined: HashSet<String>,
    /// The files being included, outermost first: a file on it may not be included again.
    open: Vec<String>,
    out: String,
}

/// One open `#if`: whether its lines are kept, whether the lines around it
/// are, and whether its `#else` was seen.
struct Branch {
    taking: bool,
    outer: bool,
    in_else: bool,
}

impl State<'_, '_> {
    fn file(&mut self, file: &str) -> Result<(), PreprocessError> {
        if self.open.iter().any(|f| f == file) {
            return Err(PreprocessError::Cycle(file.to_string()));
        }
        let source = (self.read)(file).ok_or_else(|| PreprocessError::Missing(file.to_string()))?;
        self.open.push(file.to_string());
        let mut branches: Vec<Branch> = Vec::new();
        for (i, line) in source.lines().enumerate() {
            let at = |message: String| PreprocessError::At { file: file.to_string(), line: i + 1, message };
            let keeping = branches.last().is_none_or(|b| b.taking);
            let Some(directive) = line.trim_start().strip_prefix('#') else {
                if keeping {
                    self.out.push_str(line);
                    self.out.push('\n');
                }
                continue;
            };
            let (word, rest) = directive.split_once(char::is_whitespace).unwrap_or((directive, ""));
            let rest = rest.trim();
            match word {
                "if" | "ifdef" | "ifndef" => {
                    let (negated, name) = match (word, rest.strip_prefix('!')) {
                        ("ifndef", _) => (true, rest),
                        ("if", Some(name)) => (true, name.trim()),
                        _ => (false, rest),
                    };
                    let name = identifier(name).ok_or_else(|| at(format!("`#{word}` takes one name, not `{rest}`")))?;
                    let taking = keeping && (self.defined.contains(name) != negated);
                    branches.push(Branch { taking, outer: keeping, in_else: false });
                }
                "else" => {
                    let branch = branches.last_mut().filter(|b| !b.in_else).ok_or_else(|| at("`#else` without its `#if`".into()))?;
                    branch.taking = branch.outer && !branch.taking;
                    branch.in_else = true;
                }
                "endif" => {
                    branches.pop().ok_or_else(|| at("`#endif` without its `#if`".into()))?;
                }
                "define" if keeping => {
                    let name = identifier(rest).ok_or_else(|| at(format!("`#define` takes one name (no value), not `{rest}`")))?;
                    self.defined.insert(name.to_string());
                }
                "include" if keeping => {
                    let path = rest
                        .strip_prefix('"')
                        .and_then(|r| r.strip_suffix('"'))
                        .ok_or_else(|| at(format!("`#include` takes a quoted path, not `{rest}`")))?;
                    self.file(path)?;
                }
                "define" | "include" => {}
                _ => return Err(at(format!("unknown directive `#{word}`"))),
            }
        }
        if !branches.is_empty() {
            return Err(PreprocessError::At { file: file.to_string(), line: source.lines().count(), message: "`#if` without its `#endif`".into() });
        }
        self.open.pop();
        Ok(())
    }
}

fn identifier(s: &str) -> Option<&str> {
    let mut chars = s.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&'static str, &'static str)], entry: &str, defined: &[&str]) -> Result<String, PreprocessError> {
        let read = |path: &str| files.iter().find(|(name, _)| *name == path).map(|(_, source)| *source);
        preprocess(entry, defined, &read)
    }

    #[test]
    fn plain_lines_pass_through() {
        assert_eq!(run(&[("a", "x\n  y;\n")], "a", &[]).unwrap(), "x\n  y;\n");
    }

    #[test]
    fn includes_are_spliced_in_place_and_preprocessed() {
        let files = [("main", "first\n#include \"lib/b\"\nlast"), ("lib/b", "#if X\nb with X\n#endif\nb")];
        assert_eq!(run(&files, "main", &[]).unwrap(), "first\nb\nlast\n");
        assert_eq!(run(&files, "main", &["X"]).unwrap(), "first\nb with X\nb\nlast\n");
    }

    #[test]
    fn if_else_picks_one_branch() {
        let files = [("a", "#if F16\nalias T = f16;\n#else\nalias T = f32;\n#endif")];
        assert_eq!(run(&files, "a", &["F16"]).unwrap(), "alias T = f16;\n");
        assert_eq!(run(&files, "a", &[]).unwrap(), "alias T = f32;\n");
    }

    #[test]
    fn negations_and_ifdef_forms() {
        let files = [("a", "#ifndef A\nnot a\n#endif\n#if !A\nstill not a\n#endif\n#ifdef A\na\n#endif")];
        assert_eq!(run(&files, "a", &[]).unwrap(), "not a\nstill not a\n");
        assert_eq!(run(&files, "a", &["A"]).unwrap(), "a\n");
    }

    #[test]
    fn nested_ifs_inside_a_skipped_branch_stay_skipped() {
        let files = [("a", "#if A\n#if B\nab\n#else\na only\n#endif\n#else\nneither\n#endif")];
        assert_eq!(run(&files, "a", &[]).unwrap(), "neither\n");
        assert_eq!(run(&files, "a", &["A"]).unwrap(), "a only\n");
        assert_eq!(run(&files, "a", &["A", "B"]).unwrap(), "ab\n");
        assert_eq!(run(&files, "a", &["B"]).unwrap(), "neither\n");
    }

    #[test]
    fn defines_reach_later_lines_and_includes() {
        let files = [("main", "#if X\nearly\n#endif\n#define X\n#include \"b\""), ("b", "#if X\nb sees X\n#endif")];
        assert_eq!(run(&files, "main", &[]).unwrap(), "b sees X\n");
        // A define in a skipped branch does nothing.
        let files = [("main", "#if Y\n#define X\n#endif\n#if X\nx\n#endif")];
        assert_eq!(run(&files, "main", &[]).unwrap(), "");
    }

    #[test]
    fn skipped_includes_are_not_read() {
        assert_eq!(run(&[("a", "#if A\n#include \"missing\"\n#endif\nok")], "a", &[]).unwrap(), "ok\n");
    }

    #[test]
    fn mistakes_are_errors() {
        let error = |source: &'static str| run(&[("a", source)], "a", &[]).unwrap_err();
        assert_eq!(error("x\n#endif"), PreprocessError::At { file: "a".into(), line: 2, message: "`#endif` without its `#if`".into() });
        assert!(matches!(error("#if A\nx"), PreprocessError::At { line: 2, .. }));
        assert!(matches!(error("#if A\n#else\n#else\n#endif"), PreprocessError::At { line: 3, .. }));
        assert!(matches!(error("#elif A"), PreprocessError::At { line: 1, .. }));
        assert!(matches!(error("#if A B"), PreprocessError::At { line: 1, .. }));
        assert!(matches!(error("#define N 4"), PreprocessError::At { line: 1, .. }));
        assert!(matches!(error("#include b"), PreprocessError::At { line: 1, .. }));
        assert_eq!(error("#include \"b\""), PreprocessError::Missing("b".into()));
        assert_eq!(run(&[("a", "#include \"a\"")], "a", &[]).unwrap_err(), PreprocessError::Cycle("a".into()));
    }

    #[test]
    fn a_file_may_be_included_twice_in_sequence() {
        let files = [("a", "#include \"b\"\n#include \"b\""), ("b", "b")];
        assert_eq!(run(&files, "a", &[]).unwrap(), "b\nb\n");
    }
}
