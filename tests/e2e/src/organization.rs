//! A local AWS Organization to archive: moto's Organizations with member accounts (some with the
//! member role, deployed from `member-role.yaml` through moto's CloudFormation as the StackSet
//! would), the emulator serving a world per account and region, a scope queue and dead-letter
//! queue per service, the planner and the functions as real binaries with the credentials of a
//! role under `/session-archiver/` (as Lambda gives a function its execution role's). Used by the
//! organization tests and `make demo`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use serde_json::{json, Value as Json};
use session_archiver::ServiceId;
use session_emulator::{Emulator, EmulatorConfig, ScopeWorld};

use crate::lambda::{LocalFunction, Outcome};
use crate::poller::{PollReport, QueueSource};
use crate::stage::{LocalStage, ACCOUNT_ID, REGION};
use crate::MotoServer;

/// The ExternalId the member roles ask for and the functions give.
pub const EXTERNAL_ID: &str = "local-external-id";

/// The regions of every account: the archive's own and one more, where all five services are
/// offered but GameLift Streams, which is offered in the second only.
pub const REGIONS: [&str; 2] = [REGION, "us-west-2"];

/// How long a received message stays invisible (longer than a run), and how soon a handed-back
/// one comes again.
pub const VISIBILITY: Duration = Duration::from_secs(600);
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The deliveries after which a message goes to the dead-letter queue (the template's default).
pub const MAX_RECEIVES: u32 = 3;

/// A member account to create: its name, whether the member role is deployed in it, a region
/// where a service control policy denies the session APIs, and whether its APIs list no session.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub name: &'a str,
    pub member_role: bool,
    pub denied_in: Option<&'a str>,
    pub empty: bool,
}

/// A service's scope queue and dead-letter queue.
#[derive(Clone, Debug)]
pub struct ScopeQueues {
    pub queue: String,
    pub dead_letters: String,
}

pub struct LocalOrganization {
    pub stage: LocalStage,
    /// The management (and archive) account's SDK settings.
    pub sdk: aws_config::SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub organization_id: String,
    /// The member accounts, by name.
    pub accounts: BTreeMap<String, String>,
    pub queues: BTreeMap<ServiceId, ScopeQueues>,
    /// The regions of every account.
    pub regions: Vec<String>,
    /// The cargo profile of the function and planner binaries (`debug`, or `release` to bench).
    pub profile: &'static str,
    /// The planner's `SCOPE_BATCH_SIZE`: scopes in one message.
    pub batch_size: usize,
    function_credentials: Credentials,
}

impl LocalOrganization {
    /// The archive account (the management account) and `members`, each served by the emulator in
    /// every region of [`REGIONS`] with `world`'s shapes; the debug binaries.
    pub async fn start(world: EmulatorConfig, members: &[Member<'_>]) -> std::io::Result<Self> {
        Self::start_in(world, members, &REGIONS, "debug").await
    }

    /// As [`LocalOrganization::start`], in `regions`, with the binaries of cargo `profile`.
    pub async fn start_in(
        world: EmulatorConfig,
        members: &[Member<'_>],
        regions: &[&str],
        profile: &'static str,
    ) -> std::io::Result<Self> {
        let moto = MotoServer::start()?;
        let aws = crate::LocalAws::create(&moto.url(), crate::stage::TABLE, crate::stage::BUCKET).await;
        crate::stage::create_key_secret(&aws).await?;
        let sdk = aws.settings.load().await;
        let organizations = aws_sdk_organizations::Client::new(&sdk);
        organizations.create_organization().feature_set("ALL".into()).send().await.map_err(other)?;
        let described = organizations.describe_organization().send().await.map_err(other)?;
        let organization_id = described.organization().and_then(|o| o.id()).unwrap_or_default().to_owned();
        let mut accounts = BTreeMap::new();
        for member in members {
            accounts.insert(member.name.to_owned(), create_member(&sdk, &organization_id, *member).await);
        }
        let denied: Vec<(String, &str)> =
            members.iter().filter_map(|m| Some((accounts[m.name].clone(), m.denied_in?))).collect();
        let empty: Vec<&String> = members.iter().filter(|m| m.empty).map(|m| &accounts[m.name]).collect();
        let other_scopes = std::iter::once(ACCOUNT_ID.to_owned())
            .chain(accounts.values().cloned())
            .flat_map(|account| {
                regions
                    .iter()
                    .map(|region| ScopeWorld {
                        denied: denied.contains(&(account.clone(), *region)),
                        empty: empty.contains(&&account),
                        account_id: account.clone(),
                        region: (*region).into(),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|scope| !(scope.account_id == world.account_id && scope.region == world.region))
            .collect();
        let emulator = Emulator::start(EmulatorConfig { other_scopes, ..world }).await?;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let mut queues = BTreeMap::new();
        for service in ServiceId::ALL {
            queues.insert(service, queue_with_dead_letters(&sqs, service.as_str()).await);
        }
        let function_credentials = function_credentials(&sdk, "/session-archiver/").await;
        let stage = LocalStage { emulator, aws, moto };
        let regions = regions.iter().map(|r| (*r).to_owned()).collect();
        Ok(LocalOrganization {
            stage,
            sdk,
            sqs,
            organization_id,
            accounts,
            queues,
            regions,
            profile,
            batch_size: session_archiver::plan::config::DEFAULT_BATCH_SIZE,
            function_credentials,
        })
    }

    /// Adds a member account after the start (the emulator serves no world for it).
    pub async fn add_member(&mut self, member: Member<'_>) -> String {
        let id = create_member(&self.sdk, &self.organization_id, member).await;
        self.accounts.insert(member.name.to_owned(), id.clone());
        id
    }

    /// A function's environment: the stage's, with the credentials of its role under
    /// `/session-archiver/`, the ExternalId, its own queue and its dead-letter queue.
    pub fn function_env(&self, service: ServiceId) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            self.stage.function_env().into_iter().filter(|(name, _)| !name.starts_with("AWS_")).collect();
        let c = &self.function_credentials;
        env.extend([
            ("AWS_ACCESS_KEY_ID".to_owned(), c.access_key_id().to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), c.secret_access_key().to_owned()),
            ("AWS_SESSION_TOKEN".to_owned(), c.session_token().unwrap_or_default().to_owned()),
            ("MEMBER_ROLE_EXTERNAL_ID".to_owned(), EXTERNAL_ID.to_owned()),
            ("SCOPE_MAX_RECEIVES".to_owned(), MAX_RECEIVES.to_string()),
            ("SCOPE_DEAD_LETTER_QUEUE_URL".to_owned(), self.queues[&service].dead_letters.clone()),
            ("SCOPE_QUEUE_URL".to_owned(), self.queues[&service].queue.clone()),
            // A failed scope's retry comes a second later, not a minute: the tests need not wait.
            ("SCOPE_RETRY_SECONDS".to_owned(), "1".to_owned()),
        ]);
        env
    }

    /// The planner's environment: the whole organization, in [`REGIONS`], to the five queues, in
    /// batches of `batch_size`.
    pub fn planner_env(&self) -> Vec<(String, String)> {
        let queues: Vec<String> = self.queues.iter().map(|(service, q)| format!("{service}={}", q.queue)).collect();
        [
            ("ACCOUNTS", "organization".to_owned()),
            ("REGIONS", self.regions.join(",")),
            ("SCOPE_QUEUES", queues.join(",")),
            ("SCOPE_BATCH_SIZE", self.batch_size.to_string()),
            ("STORAGE_ENDPOINT_URL", self.stage.moto.url()),
            ("AWS_ACCESS_KEY_ID", "AKIDLOCALSTANDIN".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "local-stand-in-secret".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts the planner binary with `env`.
    pub async fn planner(&self, env: &[(String, String)]) -> LocalFunction {
        let binary = LocalFunction::binary_of(self.profile, "scope-planner");
        let timeout = Duration::from_secs(60);
        LocalFunction::start(&binary, "scope-planner", ACCOUNT_ID, REGION, env, timeout)
            .await
            .expect("the planner starts")
    }

    /// Runs the planner binary once for `service` with the schedule's `id` and `time`: its summary.
    pub async fn plan(&self, service: ServiceId, id: &str, time: &str) -> Json {
        let mut planner = self.planner(&self.planner_env()).await;
        match planner.invoke(plan_event(service, id, time)).await.expect("the planner answers") {
            Outcome::Response(summary) => summary,
            Outcome::Error { error_type, error_message } => panic!("plan failed: {error_type}: {error_message}"),
        }
    }

    /// Starts `service`'s function binary as the organization's archive deploys it.
    pub async fn function(&self, service: ServiceId) -> std::io::Result<LocalFunction> {
        self.function_with_storage(service, &self.stage.moto.url()).await
    }

    /// Starts `service`'s function binary with its storage calls (DynamoDB, S3, STS, SQS) sent to
    /// `storage`: moto, or a proxy in front of it that counts them.
    pub async fn function_with_storage(&self, service: ServiceId, storage: &str) -> std::io::Result<LocalFunction> {
        let binary = LocalFunction::binary_of(self.profile, service.as_str());
        let mut env = self.function_env(service);
        env.retain(|(name, _)| name != "STORAGE_ENDPOINT_URL");
        env.push(("STORAGE_ENDPOINT_URL".to_owned(), storage.to_owned()));
        LocalFunction::start(&binary, service.as_str(), ACCOUNT_ID, REGION, &env, Duration::from_secs(120)).await
    }

    /// Delivers `service`'s queue to `function` until it is empty (the event source mapping).
    pub async fn drain(&self, service: ServiceId, function: &mut LocalFunction) -> PollReport {
        self.queue_source(service).drain_into(function).await
    }

    /// `service`'s queue as the event source mapping polls it.
    pub fn queue_source(&self, service: ServiceId) -> QueueSource<'_> {
        QueueSource {
            sqs: &self.sqs,
            url: &self.queues[&service].queue,
            region: REGION,
            visibility: VISIBILITY,
            retry_after: RETRY_AFTER,
        }
    }

    /// Every scope's runs as their manifests say: (service, account, region, status, sessions).
    pub async fn scope_runs(&self) -> Vec<(String, String, String, String, u64)> {
        let mut runs: Vec<_> = self
            .stage
            .aws
            .scan()
            .await
            .iter()
            .filter_map(|item| {
                let pk = item.get("pk")?.as_s().ok()?.strip_prefix("RUN#")?.to_owned();
                let mut parts = pk.splitn(3, '#').map(str::to_owned);
                let (service, account, region) = (parts.next()?, parts.next()?, parts.next()?);
                let status = item.get("status")?.as_s().ok()?.clone();
                let sessions =
                    item.get("sessions").and_then(|n| n.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
                Some((service, account, region, status, sessions))
            })
            .collect();
        runs.sort();
        runs
    }

    /// Every message of `service`'s dead-letter queue, taken off it: its body and its attributes.
    pub async fn dead_letters(&self, service: ServiceId) -> Vec<(Json, BTreeMap<String, String>)> {
        drain_queue(&self.sqs, &self.queues[&service].dead_letters).await
    }
}

/// Creates a member account under the root, with the member role if it is to have it: its id.
async fn create_member(sdk: &aws_config::SdkConfig, organization_id: &str, member: Member<'_>) -> String {
    let organizations = aws_sdk_organizations::Client::new(sdk);
    let made = organizations
        .create_account()
        .account_name(member.name)
        .email(format!("{}@example.com", member.name))
        .send()
        .await
        .unwrap();
    let id = made.create_account_status().and_then(|s| s.account_id()).unwrap_or_default().to_owned();
    if member.member_role {
        deploy_member_role(sdk, &id, organization_id, EXTERNAL_ID).await;
    }
    id
}

/// The event a service's schedule sends the planner.
/// The account and region of a dead letter: a scope message of one scope.
pub fn letter_scope(body: &Json) -> (&str, &str) {
    let scope = &body["scopes"][0];
    (scope["account_id"].as_str().unwrap_or_default(), scope["region"].as_str().unwrap_or_default())
}

pub fn plan_event(service: ServiceId, id: &str, time: &str) -> Json {
    json!({"plan": {"service": service.as_str(), "id": id, "time": time}})
}

fn other(err: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(err.to_string())
}

/// A queue `<name>-scopes` (a service's scope queue), its messages going to its dead-letter queue
/// after [`MAX_RECEIVES`].
pub async fn queue_with_dead_letters(sqs: &aws_sdk_sqs::Client, name: &str) -> ScopeQueues {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dead_letters = sqs.create_queue().queue_name(format!("{name}-dead-letters")).send().await.unwrap();
    let dead_letters = dead_letters.queue_url().unwrap().to_owned();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&dead_letters)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    let redrive = json!({"deadLetterTargetArn": arn, "maxReceiveCount": MAX_RECEIVES}).to_string();
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}-scopes"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .unwrap();
    ScopeQueues { queue: queue.queue_url().unwrap().to_owned(), dead_letters }
}

/// Every message of a queue, taken off it: its body and its string attributes (a dead letter's
/// `ErrorType`, `ErrorMessage` and `ReceiveCount`).
pub async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<(Json, BTreeMap<String, String>)> {
    let mut letters = Vec::new();
    loop {
        let page = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        if page.messages().is_empty() {
            return letters;
        }
        for message in page.messages() {
            let attributes = message
                .message_attributes()
                .into_iter()
                .flatten()
                .map(|(name, value)| (name.clone(), value.string_value().unwrap_or_default().to_owned()))
                .collect();
            letters.push((serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Json::Null), attributes));
            let handle = message.receipt_handle().unwrap_or_default();
            sqs.delete_message().queue_url(queue_url).receipt_handle(handle).send().await.unwrap();
        }
    }
}

/// An SDK configuration signed with `credentials`.
pub fn signed_with(sdk: &aws_config::SdkConfig, credentials: Credentials) -> aws_config::SdkConfig {
    sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build()
}

/// Credentials of `role_arn`, assumed with `sdk`'s.
pub async fn assumed(sdk: &aws_config::SdkConfig, role_arn: &str) -> Credentials {
    let sts = aws_sdk_sts::Client::new(sdk);
    let out = sts.assume_role().role_arn(role_arn).role_session_name("harness").send().await.unwrap();
    let c = out.credentials().unwrap();
    Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().to_owned()), None, "harness")
}

/// Deploys `member-role.yaml` in `account` (through its OrganizationAccountAccessRole, as the
/// StackSet would) for `external_id`.
pub async fn deploy_member_role(sdk: &aws_config::SdkConfig, account: &str, organization_id: &str, external_id: &str) {
    let admin = assumed(sdk, &format!("arn:aws:iam::{account}:role/OrganizationAccountAccessRole")).await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&signed_with(sdk, admin));
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../member-role.yaml")).unwrap();
    let parameter = |key: &str, value: &str| {
        aws_sdk_cloudformation::types::Parameter::builder().parameter_key(key).parameter_value(value).build()
    };
    cloudformation
        .create_stack()
        .stack_name("session-archiver-member")
        .template_body(template)
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
        .parameters(parameter("ArchiveAccountId", ACCOUNT_ID))
        .parameters(parameter("OrganizationId", organization_id))
        .parameters(parameter("ExternalId", external_id))
        .send()
        .await
        .unwrap();
}

/// Credentials of a new archive function role under `path` (the template's RolePath), as Lambda
/// gives a function its execution role's.
pub async fn function_credentials(sdk: &aws_config::SdkConfig, path: &str) -> Credentials {
    let iam = aws_sdk_iam::Client::new(sdk);
    let trust = format!(
        r#"{{"Version": "2012-10-17", "Statement": [{{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT_ID}:root"}}, "Action": "sts:AssumeRole"}}]}}"#
    );
    let role = iam
        .create_role()
        .role_name("session-archiver-function")
        .path(path)
        .assume_role_policy_document(trust)
        .send()
        .await
        .unwrap();
    assumed(sdk, role.role().unwrap().arn()).await
}
