//! The organization's accounts from AWS Organizations: `ListAccounts` for the whole
//! organization, or `ListAccountsForParent` under each configured root or OU, walking nested OUs
//! with `ListOrganizationalUnitsForParent`. Every page is read, at the largest page size.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Account, AccountDirectory};
use crate::error::{Error, Result};

/// The IAM actions this directory calls (the template grants exactly these).
pub const IAM_ACTIONS: [&str; 3] = [
    "organizations:ListAccounts",
    "organizations:ListAccountsForParent",
    "organizations:ListOrganizationalUnitsForParent",
];

/// The largest page `ListAccounts`, `ListAccountsForParent` and
/// `ListOrganizationalUnitsForParent` return.
const PAGE_SIZE: i32 = 20;

/// AWS Organizations, called from the management account or a delegated administrator.
#[derive(Clone, Debug)]
pub struct OrganizationsDirectory {
    client: aws_sdk_organizations::Client,
}

impl OrganizationsDirectory {
    pub fn new(client: aws_sdk_organizations::Client) -> Self {
        OrganizationsDirectory { client }
    }

    async fn whole_organization(&self) -> Result<Vec<Account>> {
        let mut pages = self.client.list_accounts().max_results(PAGE_SIZE).into_paginator().send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| Error::from_storage_sdk("Organizations ListAccounts", "the organization", e))?;
            accounts.extend(page.accounts().iter().filter_map(account));
        }
        Ok(accounts)
    }

    async fn accounts_under(&self, parent: &str) -> Result<Vec<Account>> {
        let mut pages =
            self.client.list_accounts_for_parent().parent_id(parent).max_results(PAGE_SIZE).into_paginator().send();
        let mut accounts = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                Error::from_storage_sdk("Organizations ListAccountsForParent", format!("parent {parent}"), e)
            })?;
            accounts.extend(page.accounts().iter().filter_map(account));
        }
        Ok(accounts)
    }

    async fn units_under(&self, parent: &str) -> Result<Vec<String>> {
        let mut pages = self
            .client
            .list_organizational_units_for_parent()
            .parent_id(parent)
            .max_results(PAGE_SIZE)
            .into_paginator()
            .send();
        let mut units = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                Error::from_storage_sdk("Organizations ListOrganizationalUnitsForParent", format!("parent {parent}"), e)
            })?;
            units.extend(page.organizational_units().iter().filter_map(|unit| unit.id().map(str::to_owned)));
        }
        Ok(units)
    }
}

/// An account of a page: its id and its state (`State`, or the older `Status` where a response
/// has no `State`).
fn account(listed: &aws_sdk_organizations::types::Account) -> Option<Account> {
    let state = match (listed.state(), listed.status()) {
        (Some(state), _) => state.as_str().to_owned(),
        (None, Some(status)) => status.as_str().to_owned(),
        (None, None) => "UNKNOWN".to_owned(),
    };
    Some(Account { id: listed.id()?.to_owned(), state })
}

impl AccountDirectory for OrganizationsDirectory {
    async fn accounts(&self, parents: &[String]) -> Result<Vec<Account>> {
        if parents.is_empty() {
            return self.whole_organization().await;
        }
        let mut found = BTreeMap::new();
        let mut walked = BTreeSet::new();
        let mut to_walk: VecDeque<String> = parents.iter().cloned().collect();
        while let Some(parent) = to_walk.pop_front() {
            // A configured OU under another configured one is walked once.
            if !walked.insert(parent.clone()) {
                continue;
            }
            for account in self.accounts_under(&parent).await? {
                found.insert(account.id.clone(), account);
            }
            to_walk.extend(self.units_under(&parent).await?);
        }
        Ok(found.into_values().collect())
    }
}
