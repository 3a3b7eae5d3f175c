//! Prints every service's history columns, and its runs dataset's, as JSON (`[{service, kind, columns: [{name, type, doc}]}]`):
//! the one list the Glue tables in `template.yaml` are written from and checked against.

use session_archiver::history::change_columns;
use session_archiver::model::RUN_COLUMNS;
use session_archiver::ServiceId;

fn main() {
    let mut tables = Vec::new();
    for service in ServiceId::ALL {
        for kind in ["snapshots", "changes"] {
            let mut columns: Vec<_> = service.schema().columns().copied().collect();
            if kind == "changes" {
                columns.extend(change_columns());
            }
            let columns: Vec<_> = columns
                .iter()
                .map(|c| serde_json::json!({"name": c.name, "type": c.ty.glue_type(), "doc": c.doc}))
                .collect();
            tables.push(serde_json::json!({"service": service.as_str(), "kind": kind, "columns": columns}));
        }
        let runs: Vec<_> = RUN_COLUMNS
            .iter()
            .map(|c| serde_json::json!({"name": c.name, "type": c.ty.glue_type(), "doc": c.doc}))
            .collect();
        tables.push(serde_json::json!({"service": service.as_str(), "kind": "runs", "columns": runs}));
    }
    println!("{}", serde_json::to_string_pretty(&tables).expect("JSON"));
}
