//! The documentation stays true to the code: docs/configuration.md's tables are the ones in
//! the programs' configuration modules and name every variable the code reads, every relative link of the
//! README and `docs/` leads to a file and heading that exist, and the README stays short.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Each program's configuration module (the archiving functions', the planner's, the
/// compactor's), and the environment reader they share.
const CONFIG_SOURCES: [&str; 4] = [
    "shared/src/archive/config.rs",
    "shared/src/plan/config.rs",
    "shared/compact/src/config.rs",
    "shared/src/lambda/env.rs",
];

/// The Markdown tables in the configuration modules' documentation, each as its lines.
fn config_tables() -> Vec<String> {
    let mut tables: Vec<Vec<String>> = vec![vec![]];
    let sources: Vec<String> = CONFIG_SOURCES.iter().map(|path| read(&root().join(path))).collect();
    let lines = sources
        .iter()
        .flat_map(|source| source.lines().take_while(|line| line.starts_with("//!")).chain(std::iter::once("")));
    for line in lines {
        match line.strip_prefix("//! |") {
            Some(row) => tables.last_mut().unwrap().push(format!("|{row}")),
            None if !tables.last().unwrap().is_empty() => tables.push(vec![]),
            None => {}
        }
    }
    tables.into_iter().filter(|rows| !rows.is_empty()).map(|rows| rows.join("\n")).collect()
}

#[test]
fn the_documented_configuration_tables_are_the_programs_own() {
    // GIVEN the tables the code documents and docs/configuration.md
    let tables = config_tables();
    assert_eq!(tables.len(), 3, "{tables:?}");
    let documented = read(&root().join("docs/configuration.md"));
    // THEN docs/configuration.md holds each table, row for row
    for table in &tables {
        assert!(
            documented.contains(table),
            "docs/configuration.md's table differs from the code's ({CONFIG_SOURCES:?}):\n{table}"
        );
    }
    let block = tables.join("\n");
    // AND the table names every variable the code reads
    let source: String = CONFIG_SOURCES.iter().map(|path| read(&root().join(path))).collect();
    let mut read_by_code = BTreeSet::new();
    for call in ["get(\"", "required(\"", "number(\"", "seconds(\"", "endpoint(\"", "list(\"", "role_word(\""] {
        for piece in source.split(call).skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            if name.len() > 2 {
                read_by_code.insert(name);
            }
        }
    }
    assert!(read_by_code.len() >= 18, "{read_by_code:?}");
    for name in &read_by_code {
        assert!(block.contains(&format!("| `{name}` |")), "the configuration table does not name {name}");
    }
}

/// GitHub's anchor of a heading: lower case, spaces to `-`, other punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every `](target)` of a Markdown text that is not a web address.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target.to_owned()))
        .filter(|target| !target.starts_with("http://") && !target.starts_with("https://"))
        .collect()
}

#[test]
fn every_relative_link_of_the_docs_leads_somewhere() {
    let mut pages = vec![root().join("README.md"), root().join("events/README.md")];
    let docs = std::fs::read_dir(root().join("docs")).unwrap();
    pages.extend(docs.map(|entry| entry.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "md")));
    assert!(pages.len() >= 8, "{pages:?}");
    let mut checked = 0;
    for page in &pages {
        for target in relative_links(&read(page)) {
            // WHEN a link is followed from its page
            let (path, heading) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            // THEN the file exists, and so does the heading it names
            assert!(file.exists(), "{}: `{target}` leads nowhere", page.display());
            if !heading.is_empty() {
                let headings: Vec<String> = read(&file)
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| anchor(h.trim_start_matches('#')))
                    .collect();
                assert!(
                    headings.iter().any(|h| h == heading),
                    "{}: no heading `#{heading}` in {}",
                    page.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} links");
}

#[test]
fn the_readme_stays_short() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(lines <= 200, "README.md has {lines} lines: depth belongs in docs/");
}
