//! The history's one reader, and the compacted history's columns: the one schema of the code
//! ([`session_archiver::model`]), typed. A history line is read into a [`Row`] of typed values,
//! refused when it is not of the schema (a missing, unknown or mistyped column); a Parquet object's
//! rows are read into the same [`Row`]s; rows are built into Arrow batches. The compaction and
//! `session-audit` read the history through it.

use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value as Json};
use session_archiver::error::quoted;
use session_archiver::history::{change_columns, HistoryKind};
use session_archiver::lambda::event::kind_of;
use session_archiver::model::{Column, ColumnType, Timestamp, RUN_COLUMNS};
use session_archiver::ServiceId;

/// The zone of every timestamp column: the history is UTC.
pub const UTC: &str = "UTC";

/// One dataset of one service: its snapshots, its changes or its runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dataset {
    pub service: ServiceId,
    pub kind: HistoryKind,
}

impl Dataset {
    /// Every column of its lines, in file order: the service's schema, then for changes
    /// `change` and `previous_status`; the runs' own columns, the same for every service.
    pub fn columns(&self) -> Vec<Column> {
        if self.kind == HistoryKind::Runs {
            return RUN_COLUMNS.to_vec();
        }
        let mut columns: Vec<Column> = self.service.schema().columns().copied().collect();
        if self.kind == HistoryKind::Changes {
            columns.extend(change_columns());
        }
        columns
    }

    /// The Arrow schema of its Parquet: the same columns, typed.
    pub fn arrow_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self.columns().iter().map(|c| Field::new(c.name, arrow_type(c.ty), true)).collect();
        Arc::new(Schema::new(fields))
    }
}

/// The Arrow (and so Parquet) type of a column.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String => DataType::Utf8,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::StringArray => DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
    }
}

/// One typed value of a line.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Text(String),
    /// Microseconds since the Unix epoch, UTC.
    Micros(i64),
    Bool(bool),
    Int(i64),
    Texts(Vec<String>),
}

/// A line's values, in column order.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Value>);

/// Reads one history line as a row of `columns`; the error says which column is wrong and how.
pub fn parse_line(columns: &[Column], line: &str) -> Result<Row, String> {
    let mut object: Map<String, Json> = match serde_json::from_str(line) {
        Ok(Json::Object(object)) => object,
        Ok(other) => return Err(format!("not a JSON object but {}", kind_of(&other))),
        Err(err) => return Err(format!("not JSON: {err}")),
    };
    let values = columns
        .iter()
        .map(|column| match object.remove(column.name) {
            None => Err(format!("no column `{}`", column.name)),
            Some(value) => typed(column, value),
        })
        .collect::<Result<Vec<Value>, String>>()?;
    if let Some(unknown) = object.keys().next() {
        return Err(format!("a column not of the schema: {}", quoted(unknown)));
    }
    Ok(Row(values))
}

fn typed(column: &Column, value: Json) -> Result<Value, String> {
    let wrong =
        |value: &Json| format!("column `{}`: expected {}, found {}", column.name, expected(column.ty), kind_of(value));
    Ok(match (column.ty, value) {
        (_, Json::Null) => Value::Null,
        (ColumnType::String, Json::String(text)) => Value::Text(text),
        (ColumnType::Timestamp, Json::String(text)) => Value::Micros(
            micros(&text)
                .ok_or_else(|| format!("column `{}`: {} is not an RFC 3339 timestamp", column.name, quoted(&text)))?,
        ),
        (ColumnType::Boolean, Json::Bool(flag)) => Value::Bool(flag),
        (ColumnType::BigInt, Json::Number(number)) if number.is_i64() => {
            Value::Int(number.as_i64().unwrap_or_default())
        }
        (ColumnType::StringArray, Json::Array(items)) => Value::Texts(
            items
                .into_iter()
                .map(|item| match item {
                    Json::String(text) => Ok(text),
                    other => Err(format!("column `{}`: expected strings, found {}", column.name, kind_of(&other))),
                })
                .collect::<Result<_, _>>()?,
        ),
        (_, value) => return Err(wrong(&value)),
    })
}

/// Microseconds since the epoch of an RFC 3339 instant.
pub fn micros(text: &str) -> Option<i64> {
    let at = Timestamp::parse(text).ok()?.to_datetime();
    at.secs().checked_mul(1_000_000)?.checked_add(i64::from(at.subsec_nanos() / 1_000))
}

fn expected(ty: ColumnType) -> &'static str {
    match ty {
        ColumnType::String => "a string",
        ColumnType::Timestamp => "a timestamp string",
        ColumnType::Boolean => "a boolean",
        ColumnType::BigInt => "an integer",
        ColumnType::StringArray => "an array of strings",
    }
}

/// The builder of one column.
enum ColumnBuilder {
    Text(StringBuilder),
    Micros(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Texts(ListBuilder<StringBuilder>),
}

impl ColumnBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::String => ColumnBuilder::Text(StringBuilder::new()),
            ColumnType::Timestamp => ColumnBuilder::Micros(TimestampMicrosecondBuilder::new().with_timezone(UTC)),
            ColumnType::Boolean => ColumnBuilder::Bool(BooleanBuilder::new()),
            ColumnType::BigInt => ColumnBuilder::Int(Int64Builder::new()),
            ColumnType::StringArray => ColumnBuilder::Texts(ListBuilder::new(StringBuilder::new())),
        }
    }

    /// Appends `value`; the row was typed against the same columns, so a mismatch is a bug.
    fn append(&mut self, value: &Value) {
        match (self, value) {
            (ColumnBuilder::Text(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Micros(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Bool(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Int(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Texts(b), Value::Null) => b.append_null(),
            (ColumnBuilder::Text(b), Value::Text(text)) => b.append_value(text),
            (ColumnBuilder::Micros(b), Value::Micros(at)) => b.append_value(*at),
            (ColumnBuilder::Bool(b), Value::Bool(flag)) => b.append_value(*flag),
            (ColumnBuilder::Int(b), Value::Int(number)) => b.append_value(*number),
            (ColumnBuilder::Texts(b), Value::Texts(items)) => {
                items.iter().for_each(|item| b.values().append_value(item));
                b.append(true);
            }
            (_, value) => unreachable!("a value typed against another column: {value:?}"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
            ColumnBuilder::Micros(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Texts(b) => Arc::new(b.finish()),
        }
    }
}

/// Rows gathered into an Arrow batch, column by column.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    pub fn new(dataset: &Dataset) -> Self {
        let columns = dataset.columns().iter().map(|c| ColumnBuilder::new(c.ty)).collect();
        BatchBuilder { schema: dataset.arrow_schema(), columns, rows: 0 }
    }

    pub fn push(&mut self, row: &Row) {
        self.columns.iter_mut().zip(&row.0).for_each(|(column, value)| column.append(value));
        self.rows += 1;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The rows pushed since the last batch, as one batch.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).expect("every column built to the schema")
    }
}

/// Every row of a Parquet object of `dataset`, in file order, as typed values.
pub fn read_parquet(dataset: &Dataset, body: Vec<u8>) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let every_group = |_: &GroupBounds<'_>| true;
    each_parquet_row(dataset, body, &[], &every_group, &mut |_, row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// A row group's statistics, as a reader deciding whether to read it sees them.
pub struct GroupBounds<'a> {
    group: &'a parquet::file::metadata::RowGroupMetaData,
}

impl GroupBounds<'_> {
    /// The least and greatest values of a text column in the group, when its statistics hold them.
    pub fn text_range(&self, column: &str) -> Option<(&str, &str)> {
        let chunk = self.group.columns().iter().find(|c| c.column_path().parts() == [column])?;
        let statistics = chunk.statistics()?;
        let min = std::str::from_utf8(statistics.min_bytes_opt()?).ok()?;
        Some((min, std::str::from_utf8(statistics.max_bytes_opt()?).ok()?))
    }
}

/// What a streamed read of a Parquet object did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParquetRead {
    pub row_groups: usize,
    /// Row groups not read: their statistics showed no row `keep` wants.
    pub skipped: usize,
    pub rows: u64,
}

/// What takes a read's rows, one at a time with the columns they hold; an error stops the read.
pub type RowSink<'a> = dyn FnMut(&[Column], Row) -> Result<(), String> + 'a;

/// The rows of a Parquet object of `dataset`, a batch at a time (memory: the object and one
/// batch, whatever its rows): only the `wanted` columns (every one when empty), given to `each`
/// with the columns they hold, and only of the row groups `keep` accepts by their statistics.
pub fn each_parquet_row(
    dataset: &Dataset,
    body: Vec<u8>,
    wanted: &[&str],
    keep: &dyn Fn(&GroupBounds<'_>) -> bool,
    each: &mut RowSink<'_>,
) -> Result<ParquetRead, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::arrow::ProjectionMask;

    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body)).map_err(|e| format!("not Parquet: {e}"))?;
    if builder.schema().fields() != dataset.arrow_schema().fields() {
        return Err(format!("the columns are not those of {} {}", dataset.service, dataset.kind.as_str()));
    }
    let groups = builder.metadata().row_groups();
    let kept: Vec<usize> = (0..groups.len()).filter(|&i| keep(&GroupBounds { group: &groups[i] })).collect();
    let mut read = ParquetRead { row_groups: groups.len(), skipped: groups.len() - kept.len(), rows: 0 };
    let columns: Vec<Column> =
        dataset.columns().into_iter().filter(|c| wanted.is_empty() || wanted.contains(&c.name)).collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(|c| c.name));
    let reader =
        builder.with_row_groups(kept).with_projection(mask).build().map_err(|e| format!("not Parquet: {e}"))?;
    for batch in reader {
        let batch = batch.map_err(|e| format!("a batch cannot be read: {e}"))?;
        for row in rows_of_columns(&columns, &batch) {
            read.rows += 1;
            each(&columns, row)?;
        }
    }
    Ok(read)
}

/// The rows of a batch of `dataset`, as typed values: what a reader of the Parquet gets back.
pub fn rows_of(dataset: &Dataset, batch: &RecordBatch) -> Vec<Row> {
    rows_of_columns(&dataset.columns(), batch)
}

/// The rows of a batch holding `columns`, in their order, as typed values.
fn rows_of_columns(columns: &[Column], batch: &RecordBatch) -> Vec<Row> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;

    let mut rows = vec![Row(Vec::with_capacity(columns.len())); batch.num_rows()];
    for (column, array) in columns.iter().zip(batch.columns()) {
        for (index, row) in rows.iter_mut().enumerate() {
            let value = if array.is_null(index) {
                Value::Null
            } else {
                match column.ty {
                    ColumnType::String => Value::Text(array.as_string::<i32>().value(index).to_owned()),
                    ColumnType::Timestamp => {
                        Value::Micros(array.as_primitive::<TimestampMicrosecondType>().value(index))
                    }
                    ColumnType::Boolean => Value::Bool(array.as_boolean().value(index)),
                    ColumnType::BigInt => Value::Int(array.as_primitive::<Int64Type>().value(index)),
                    ColumnType::StringArray => {
                        let items = array.as_list::<i32>().value(index);
                        Value::Texts(
                            items.as_string::<i32>().iter().map(|v| v.unwrap_or_default().to_owned()).collect(),
                        )
                    }
                }
            };
            row.0.push(value);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use arrow_array::Array;

    use super::*;

    fn ivs() -> Dataset {
        Dataset { service: ServiceId::IvsStreamSessions, kind: HistoryKind::Snapshots }
    }

    /// A line of `dataset` with every column null but those given.
    fn line(dataset: &Dataset, set: &[(&str, Json)]) -> String {
        let mut object = Map::new();
        for column in dataset.columns() {
            let value = set.iter().find(|(name, _)| *name == column.name).map_or(Json::Null, |(_, v)| v.clone());
            object.insert(column.name.to_owned(), value);
        }
        Json::Object(object).to_string()
    }

    #[test]
    fn every_column_of_the_schema_is_typed_and_changes_have_two_more() {
        let snapshots = ivs();
        let changes = Dataset { kind: HistoryKind::Changes, ..snapshots };
        let schema = snapshots.arrow_schema();
        assert_eq!(schema.field_with_name("snapshot_at").unwrap().data_type(), &arrow_type(ColumnType::Timestamp));
        assert_eq!(schema.field_with_name("session_id").unwrap().data_type(), &DataType::Utf8);
        assert_eq!(schema.fields().last().unwrap().name(), "record_hash");
        let names: Vec<String> = changes.arrow_schema().fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(names.len(), schema.fields().len() + 2);
        assert_eq!(&names[names.len() - 2..], ["change", "previous_status"]);
    }

    #[test]
    fn a_line_is_read_into_typed_values_and_built_into_a_batch() {
        // GIVEN an IVS line with a timestamp with a fraction, a boolean and a string
        let dataset = ivs();
        let at = "2026-11-22T10:00:00.250Z";
        let text = line(&dataset, &[("snapshot_at", at.into()), ("session_id", "st-1".into())]);
        // WHEN it is read and built
        let row = parse_line(&dataset.columns(), &text).unwrap();
        let mut builder = BatchBuilder::new(&dataset);
        builder.push(&row);
        let batch = builder.finish();
        // THEN the timestamp is UTC microseconds and the string is the string
        let snapshot_at = batch.column_by_name("snapshot_at").unwrap().as_primitive::<TimestampMicrosecondType>();
        assert_eq!(snapshot_at.value(0), micros("2026-11-22T10:00:00Z").unwrap() + 250_000);
        assert_eq!(batch.column_by_name("session_id").unwrap().as_string::<i32>().value(0), "st-1");
        assert!(batch.column_by_name("ended_at").unwrap().is_null(0));
        assert_eq!(batch.num_rows(), 1);
    }

    #[test]
    fn a_parquet_read_skips_the_row_groups_its_statistics_rule_out_and_reads_only_the_columns_wanted() {
        use parquet::arrow::ArrowWriter;
        use parquet::file::properties::{EnabledStatistics, WriterProperties};
        // GIVEN a compacted day of two accounts, sorted by account, two rows a row group
        let dataset = ivs();
        let columns = dataset.columns();
        let mut builder = BatchBuilder::new(&dataset);
        for (account, session) in [("111111111111", "a"), ("111111111111", "b"), ("222222222222", "c")] {
            let text = line(
                &dataset,
                &[
                    ("account_id", Json::from(account)),
                    ("session_id", Json::from(session)),
                    ("region", "eu-west-1".into()),
                ],
            );
            builder.push(&parse_line(&columns, &text).unwrap());
        }
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .set_statistics_enabled(EnabledStatistics::Page);
        let mut writer = ArrowWriter::try_new(Vec::new(), dataset.arrow_schema(), Some(properties.build())).unwrap();
        writer.write(&builder.finish()).unwrap();
        let body = writer.into_inner().unwrap();
        // WHEN the second account's rows are read, two of their columns
        let keep = |group: &GroupBounds<'_>| {
            group.text_range("account_id").is_some_and(|(min, max)| (min..=max).contains(&"222222222222"))
        };
        let mut rows = Vec::new();
        let read = each_parquet_row(&dataset, body, &["session_id", "account_id"], &keep, &mut |columns, row| {
            rows.push((columns.iter().map(|c| c.name).collect::<Vec<_>>(), row));
            Ok(())
        })
        .unwrap();
        // THEN the first row group is not read, and the rows hold the two columns in file order
        assert_eq!(read, ParquetRead { row_groups: 2, skipped: 1, rows: 1 });
        assert_eq!(rows[0].0, ["account_id", "session_id"]);
        assert_eq!(rows[0].1, Row(vec![Value::Text("222222222222".into()), Value::Text("c".into())]));
    }

    #[test]
    fn a_line_not_of_the_schema_is_refused_naming_the_column() {
        let dataset = ivs();
        let columns = dataset.columns();
        let cases = [
            (
                line(&dataset, &[("snapshot_at", "yesterday".into())]),
                "column `snapshot_at`: `yesterday` is not an RFC 3339",
            ),
            (line(&dataset, &[("session_id", 42.into())]), "column `session_id`: expected a string, found a number"),
            (line(&dataset, &[]).replacen("\"session_id\":null,", "", 1), "no column `session_id`"),
            (line(&dataset, &[]).replacen('{', "{\"extra\":1,", 1), "a column not of the schema: `extra`"),
            ("[1]".to_owned(), "not a JSON object but an array"),
            ("{\"snapshot_at\":".to_owned(), "not JSON"),
        ];
        for (text, expected) in cases {
            let err = parse_line(&columns, &text).unwrap_err();
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
    }

    #[test]
    fn lists_and_integers_are_typed_too() {
        // GIVEN the Chime SDK Voice changes, whose phone numbers are a list
        let dataset = Dataset { service: ServiceId::ChimeProxySessions, kind: HistoryKind::Changes };
        let columns = dataset.columns();
        let list = columns.iter().find(|c| c.ty == ColumnType::StringArray).expect("a list column").name;
        let text = line(&dataset, &[(list, serde_json::json!(["a", "b"]))]);
        let mut builder = BatchBuilder::new(&dataset);
        builder.push(&parse_line(&columns, &text).unwrap());
        let batch = builder.finish();
        let values = batch.column_by_name(list).unwrap().as_list::<i32>().value(0);
        assert_eq!(values.as_string::<i32>().iter().flatten().collect::<Vec<_>>(), ["a", "b"]);
        let wrong = line(&dataset, &[(list, serde_json::json!([1]))]);
        assert!(parse_line(&columns, &wrong).unwrap_err().contains("expected strings, found a number"));
    }
}
