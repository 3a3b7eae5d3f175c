//! Every source's skeleton, written once: [`Api`] holds a session API's SDK client, its options
//! and the counter of its throttled calls, and is the [`SessionSource`] of any [`SessionApi`]: the
//! two calls each API makes its own way (a page of its parents, a page of its sessions).

use std::future::Future;

use aws_config::SdkConfig;

use super::{discover_all, Discovery, Listing, RawPage, SessionSource, SourceOptions};
use crate::aws::ThrottleCounter;
use crate::error::{CallSite, Error, Result};
use crate::model::ServiceId;

/// A session API's SDK client on the shared SDK configuration, with what every source adds: the
/// classifier that retries each service's throttling (Chime SDK Voice's
/// `ThrottledClientException`, HTTP 429, is a code the SDK's default classifiers do not know),
/// and the counter of the calls throttled.
macro_rules! session_client {
    ($sdk_crate:ident, $sdk:expr, $throttles:expr) => {
        $sdk_crate::Client::from_conf(
            $sdk_crate::config::Builder::from($sdk)
                .retry_classifier(crate::aws::ThrottleStatusClassifier)
                .interceptor($throttles.clone())
                .build(),
        )
    };
}
pub(crate) use session_client;

/// One call of a session API's operation: where it is made (for its errors), the page size asked
/// for, and the token of the page.
pub struct Call {
    pub site: CallSite,
    pub page_size: Option<i32>,
    pub token: Option<String>,
}

/// A page of parents: their ids, and the next token.
pub type Parents = (Vec<String>, Option<String>);

/// The calls of one session API, on its SDK client.
pub trait SessionApi: Send + Sync + Sized {
    /// The API, in the registry.
    const SERVICE: ServiceId;

    /// Its SDK client (built with `session_client!`).
    fn client(sdk: &SdkConfig, throttles: &ThrottleCounter) -> Self;

    /// One page of its parent discovery operation. Only the APIs the registry gives parents are
    /// asked.
    fn parent_page(&self, call: Call) -> impl Future<Output = Result<Parents>> + Send {
        async move { Err(Error::Mapping(format!("{}: {} has no parents to discover", call.site, Self::SERVICE))) }
    }

    /// The listings of a run: one per parent (those named in the options, else every one the
    /// parent operation lists, every page) for an API with parents, else the account.
    fn listings(api: &Api<Self>) -> impl Future<Output = Result<Discovery>> + Send {
        async move {
            let Some(operation) = Self::SERVICE.parent_operation() else {
                return Ok(Discovery { listings: vec![Listing::account()], api_calls: 0 });
            };
            if let Some(given) = api.options.explicit_parents() {
                return Ok(given);
            }
            let site = CallSite { service: Self::SERVICE.as_str(), operation, parent: None };
            let size = Self::SERVICE.max_parent_page_size();
            let call = |token| Call { site: site.clone(), page_size: size, token };
            let (ids, api_calls) = discover_all(site.clone(), |token| api.client.parent_page(call(token))).await?;
            Ok(Discovery { listings: ids.into_iter().map(Listing::parent).collect(), api_calls })
        }
    }

    /// One page of its list operation for `listing`, with the options' filters.
    fn list_page(
        &self,
        options: &SourceOptions,
        listing: &Listing,
        call: Call,
    ) -> impl Future<Output = Result<RawPage>> + Send;
}

/// A session API's source: its client, its options (validated) and its throttled calls.
pub struct Api<C> {
    pub(crate) client: C,
    pub(crate) options: SourceOptions,
    throttles: ThrottleCounter,
}

impl<C: SessionApi> Api<C> {
    pub fn new(sdk: &SdkConfig, options: SourceOptions) -> Self {
        let throttles = ThrottleCounter::default();
        Api { client: C::client(sdk, &throttles), options, throttles }
    }
}

impl<C: SessionApi> SessionSource for Api<C> {
    fn service(&self) -> ServiceId {
        C::SERVICE
    }

    fn options(&self) -> &SourceOptions {
        &self.options
    }

    fn throttles(&self) -> u64 {
        self.throttles.count()
    }

    async fn listings(&self) -> Result<Discovery> {
        C::listings(self).await
    }

    async fn list_page(&self, listing: &Listing, next_token: Option<String>) -> Result<RawPage> {
        let call = Call {
            site: self.list_site(listing),
            page_size: self.options.page_size_for(C::SERVICE),
            token: next_token,
        };
        self.client.list_page(&self.options, listing, call).await
    }
}
