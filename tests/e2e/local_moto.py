"""The pinned moto server the tests and the demo run, with AssumeRole checking what STS checks.

moto's STS hands out credentials for any role ARN, whether the role exists or trusts the caller.
AWS's STS refuses with AccessDenied unless:

* the role exists in the account of its ARN;
* an Allow statement of its trust policy names `sts:AssumeRole`, a principal that is the caller
  (its account's root, its account id, its ARN, or `*`), and conditions that hold for the call.

This module adds exactly that check in front of moto's own AssumeRole. The conditions it reads are
the ones a member role uses: `StringEquals` / `StringLike` / `ArnEquals` / `ArnLike` on
`sts:ExternalId`, `aws:PrincipalOrgID` (the caller's organization, from moto's Organizations),
`aws:PrincipalArn` (the caller's role ARN, path included, for an assumed-role key) and
`aws:PrincipalAccount`. A condition on any other key or operator denies: the check fails closed.
It also serves what moto does not of Account Management: `ListRegions`, `GetRegionOptStatus`,
`EnableRegion` and `DisableRegion`, with each account's region opt-in state. The 17 regions AWS
enabled before opt-in regions existed are `ENABLED_BY_DEFAULT`; every later one of the partition
starts `DISABLED` (AWS passes through `ENABLING` for minutes to hours; here it is `ENABLED` at
once). Another account's regions are answered only to its organization's management account, and
the management account must not name itself, as AWS requires.

Everything else moto answers is unchanged.
"""

import fnmatch
import json
import logging
import sys
from urllib.parse import unquote

from botocore.session import Session
from moto.account import responses as account_responses
from moto.account import urls as account_urls
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult
from moto.iam.models import iam_backends
from moto.organizations.models import organizations_backends
from moto.sts import responses as sts_responses
from moto.sts.exceptions import STSClientError
from moto.sts.models import sts_backends

PARTITION = "aws"


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def organization_of(account_id):
    """The id of the organization the account is in (as member or management account), or None."""
    master = organizations_backends.master_accounts.get(account_id, (account_id, PARTITION))[0]
    backend = organizations_backends[master][PARTITION]
    return backend.org.id if backend.org else None


def caller_arn(account_id, access_key_id):
    """The caller's principal ARN: the role of an assumed-role key, else the account's root."""
    assumed = sts_backends[account_id][PARTITION].get_assumed_role_from_access_key(access_key_id)
    return assumed.role_arn if assumed else f"arn:{PARTITION}:iam::{account_id}:root"


CONDITIONS = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "ArnEquals": lambda actual, wanted: actual == wanted,
    "StringLike": lambda actual, wanted: fnmatch.fnmatchcase(actual, wanted),
    "ArnLike": lambda actual, wanted: fnmatch.fnmatchcase(actual, wanted),
}


def conditions_hold(conditions, context):
    for operator, pairs in conditions.items():
        test = CONDITIONS.get(operator)
        if test is None:
            return False
        for key, wanted in pairs.items():
            actual = context.get(key)
            if actual is None or not any(test(actual, w) for w in as_list(wanted)):
                return False
    return True


def trusts(policy, caller_account, principal, context):
    for statement in as_list(policy.get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        if not any(a in ("sts:AssumeRole", "sts:*", "*") for a in as_list(statement.get("Action"))):
            continue
        named = statement.get("Principal")
        names = ["*"] if named == "*" else as_list((named or {}).get("AWS"))
        accepted = {"*", caller_account, f"arn:{PARTITION}:iam::{caller_account}:root", principal}
        if not any(n in accepted for n in names):
            continue
        if conditions_hold(statement.get("Condition", {}), context):
            return True
    return False


def check_assume_role(response):
    role_arn = response._get_param("RoleArn") or ""
    caller_account = response.current_account
    principal = caller_arn(caller_account, response.access_key)
    denied = STSClientError(
        "AccessDenied", f"User: {principal} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    )
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[2] != "iam":
        raise denied
    try:
        role = iam_backends[parts[4]][PARTITION].get_role_by_arn(role_arn)
    except Exception:
        raise denied
    document = role.assume_role_policy_document
    policy = json.loads(unquote(document)) if isinstance(document, str) else document
    context = {
        "sts:ExternalId": response._get_param("ExternalId"),
        "aws:PrincipalOrgID": organization_of(caller_account),
        "aws:PrincipalArn": principal,
        "aws:PrincipalAccount": caller_account,
    }
    if not trusts(policy, caller_account, principal, context):
        raise denied


original_assume_role = sts_responses.TokenResponse.assume_role


def assume_role(self):
    check_assume_role(self)
    return original_assume_role(self)


sts_responses.TokenResponse.assume_role = assume_role


ENABLED_BY_DEFAULT = {
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-south-1", "ap-southeast-1", "ap-southeast-2",
    "ca-central-1", "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1",
    "us-east-1", "us-east-2", "us-west-1", "us-west-2",
}
PARTITION_REGIONS = sorted(set(Session().get_available_regions("ec2")) | ENABLED_BY_DEFAULT)
OPTED_IN = {}  # (account id, region) -> ENABLED or DISABLED, for opt-in regions
REGION_STATES = {"ENABLED", "ENABLING", "DISABLING", "DISABLED", "ENABLED_BY_DEFAULT"}


def account_error(code, message):
    error = JsonRESTError(code, message)
    error.code = 403 if code == "AccessDeniedException" else 400
    return error


def master_of(account_id):
    return organizations_backends.master_accounts.get(account_id, (None, PARTITION))[0]


def target_account(response):
    """The account a call is about: the caller's, or the AccountId its management account names."""
    caller, named = response.current_account, response._get_param("AccountId")
    if not named:
        return caller
    if named == caller:
        raise account_error(
            "ValidationException",
            "The management account can't specify its own AccountId; call without the AccountId parameter.",
        )
    if master_of(named) != caller:
        raise account_error(
            "AccessDeniedException",
            f"Account {caller} is not the management account of an organization that account {named} is a member of.",
        )
    return named


def region_state(account_id, region):
    if region in ENABLED_BY_DEFAULT:
        return "ENABLED_BY_DEFAULT"
    return OPTED_IN.get((account_id, region), "DISABLED")


def known_region(response):
    region = response._get_param("RegionName")
    if region not in PARTITION_REGIONS:
        raise account_error("ValidationException", f"{region!r} is not a region of the partition.")
    return region


def list_regions(self):
    account_id = target_account(self)
    wanted = self._get_param("RegionOptStatusContains") or []
    if any(state not in REGION_STATES for state in wanted):
        raise account_error("ValidationException", f"RegionOptStatusContains: {wanted} is not a list of opt-in states.")
    size = self._get_param("MaxResults") or 20
    if not 1 <= int(size) <= 50:
        raise account_error("ValidationException", "MaxResults must be between 1 and 50.")
    start = int(self._get_param("NextToken") or 0)
    regions = [
        {"RegionName": r, "RegionOptStatus": region_state(account_id, r)}
        for r in PARTITION_REGIONS
        if not wanted or region_state(account_id, r) in wanted
    ]
    page = {"Regions": regions[start : start + int(size)]}
    if start + int(size) < len(regions):
        page["NextToken"] = str(start + int(size))
    return ActionResult(result=page)


def get_region_opt_status(self):
    account_id, region = target_account(self), known_region(self)
    return ActionResult(result={"RegionName": region, "RegionOptStatus": region_state(account_id, region)})


def set_region(state):
    def handler(self):
        account_id, region = target_account(self), known_region(self)
        if region in ENABLED_BY_DEFAULT:
            raise account_error("ValidationException", f"{region} is enabled by default and cannot be changed.")
        OPTED_IN[(account_id, region)] = state
        return EmptyResult()

    return handler


account_responses.AccountResponse.list_regions = list_regions
account_responses.AccountResponse.get_region_opt_status = get_region_opt_status
account_responses.AccountResponse.enable_region = set_region("ENABLED")
account_responses.AccountResponse.disable_region = set_region("DISABLED")
for operation in ("listRegions", "getRegionOptStatus", "enableRegion", "disableRegion"):
    account_urls.url_paths["{0}/" + operation + "$"] = account_responses.AccountResponse.dispatch


if __name__ == "__main__":
    from moto.server import main

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    main(sys.argv[1:])
