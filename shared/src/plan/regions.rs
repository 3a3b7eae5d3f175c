//! Which regions a plan covers: where each service is offered, from AWS's public
//! global-infrastructure parameters in SSM (`/aws/service/global-infrastructure/services/<name>/regions`),
//! and with `REGIONS=enabled`, which regions each account has enabled, from Account Management
//! `ListRegions` (`ENABLED` and `ENABLED_BY_DEFAULT`). A warm planner reuses what it listed for a
//! while ([`CachedRegions`]): regions are enabled by a person, and offered by a launch.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_account::types::RegionOptStatus;

use crate::error::{Error, Result};
use crate::model::ServiceId;

/// The IAM actions this directory calls (the template grants exactly these).
pub const IAM_ACTIONS: [&str; 2] = ["ssm:GetParametersByPath", "account:ListRegions"];

/// The largest page `GetParametersByPath` returns.
const PARAMETERS_PAGE_SIZE: i32 = 10;
/// The largest page `ListRegions` returns.
const REGIONS_PAGE_SIZE: i32 = 50;

/// The path of the public parameters naming the regions where a service is offered.
pub fn offered_regions_path(service: ServiceId) -> String {
    format!("/aws/service/global-infrastructure/services/{}/regions", service.spec().global_infrastructure_name)
}

/// Where the regions of a plan come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegionSource {
    /// These regions in every account (`REGIONS=self`, the planner's own, or a list).
    Listed(Vec<String>),
    /// Every region each account has enabled (`REGIONS=enabled`).
    Enabled,
}

/// Where services are offered and which regions accounts have enabled (SSM and Account
/// Management, or an in-memory twin in tests).
pub trait RegionDirectory: Send + Sync {
    /// The regions where `service` is offered; an error when none are listed.
    fn offered(&self, service: ServiceId) -> impl Future<Output = Result<BTreeSet<String>>> + Send;

    /// The regions enabled in `account` (`None`: the caller's own, which a management account
    /// must not name), sorted.
    fn enabled(&self, account: Option<&str>) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// SSM's public parameters and Account Management, called from the planner's account (for
/// another account's regions, the organization's management account or its delegated
/// administrator for Account Management).
#[derive(Clone, Debug)]
pub struct AwsRegionDirectory {
    ssm: aws_sdk_ssm::Client,
    account: aws_sdk_account::Client,
}

impl AwsRegionDirectory {
    pub fn new(ssm: aws_sdk_ssm::Client, account: aws_sdk_account::Client) -> Self {
        AwsRegionDirectory { ssm, account }
    }
}

impl RegionDirectory for AwsRegionDirectory {
    async fn offered(&self, service: ServiceId) -> Result<BTreeSet<String>> {
        let path = offered_regions_path(service);
        let mut pages =
            self.ssm.get_parameters_by_path().path(&path).max_results(PARAMETERS_PAGE_SIZE).into_paginator().send();
        let mut regions = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_storage_sdk("SSM GetParametersByPath", path.clone(), e))?;
            regions.extend(page.parameters().iter().filter_map(|p| p.value().map(str::to_owned)));
        }
        if regions.is_empty() {
            return Err(Error::Storage {
                operation: "SSM GetParametersByPath",
                resource: path,
                code: "NoRegionListed".into(),
                message: format!("AWS's public parameters list no region where {service} is offered"),
                status: None,
                retryable: false,
            });
        }
        Ok(regions)
    }

    async fn enabled(&self, account: Option<&str>) -> Result<Vec<String>> {
        let enabled = [RegionOptStatus::Enabled, RegionOptStatus::EnabledByDefault];
        let request = self.account.list_regions().set_account_id(account.map(str::to_owned));
        let mut pages = request
            .set_region_opt_status_contains(Some(enabled.to_vec()))
            .max_results(REGIONS_PAGE_SIZE)
            .into_paginator()
            .send();
        let mut regions = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let resource = account.map_or_else(|| "the planner's account".to_owned(), |id| format!("account {id}"));
                Error::from_storage_sdk("Account ListRegions", resource, e)
            })?;
            let listed = page.regions().iter().filter(|r| r.region_opt_status().is_some_and(|s| enabled.contains(s)));
            regions.extend(listed.filter_map(|r| r.region_name().map(str::to_owned)));
        }
        Ok(regions.into_iter().collect())
    }
}

/// A [`RegionDirectory`] whose answers a warm planner reuses for `ttl`: the five services' plans
/// of one schedule list each account's regions once, not five times, and not at every schedule.
pub struct CachedRegions<D> {
    inner: D,
    ttl: Duration,
    offered: Kept<ServiceId, BTreeSet<String>>,
    /// By account; `None` for the planner's own.
    enabled: Kept<Option<String>, Vec<String>>,
}

/// Answers kept with the moment they were listed.
type Kept<K, V> = Mutex<BTreeMap<K, (Instant, V)>>;

impl<D: RegionDirectory> CachedRegions<D> {
    /// `ttl` zero lists at every plan.
    pub fn new(inner: D, ttl: Duration) -> Self {
        CachedRegions { inner, ttl, offered: Mutex::default(), enabled: Mutex::default() }
    }

    /// The directory it asks when what it keeps is stale.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    fn fresh<K: Ord, V: Clone>(&self, cache: &Kept<K, V>, key: &K) -> Option<V> {
        let cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(key).filter(|(listed, _)| listed.elapsed() < self.ttl).map(|(_, value)| value.clone())
    }

    fn keep<K: Ord, V>(cache: &Kept<K, V>, key: K, value: V) {
        cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (Instant::now(), value));
    }
}

impl<D: RegionDirectory> RegionDirectory for CachedRegions<D> {
    async fn offered(&self, service: ServiceId) -> Result<BTreeSet<String>> {
        if let Some(regions) = self.fresh(&self.offered, &service) {
            return Ok(regions);
        }
        let regions = self.inner.offered(service).await?;
        Self::keep(&self.offered, service, regions.clone());
        Ok(regions)
    }

    async fn enabled(&self, account: Option<&str>) -> Result<Vec<String>> {
        let key = account.map(str::to_owned);
        if let Some(regions) = self.fresh(&self.enabled, &key) {
            return Ok(regions);
        }
        let regions = self.inner.enabled(account).await?;
        Self::keep(&self.enabled, key, regions.clone());
        Ok(regions)
    }
}
