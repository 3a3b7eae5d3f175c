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
Everything else moto answers is unchanged.
"""

import fnmatch
import json
import logging
import sys
from urllib.parse import unquote

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


if __name__ == "__main__":
    from moto.server import main

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    main(sys.argv[1:])
