//! Whether a session looked where the bug is: the lines the task's upstream fix changes, against the
//! regions the session asked the model to rewrite. A task no rewrite fixed either was not looked at
//! (localization's miss) or was and the model wrote the wrong change (generation's): which one says
//! where the next gain is.

use std::collections::BTreeMap;

use fixbox_agent::Region;

/// The 1-based place among `regions` (most likely first) of the first one holding a line `patch` (a
/// unified diff against the same code) changes; `None` when none does.
pub fn fix_region(patch: &str, regions: &[Region]) -> Option<usize> {
    let changed = changed_lines(patch);
    regions
        .iter()
        .position(|r| changed.get(&r.path).is_some_and(|lines| lines.iter().any(|l| (r.start..r.end).contains(l))))
        .map(|i| i + 1)
}

/// Per file, the 0-based lines of the old side a unified diff removes or replaces, and for lines it
/// only adds, the old lines on either side of where they go.
fn changed_lines(patch: &str) -> BTreeMap<String, Vec<usize>> {
    let mut found: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut path: Option<String> = None;
    // The next old line's 0-based number, inside a hunk.
    let mut old: Option<usize> = None;
    // Lines added right after lines removed replace them; lines added alone go between two old ones.
    let mut replacing = false;
    for line in patch.lines() {
        if let Some(name) = line.strip_prefix("+++ ") {
            path = name.strip_prefix("b/").map(str::to_string);
            old = None;
        } else if let Some(header) = line.strip_prefix("@@ -") {
            let start = header.split([',', ' ']).next().and_then(|n| n.parse::<usize>().ok());
            old = start.map(|n| n.saturating_sub(1));
        } else if let (Some(file), Some(at)) = (&path, old) {
            let lines = found.entry(file.clone()).or_default();
            match line.as_bytes().first() {
                Some(b'-') => {
                    lines.push(at);
                    old = Some(at + 1);
                    replacing = true;
                }
                Some(b'+') if replacing => {}
                Some(b'+') => lines.extend([at.saturating_sub(1), at]),
                Some(b' ') | None => {
                    old = Some(at + 1);
                    replacing = false;
                }
                _ => old = None,
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(path: &str, start: usize, end: usize) -> Region {
        Region { path: path.into(), start, end, function: None }
    }

    const PATCH: &str = "diff --git a/CHANGES.rst b/CHANGES.rst\n--- a/CHANGES.rst\n+++ b/CHANGES.rst\n@@ -1,2 +1,3 @@\n one\n+two\n three\ndiff --git a/src/f.py b/src/f.py\n--- a/src/f.py\n+++ b/src/f.py\n@@ -10,4 +10,4 @@ def g():\n     a = 1\n-    b = 2\n+    b = 3\n     c = 4\n@@ -40,2 +40,3 @@\n x\n+y\n z\n";

    #[test]
    fn the_first_region_holding_a_changed_line_is_where_the_fix_was_found() {
        assert_eq!(changed_lines(PATCH)["src/f.py"], [10, 39, 40]);
        let regions = [region("src/g.py", 0, 50), region("src/f.py", 20, 30), region("src/f.py", 5, 11)];
        assert_eq!(fix_region(PATCH, &regions), Some(3));
        // Where lines are added, the lines on either side count.
        assert_eq!(fix_region(PATCH, &[region("src/f.py", 40, 45)]), Some(1));
        assert_eq!(fix_region(PATCH, &regions[..2]), None);
        assert_eq!(fix_region("", &regions), None);
    }
}
