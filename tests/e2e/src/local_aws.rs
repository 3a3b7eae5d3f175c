//! The archiver's table and bucket on moto, and readers of what they hold.

use std::collections::HashMap;
use std::io::Read;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use clap::Parser;
use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value as Json};
use session_archiver::aws::SdkSettings;
use session_archiver::history::S3Bucket;
use session_archiver::table::item::{self, Item};
use session_archiver::table::{DynamoTable, Manifest};

/// A table and a bucket on a local endpoint (moto, or a proxy in front of it).
pub struct LocalAws {
    pub settings: SdkSettings,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub table: String,
    pub bucket: String,
}

/// One history object as read back.
pub struct HistoryObjectRead {
    pub lines: Vec<Map<String, Json>>,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
}

impl LocalAws {
    /// Clients for `endpoint` (path-style S3).
    pub async fn connect(endpoint: &str, table: &str, bucket: &str) -> Self {
        let settings = SdkSettings::local(endpoint);
        let sdk = settings.load().await;
        LocalAws {
            dynamodb: settings.dynamodb_client(&sdk),
            s3: settings.s3_client(&sdk),
            settings,
            table: table.into(),
            bucket: bucket.into(),
        }
    }

    /// Creates the table (the template's key schema and TTL) and the bucket.
    pub async fn create(endpoint: &str, table: &str, bucket: &str) -> Self {
        let aws = Self::connect(endpoint, table, bucket).await;
        let key = |name: &str, ty| KeySchemaElement::builder().attribute_name(name).key_type(ty).build().unwrap();
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
        };
        aws.dynamodb
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attr("pk"))
            .attribute_definitions(attr("sk"))
            .send()
            .await
            .expect("create table");
        aws.s3.create_bucket().bucket(bucket).send().await.expect("create bucket");
        aws
    }

    pub fn table(&self) -> DynamoTable {
        DynamoTable::new(self.dynamodb.clone(), &self.table)
    }

    pub fn history_bucket(&self) -> S3Bucket {
        S3Bucket::new(self.s3.clone(), &self.bucket)
    }

    /// Every item of the table.
    pub async fn scan(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scan");
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }

    /// The session items, by session id.
    pub async fn sessions(&self) -> HashMap<String, Item> {
        self.scan()
            .await
            .into_iter()
            .filter(|i| i.get("item_type").and_then(|t| t.as_s().ok()).is_some_and(|t| t == "session"))
            .map(|i| (i["sk"].as_s().unwrap().clone(), i))
            .collect()
    }

    /// The run manifests, oldest first.
    pub async fn manifests(&self) -> Vec<Manifest> {
        let mut runs: Vec<(String, Manifest)> = self
            .scan()
            .await
            .into_iter()
            .filter(|i| i.get("item_type").and_then(|t| t.as_s().ok()).is_some_and(|t| t == "run"))
            .map(|i| (i["sk"].as_s().unwrap().clone(), item::manifest(&i).expect("readable manifest")))
            .collect();
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        runs.into_iter().map(|(_, m)| m).collect()
    }

    /// The keys under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .expect("list objects");
            keys.extend(page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        keys.sort();
        keys
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub async fn open_uploads(&self) -> usize {
        let out = self.s3.list_multipart_uploads().bucket(&self.bucket).send().await.expect("list uploads");
        out.uploads.map_or(0, |u| u.len())
    }

    /// Puts raw bytes under `key` (to plant a damaged object).
    pub async fn put_object(&self, key: &str, bytes: Vec<u8>) {
        self.s3.put_object().bucket(&self.bucket).key(key).body(bytes.into()).send().await.expect("put object");
    }

    /// An object's tags, `name=value`.
    pub async fn tags(&self, key: &str) -> Vec<String> {
        let out = self.s3.get_object_tagging().bucket(&self.bucket).key(key).send().await.expect("get tagging");
        out.tag_set.into_iter().map(|tag| format!("{}={}", tag.key, tag.value)).collect()
    }

    pub async fn delete_object(&self, key: &str) {
        self.s3.delete_object().bucket(&self.bucket).key(key).send().await.expect("delete object");
    }

    /// An object's bytes, as stored (gzip'd).
    pub async fn bytes(&self, key: &str) -> Vec<u8> {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.expect("get object");
        object.body.collect().await.expect("object body").into_bytes().to_vec()
    }

    /// An object's lines, each parsed as a JSON object, and its headers.
    pub async fn read(&self, key: &str) -> HistoryObjectRead {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.expect("get object");
        let content_type = object.content_type.clone();
        let content_encoding = object.content_encoding.clone();
        let bytes = object.body.collect().await.expect("object body").into_bytes();
        let mut text = String::new();
        MultiGzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("a gzip object");
        let lines = text
            .lines()
            .map(|l| match serde_json::from_str::<Json>(l) {
                Ok(Json::Object(map)) => map,
                other => panic!("{key}: a line that is not a JSON object: {other:?}: {l}"),
            })
            .collect();
        HistoryObjectRead { lines, content_type, content_encoding }
    }

    /// `session-audit <args>` over this bucket, run in-process with the stand-in's credentials:
    /// what it would print, or its error. A bad argument is the caller's mistake, and panics.
    pub async fn audit(&self, args: &[&str]) -> Result<String, session_audit::AuditError> {
        let url = self.settings.endpoint_url.as_deref().expect("a local endpoint");
        let region = self.settings.region.as_deref().unwrap_or(crate::stage::REGION);
        let mut argv =
            vec!["session-audit", "--bucket", &self.bucket, "--endpoint-url", url, "--bucket-region", region];
        argv.extend_from_slice(args);
        let mut cli = session_audit::cli::Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        cli.credentials = self.settings.load().await.credentials_provider();
        cli.run(session_archiver::model::Timestamp::now().epoch_seconds()).await
    }
}
