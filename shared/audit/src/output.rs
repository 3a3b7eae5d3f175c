//! Rows written as an aligned table, CSV or JSON (one array).

use serde::Serialize;

use crate::record::format_time;

/// How rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Rows as text: `columns` names the fields; times (`*_at`, `first_seen`, `last_seen`, `bucket`,
/// `at`) are written RFC 3339.
pub fn render<T: Serialize>(rows: &[T], columns: &[&str], format: Format) -> String {
    let values: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .map(|row| match serde_json::to_value(row).expect("rows serialise") {
            serde_json::Value::Object(mut map) => {
                for (name, value) in map.iter_mut() {
                    let is_time =
                        name.ends_with("_at") || matches!(name.as_str(), "first_seen" | "last_seen" | "bucket" | "at");
                    if let (true, Some(epoch)) = (is_time, value.as_i64()) {
                        *value = format_time(epoch).into();
                    }
                }
                map
            }
            other => panic!("a row is an object, not {other}"),
        })
        .collect();
    match format {
        Format::Json => serde_json::to_string_pretty(&values).expect("JSON") + "\n",
        Format::Csv => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(columns).expect("in memory");
            for row in &values {
                writer.write_record(columns.iter().map(|c| cell(row.get(*c)))).expect("in memory");
            }
            String::from_utf8(writer.into_inner().expect("in memory")).expect("UTF-8")
        }
        Format::Table => {
            let cells: Vec<Vec<String>> =
                values.iter().map(|row| columns.iter().map(|c| cell(row.get(*c))).collect()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).max(c.len()))
                .collect();
            let line = |items: Vec<&str>| {
                items
                    .iter()
                    .zip(&widths)
                    .map(|(s, w)| format!("{s:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let mut text = line(columns.to_vec()) + "\n";
            for row in &cells {
                text += &(line(row.iter().map(String::as_str).collect()) + "\n");
            }
            text
        }
    }
}

fn cell(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: &'static str,
        started_at: i64,
        n: u64,
    }

    #[test]
    fn rows_render_as_table_csv_and_json_with_rfc3339_times() {
        let rows = [Row { id: "a,b", started_at: 1_795_000_000, n: 3 }];
        let table = render(&rows, &["id", "started_at", "n"], Format::Table);
        assert_eq!(table.lines().count(), 2);
        assert!(table.contains("2026-11-18T") && table.contains("a,b"), "{table}");
        assert_eq!(render(&rows, &["id", "n"], Format::Csv), "id,n\n\"a,b\",3\n");
        let json: serde_json::Value = serde_json::from_str(&render(&rows, &["id"], Format::Json)).unwrap();
        assert_eq!(json[0]["n"], 3);
    }
}
