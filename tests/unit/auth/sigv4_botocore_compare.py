#!/usr/bin/env python3
"""Compares our SigV4 signer with botocore's on random requests.

Runs sigv4_botocore_tool (C++; our SignV4) for COUNT random requests, signs
each again with botocore.auth.SigV4Auth (an independent implementation) and
compares the canonical request, the string to sign, the signature and the
Authorization header.

Semantics compared are those of every service but S3 (DynamoDB's): the path
as sent is normalised (dot and empty segments removed) and URI-encoded once
more; the query string is taken as sent (already encoded) and only sorted.
Known, deliberate differences, kept out of the generator:
  * botocore drops the headers User-Agent, Expect and X-Amzn-Trace-Id from
    signing; our signer signs exactly the headers it is given (the DynamoDB
    client never passes those).
  * an empty query parameter ("a=1&&b=2") is "=" for botocore, skipped by us.
  * a Python str.split() also splits on \\x1c-\\x1f and Unicode spaces in
    header values; ours collapses ASCII whitespace only.

Usage: sigv4_botocore_compare.py TOOL [COUNT] [SEED]
Exit codes: 0 all equal, 1 a mismatch, 77 botocore not importable (skipped).
"""

import binascii
import json
import os
import subprocess
import sys


def find_botocore():
    try:
        import botocore  # noqa: F401
        return True
    except ImportError:
        pass
    # The Debian python3-botocore (python3-boto3) when the first python3
    # on PATH lacks it.
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system) \
            and not os.environ.get("SIGV4_COMPARE_REEXEC"):
        ok = subprocess.run([system, "-c", "import botocore"], capture_output=True).returncode == 0
        if ok:
            os.environ["SIGV4_COMPARE_REEXEC"] = "1"
            os.execv(system, [system] + sys.argv)
    return False


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    if not find_botocore():
        print("SKIP: botocore is not importable (install python3-botocore)")
        return 77
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest, HTTPHeaders
    from botocore.credentials import Credentials
    import botocore

    tool = sys.argv[1]
    count = sys.argv[2] if len(sys.argv) > 2 else "2000"
    seed = sys.argv[3] if len(sys.argv) > 3 else "20240501"
    out = subprocess.run([tool, count, seed], capture_output=True, check=True, text=True).stdout
    passed = failed = with_token = 0
    for line in out.splitlines():
        case = json.loads(line)
        url = "https://" + case["host"] + case["path"] + ("?" + case["query"] if case["query"] else "")
        headers = HTTPHeaders()
        for name, value in case["headers"]:
            headers[name] = value  # appends: repeated names are kept
        req = AWSRequest(method=case["method"], url=url, data=binascii.unhexlify(case["body_hex"]))
        req.headers = headers
        req.context["timestamp"] = case["amz_date"]
        creds = Credentials(case["access_key_id"], case["secret_access_key"],
                            case["session_token"] or None)
        auth = SigV4Auth(creds, case["service"], case["region"])
        canonical = auth.canonical_request(req)
        sts = auth.string_to_sign(req, canonical)
        signature = auth.signature(sts, req)
        scope = auth.credential_scope(req)
        signed = auth.signed_headers(auth.headers_to_sign(req))
        authorization = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                         % (case["access_key_id"], scope, signed, signature))
        mismatches = [step for step, ours, theirs in (
            ("canonical request", case["canonical_request"], canonical),
            ("string to sign", case["string_to_sign"], sts),
            ("signature", case["signature"], signature),
            ("authorization", case["authorization"], authorization)) if ours != theirs]
        if case["session_token"]:
            with_token += 1
        if mismatches:
            failed += 1
            if failed <= 5:
                print("MISMATCH (%s) for %s %s" % (", ".join(mismatches), case["method"], url))
                print("--- ours:\n%s\n--- botocore:\n%s\n" % (case["canonical_request"], canonical))
        else:
            passed += 1
    print("botocore %s: %d requests compared (%d with a session token)"
          % (botocore.__version__, passed + failed, with_token))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
