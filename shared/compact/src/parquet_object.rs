//! One Parquet object written as a stream: batches are encoded by arrow-rs' writer (ZSTD, one row
//! group in memory at a time) and its output leaves as multipart upload parts as they fill, so
//! memory is a row group and a part whatever the object's size.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use session_archiver::history::{Bucket, ObjectUpload};
use session_archiver::{Error, Result};

/// How the Parquet is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The encoded size at which a row group is closed (and memory given back).
    pub row_group_bytes: usize,
    /// The size of an upload part.
    pub upload_part_size: usize,
}

/// The writer's name in the file's footer: no version or time in it, so the same rows give the
/// same bytes.
pub const CREATED_BY: &str = "session-archiver history-compactor";

/// A Parquet object being written.
pub struct ParquetObject<'a, O: Bucket> {
    writer: ArrowWriter<Vec<u8>>,
    upload: ObjectUpload<'a, O>,
    rows: u64,
}

/// What a finished object holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenParquet {
    pub key: String,
    pub rows: u64,
    pub bytes: u64,
    pub row_groups: usize,
}

impl<'a, O: Bucket> ParquetObject<'a, O> {
    pub fn new(bucket: &'a O, key: String, schema: SchemaRef, layout: Layout) -> Result<Self> {
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("a ZSTD level")))
            .set_max_row_group_bytes(Some(layout.row_group_bytes))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(CREATED_BY.into())
            .build();
        let writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties)).map_err(|e| parquet_error(&key, &e))?;
        Ok(ParquetObject { writer, upload: ObjectUpload::new(bucket, key, layout.upload_part_size), rows: 0 })
    }

    pub fn key(&self) -> &str {
        self.upload.key()
    }

    /// Encodes `batch`; uploads a part once the encoded bytes fill one.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).map_err(|e| parquet_error(self.upload.key(), &e))?;
        self.rows += batch.num_rows() as u64;
        if self.writer.inner().len() >= self.upload.upload_part_size() {
            // The writer counts what it wrote itself: taking the bytes it handed over is safe.
            let part = std::mem::take(self.writer.inner_mut());
            self.upload.upload_part(part).await?;
        }
        Ok(())
    }

    /// Writes the footer and the object (its last part and the completion, or one PutObject).
    /// On failure the upload is aborted.
    pub async fn finish(mut self) -> Result<WrittenParquet> {
        let metadata = match self.writer.finish() {
            Ok(metadata) => metadata,
            Err(err) => {
                self.upload.abort().await;
                return Err(parquet_error(self.upload.key(), &err));
            }
        };
        let rest = std::mem::take(self.writer.inner_mut());
        let (bytes, _) = self.upload.finish(rest).await?;
        Ok(WrittenParquet {
            key: self.upload.key().to_owned(),
            rows: self.rows,
            bytes,
            row_groups: metadata.num_row_groups(),
        })
    }

    /// Gives the object up, aborting its upload.
    pub async fn abort(mut self) {
        self.upload.abort().await;
    }
}

fn parquet_error(key: &str, err: &parquet::errors::ParquetError) -> Error {
    Error::Mapping(format!("the Parquet of {key} cannot be written: {err}"))
}

#[cfg(test)]
mod tests {
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use session_archiver::history::memory::MemoryBucket;

    use super::*;

    fn batch(from: i64, rows: i64) -> RecordBatch {
        let schema = std::sync::Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, true),
        ]));
        let numbers = Int64Array::from_iter_values(from..from + rows);
        let texts =
            StringArray::from_iter_values((from..from + rows).map(|n| format!("{:x}", n.wrapping_mul(0x9e37_79b9))));
        RecordBatch::try_new(schema, vec![std::sync::Arc::new(numbers), std::sync::Arc::new(texts)]).unwrap()
    }

    #[tokio::test]
    async fn a_large_object_goes_up_in_parts_and_reads_back_whole() {
        // GIVEN row groups of about 1 MiB and parts of S3's smallest size
        let bucket = MemoryBucket::default();
        let layout = Layout { row_group_bytes: 1 << 20, upload_part_size: 0 };
        let mut object = ParquetObject::new(&bucket, "p/x.parquet".into(), batch(0, 1).schema(), layout).unwrap();
        // WHEN 600,000 rows are written in batches
        for from in (0..600_000).step_by(8192) {
            object.write(&batch(from, 8192.min(600_000 - from))).await.unwrap();
        }
        let written = object.finish().await.unwrap();
        // THEN the object is several row groups, and reads back as every row in order
        assert!(written.row_groups > 1, "{written:?}");
        assert_eq!(written.rows, 600_000);
        let body = bytes::Bytes::from(bucket.get_bytes("p/x.parquet"));
        assert_eq!(written.bytes, body.len() as u64);
        let reader = ParquetRecordBatchReaderBuilder::try_new(body).unwrap().build().unwrap();
        let mut next = 0i64;
        for read in reader {
            let read = read.unwrap();
            let numbers = read.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            for n in numbers.values() {
                assert_eq!(*n, next);
                next += 1;
            }
        }
        assert_eq!(next, 600_000);
        assert_eq!(bucket.open_uploads(), 0);
    }

    #[tokio::test]
    async fn the_same_rows_give_the_same_bytes() {
        let layout = Layout { row_group_bytes: 1 << 20, upload_part_size: 0 };
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let bucket = MemoryBucket::default();
            let mut object = ParquetObject::new(&bucket, "k.parquet".into(), batch(0, 1).schema(), layout).unwrap();
            object.write(&batch(0, 1000)).await.unwrap();
            object.finish().await.unwrap();
            bodies.push(bucket.get_bytes("k.parquet"));
        }
        assert_eq!(bodies[0], bodies[1]);
    }
}
