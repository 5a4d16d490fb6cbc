//! An issue's Go example as a test: the statements of its snippet (or of its `main`) in a test
//! function of the package's external test package, each print at the top level asserting what the
//! issue says it should print.

use std::collections::BTreeSet;

use super::{fenced, printed_values, quoted};

/// The test function's name.
pub const TEST: &str = "TestFixboxIssue";

/// Standard packages an example may call, by the name it calls them with.
const STANDARD: &[(&str, &str)] = &[
    ("bytes", "bytes"),
    ("errors", "errors"),
    ("fmt", "fmt"),
    ("http", "net/http"),
    ("io", "io"),
    ("json", "encoding/json"),
    ("math", "math"),
    ("net", "net"),
    ("os", "os"),
    ("reflect", "reflect"),
    ("regexp", "regexp"),
    ("sort", "sort"),
    ("strconv", "strconv"),
    ("strings", "strings"),
    ("time", "time"),
    ("url", "net/url"),
];

/// Compares what was printed with what the issue expects, spaces and the kind of quotes aside.
const SHOWS: &str = r#"func fixboxShows(t *testing.T, printed, expected string) {
	t.Helper()
	norm := func(text string) string {
		return strings.Join(strings.Fields(strings.ReplaceAll(text, "\"", "'")), "")
	}
	if norm(printed) != norm(expected) {
		t.Errorf("printed %q; the issue expects %q", strings.TrimSpace(printed), expected)
	}
}
"#;

/// The test file for `task`'s ```` ```go ```` example in package `package` of module `module`, where
/// each of its prints has a value the issue expects.
pub fn test(task: &str, package: &str, module: &str) -> Option<String> {
    let code = fenced(task, &["go", "golang"])?;
    let body = main_body(&code);
    let prints: Vec<usize> = (0..body.len()).filter(|&i| print_call(body[i]).is_some()).collect();
    // A print in a loop or a branch prints what no one value says.
    if prints.iter().any(|&i| body[i].starts_with(char::is_whitespace)) {
        return None;
    }
    let expected = printed_values(task, &body, prints.len())?;
    let mut lines: Vec<String> = body.iter().map(|l| l.to_string()).collect();
    for (&at, value) in prints.iter().zip(&expected) {
        let (format, args) = print_call(body[at])?;
        lines[at] = format!("fixboxShows(t, fmt.{format}({args}), {})", quoted(value));
    }
    let mut imports: BTreeSet<String> = ["fmt", "strings", "testing"].map(String::from).into();
    for name in qualifiers(&lines) {
        if name == package {
            imports.insert(module.to_string());
        } else if let Some((_, path)) = STANDARD.iter().find(|(short, _)| *short == name) {
            imports.insert(path.to_string());
        }
    }
    let imports: String = imports.iter().map(|path| format!("\t{}\n", quoted(path))).collect();
    let body: String =
        lines.iter().map(|l| if l.trim().is_empty() { "\n".to_string() } else { format!("\t{l}\n") }).collect();
    Some(format!("package {package}_test\n\nimport (\n{imports})\n\n{SHOWS}\nfunc {TEST}(t *testing.T) {{\n{body}}}\n"))
}

/// The statements of a snippet: those of its `func main() { … }` where it is a whole program,
/// without `package` and `import` lines.
fn main_body<'a>(code: &[&'a str]) -> Vec<&'a str> {
    let body: Vec<&str> = match code.iter().position(|l| l.trim_start().starts_with("func main()")) {
        Some(start) => {
            // main's closing brace, at the start of its line as gofmt writes it: not a block's inside
            // main, nor the end of a function after it.
            let end = code[start..].iter().position(|l| l.trim_end() == "}").map_or(code.len(), |end| start + end);
            code[start + 1..end]
                .iter()
                .map(|l| l.strip_prefix('\t').or_else(|| l.strip_prefix("    ")).unwrap_or(l))
                .collect()
        }
        None => code.to_vec(),
    };
    let mut in_imports = false;
    body.into_iter()
        .filter(|l| {
            let line = l.trim();
            if in_imports {
                in_imports = line != ")";
                return false;
            }
            in_imports = line == "import (";
            !(in_imports || line.starts_with("package ") || line.starts_with("import "))
        })
        .collect()
}

/// `fmt.Println(a, b)` as (`Sprintln`, `a, b`): the function that returns what it prints, and its
/// arguments.
fn print_call(line: &str) -> Option<(&'static str, &str)> {
    let line = line.trim();
    let (format, rest) = [("Println(", "Sprintln"), ("Printf(", "Sprintf"), ("Print(", "Sprint")]
        .iter()
        .find_map(|(call, format)| Some((*format, line.strip_prefix("fmt.")?.strip_prefix(call)?)))?;
    Some((format, rest.strip_suffix(')')?))
}

/// The names code calls a package by: `x` of `x.F` where `x` starts a word and is not a field.
fn qualifiers(lines: &[String]) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for line in lines {
        let bytes = line.as_bytes();
        for (at, _) in line.match_indices('.') {
            let start = line[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
            let name = &line[start..at];
            let after_dot = start > 0 && bytes[start - 1] == b'.';
            if !name.is_empty() && !after_dot && name.starts_with(|c: char| c.is_ascii_lowercase()) {
                names.insert(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_go_example_is_a_test_that_its_prints_show_what_the_issue_expects() {
        let task = "`*-0` does not match\n\n```go\nc, _ := semver.NewConstraint(\"*-0\")\nfmt.Println(c.Check(semver.MustParse(\"1.2.3-alpha.1\")))\n```\n\nThis prints `false`. I expected `*-0` to match every version, so `true`.\n";
        assert_eq!(
            test(task, "semver", "github.com/Masterminds/semver/v3").unwrap(),
            format!(
                "package semver_test\n\nimport (\n\t\"fmt\"\n\t\"github.com/Masterminds/semver/v3\"\n\t\"strings\"\n\t\"testing\"\n)\n\n{SHOWS}\n\
                 func TestFixboxIssue(t *testing.T) {{\n\tc, _ := semver.NewConstraint(\"*-0\")\n\
                 \tfixboxShows(t, fmt.Sprintln(c.Check(semver.MustParse(\"1.2.3-alpha.1\"))), \"true\")\n}}\n"
            )
        );
        let program = "GetIP fails\n\n```go\npackage main\n\nimport (\n\t\"fmt\"\n\t\"net\"\n)\n\nfunc main() {\n\tvar addr net.IP\n\tfs := pflag.NewFlagSet(\"app\", pflag.ContinueOnError)\n\tfs.IPVar(&addr, \"address\", nil, \"IP\")\n\tip, err := fs.GetIP(\"address\")\n\tfmt.Printf(\"ip=%v err=%v\\n\", ip, err)\n}\n```\n\nOutput: `ip=<nil> err=invalid`\n\nI expected `GetIP` to return no error (`ip=<nil> err=<nil>`).\n";
        let written = test(program, "pflag", "github.com/spf13/pflag").unwrap();
        assert!(
            written.contains(
                "import (\n\t\"fmt\"\n\t\"github.com/spf13/pflag\"\n\t\"net\"\n\t\"strings\"\n\t\"testing\"\n)\n"
            ),
            "{written}"
        );
        assert!(
            written.ends_with("\tvar addr net.IP\n\tfs := pflag.NewFlagSet(\"app\", pflag.ContinueOnError)\n\tfs.IPVar(&addr, \"address\", nil, \"IP\")\n\tip, err := fs.GetIP(\"address\")\n\tfixboxShows(t, fmt.Sprintf(\"ip=%v err=%v\\n\", ip, err), \"ip=<nil> err=<nil>\")\n}\n"),
            "{written}"
        );
        let helper = "```go\nfunc main() {\n\tfor _, x := range xs {\n\t\t_ = x\n\t}\n\tfmt.Println(f())\n}\n\nfunc f() int { return 1 }\n```\n\nI expected `2`.\n";
        assert!(
            test(helper, "m", "m").unwrap().ends_with("\tfixboxShows(t, fmt.Sprintln(f()), \"2\")\n}\n"),
            "main's body only"
        );
        let illustrated = "```go\nc, err := semver.NewConstraint(\"1 - 2 <=2\")\nfmt.Println(c, err)\n```\n\nI expected it to parse and accept e.g. `1.5.0` (`c.Check(v) == true`).\n";
        assert_eq!(test(illustrated, "semver", "m"), None, "an illustration and an assertion are no output");
        let looped = "```go\nfor _, r := range rs {\n\tfmt.Println(r)\n}\n```\nExpected `1`.\n";
        assert_eq!(test(looped, "semver", "m"), None, "a print in a loop");
    }
}
