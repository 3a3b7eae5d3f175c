//! The template's Athena named queries, run for real by DuckDB over a local copy of the history:
//! each Glue table a view (a service's NDJSON read as JSON lines, its compacted days as Parquet,
//! `dt` from the key, as the tables' partition projection reads them), the few Trino functions
//! the queries use spelled as DuckDB spells them, and their `?` given in order.

use std::path::Path;

use serde_json::Value as Json;
use session_archiver::history::HistoryKind;
use session_archiver::model::{ColumnType, ServiceId};
use session_compaction::columns::Dataset;
use yaml_rust2::YamlLoader;

/// A named query of the template: its resource name and SQL.
#[derive(Clone, Debug)]
pub struct NamedQuery {
    pub resource: String,
    pub sql: String,
}

/// Every `AWS::Athena::NamedQuery` of `template.yaml`.
pub fn named_queries() -> Vec<NamedQuery> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
    let template = YamlLoader::load_from_str(&std::fs::read_to_string(path).unwrap()).unwrap().remove(0);
    let resources = template["Resources"].as_hash().unwrap();
    resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Athena::NamedQuery"))
        .map(|(name, r)| NamedQuery {
            resource: name.as_str().unwrap().to_owned(),
            sql: r["Properties"]["QueryString"].as_str().unwrap().to_owned(),
        })
        .collect()
}

/// The query named `resource`.
pub fn named_query(resource: &str) -> NamedQuery {
    named_queries().into_iter().find(|q| q.resource == resource).unwrap_or_else(|| panic!("no query {resource}"))
}

/// The Glue tables as DuckDB views over the history copied under `root` (the bucket's keys as
/// paths): `<kind>_<service>` over its NDJSON, `compacted_<kind>_<service>` over its Parquet; a
/// table with no object yet is an empty view of its columns.
pub fn views(root: &Path) -> Vec<String> {
    let mut views = Vec::new();
    for service in ServiceId::ALL {
        for kind in [HistoryKind::Snapshots, HistoryKind::Changes, HistoryKind::Runs] {
            let dataset = Dataset { service, kind };
            let table = format!("{}_{}", kind.as_str(), service.as_str().replace('-', "_"));
            let ndjson = root.join(format!("history/{}/{service}", kind.as_str()));
            let parquet = root.join(format!("history/parquet/{}/{service}", kind.as_str()));
            views.push(ndjson_view(&table, &dataset, &ndjson));
            views.push(parquet_view(&format!("compacted_{table}"), &dataset, &parquet));
        }
    }
    views
}

fn duckdb_type(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String | ColumnType::Timestamp => "VARCHAR",
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::BigInt => "BIGINT",
        ColumnType::StringArray => "VARCHAR[]",
    }
}

/// The typed columns of a view: timestamps read from their RFC 3339 text, in UTC.
fn select_list(dataset: &Dataset) -> String {
    let columns: Vec<String> = dataset
        .columns()
        .iter()
        .map(|c| match c.ty {
            ColumnType::Timestamp => format!("CAST(CAST({0} AS TIMESTAMPTZ) AS TIMESTAMP) AS {0}", c.name),
            _ => c.name.to_owned(),
        })
        .collect();
    columns.join(", ")
}

fn empty_view(table: &str, dataset: &Dataset) -> String {
    let columns: Vec<String> = dataset
        .columns()
        .iter()
        .map(|c| match c.ty {
            ColumnType::Timestamp => format!("CAST(NULL AS TIMESTAMP) AS {}", c.name),
            ty => format!("CAST(NULL AS {}) AS {}", duckdb_type(ty), c.name),
        })
        .collect();
    format!("CREATE VIEW {table} AS SELECT {}, CAST(NULL AS VARCHAR) AS dt WHERE false", columns.join(", "))
}

fn has_files(dir: &Path, extension: &str) -> bool {
    std::fs::read_dir(dir).into_iter().flatten().flatten().any(|day| {
        std::fs::read_dir(day.path())
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| f.path().to_string_lossy().ends_with(extension))
    })
}

fn ndjson_view(table: &str, dataset: &Dataset, dir: &Path) -> String {
    if !has_files(dir, ".jsonl.gz") {
        return empty_view(table, dataset);
    }
    let columns: Vec<String> =
        dataset.columns().iter().map(|c| format!("'{}': '{}'", c.name, duckdb_type(c.ty))).collect();
    format!(
        "CREATE VIEW {table} AS SELECT {}, dt FROM read_json('{}/*/*.jsonl.gz', format = 'newline_delimited', \
         columns = {{{}}}, hive_partitioning = true, hive_types = {{'dt': 'VARCHAR'}})",
        select_list(dataset),
        dir.display(),
        columns.join(", ")
    )
}

fn parquet_view(table: &str, dataset: &Dataset, dir: &Path) -> String {
    if !has_files(dir, ".parquet") {
        return empty_view(table, dataset);
    }
    let columns: Vec<&str> = dataset.columns().iter().map(|c| c.name).collect();
    format!(
        "CREATE VIEW {table} AS SELECT {}, dt FROM read_parquet('{}/*/*.parquet', hive_partitioning = true, \
         hive_types = {{'dt': 'VARCHAR'}})",
        columns.join(", "),
        dir.display()
    )
}

/// A query of the template in DuckDB's spelling: the Trino functions it uses, translated.
pub fn translate(sql: &str) -> String {
    let mut out = sql.to_owned();
    // date_add('day', -1, X) → (X + INTERVAL (-1) DAY), X being a cast of a parameter.
    while let Some(at) = out.find("date_add('day', ") {
        let rest = &out[at + "date_add('day', ".len()..];
        let (amount, after) = rest.split_once(", ").expect("date_add's amount");
        let close = matching_paren(after);
        let (operand, tail) = (&after[..close], &after[close + 1..]);
        out = format!("{}({operand} + INTERVAL ({amount}) DAY){tail}", &out[..at]);
    }
    for (trino, duckdb) in [
        ("date_format(", "strftime("),
        ("approx_percentile(", "quantile_cont("),
        ("to_unixtime(", "epoch("),
        ("sequence(", "generate_series("),
        ("from_unixtime(", "to_timestamp("),
        ("date(", "CAST_DATE("),
    ] {
        out = replace_call(&out, trino, duckdb);
    }
    // date(x): DuckDB casts.
    while let Some(at) = out.find("CAST_DATE(") {
        let after = &out[at + "CAST_DATE(".len()..];
        let close = matching_paren(after);
        out = format!("{}CAST({} AS DATE){}", &out[..at], &after[..close], &after[close + 1..]);
    }
    out
}

/// Replaces calls of `from` (a function name and its parenthesis, not part of a longer name).
fn replace_call(sql: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(from) {
        let before = rest[..at].chars().last();
        out.push_str(&rest[..at]);
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[at + from.len()..];
    }
    out.push_str(rest);
    out
}

/// The index of the parenthesis that closes an already opened one in `text`.
fn matching_paren(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return i,
            ')' => depth -= 1,
            _ => {}
        }
    }
    panic!("unbalanced parentheses: {text}")
}

/// DuckDB's rows for `query` with `params` (its `?`, in order) over the history under `root`:
/// JSON objects, timestamps as `YYYY-MM-DD HH:MM:SS`.
pub fn run(root: &Path, query: &NamedQuery, params: &[&str]) -> Vec<Json> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let script = "import sys, json, duckdb\n\
                  con = duckdb.connect()\n\
                  con.execute(\"SET TimeZone = 'UTC'\")\n\
                  for view in json.loads(sys.argv[1]): con.execute(view)\n\
                  cursor = con.execute(sys.argv[2], json.loads(sys.argv[3]))\n\
                  names = [d[0] for d in cursor.description]\n\
                  print(json.dumps([dict(zip(names, row)) for row in cursor.fetchall()], default=str))";
    let output = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(serde_json::to_string(&views(root)).unwrap())
        .arg(translate(&query.sql))
        .arg(serde_json::to_string(params).unwrap())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (make duckdb installs it)", python.display()));
    assert!(output.status.success(), "{}: {}", query.resource, String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice::<Json>(&output.stdout).unwrap().as_array().unwrap().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trino_calls_are_spelled_as_duckdb_spells_them() {
        let sql = "WHERE dt BETWEEN date_format(date_add('day', -1, CAST(? AS timestamp)), '%Y-%m-%d') \
                   AND date(ended_at) AND approx_percentile(to_unixtime(e) - to_unixtime(s), 0.5) AND updated(x) \
                   AND d IN (SELECT d FROM UNNEST(sequence(CAST(? AS date), CAST(? AS date), INTERVAL '1' DAY)) AS t(d))";
        assert_eq!(
            translate(sql),
            "WHERE dt BETWEEN strftime((CAST(? AS timestamp) + INTERVAL (-1) DAY), '%Y-%m-%d') \
             AND CAST(ended_at AS DATE) AND quantile_cont(epoch(e) - epoch(s), 0.5) AND updated(x) \
             AND d IN (SELECT d FROM UNNEST(generate_series(CAST(? AS date), CAST(? AS date), INTERVAL '1' DAY)) AS t(d))"
        );
    }
}
