#!/usr/bin/env python3
"""AWS stand-ins on loopback for the identity and TLS tests.

Every server binds 127.0.0.1 on a free port, prints exactly
"READY port=<port>" on stdout once listening, logs one line per request on
stdout, and exits by itself after --lifetime seconds (default 600).

  moto --out FILE
      moto (DynamoDB, IAM, STS) with IAM-like access control ON: every
      DynamoDB call must carry a valid SigV4 signature of a known access key
      (moto recomputes it with botocore) and the caller must be allowed by
      its policy. Before auth is switched on, sets up (all written to FILE as
      JSON): IAM user "writer" with an access key and a dynamodb:* policy;
      role "writer-role" trusting a web identity provider with a dynamodb:*
      policy; table "events" (pk: S); and one set of temporary credentials
      for that role from AssumeRoleWithWebIdentity (for the container and
      IMDS stand-ins).
      AssumeRoleWithWebIdentity is unsigned in AWS; moto in IAM mode demands a
      signature on it too (and fails with HTTP 500), so unsigned requests for
      that one action are let through unauthenticated, as real STS does.
      moto does not validate the web identity token itself. Asked with
      "Accept: application/json", STS answers JSON, as real STS does:
      {"AssumeRoleWithWebIdentityResponse":{"AssumeRoleWithWebIdentityResult":
      {"Credentials":{..., "Expiration": <epoch seconds, a number>}}}}, and
      errors as {"Error":{"Code","Message","Type"},"RequestId"}.

  scan --endpoint URL --creds FILE --table T
      Scans T with the IAM user's keys (signed and verified); prints one item
      per line as JSON.

  container --creds FILE --auth-token TOKEN
      ECS/EKS container credentials endpoint: GET /creds answers the
      temporary credentials as {AccessKeyId, SecretAccessKey, Token,
      Expiration} when the Authorization header equals TOKEN, else 401.

  imds --creds FILE [--role NAME]
      IMDSv2: PUT /latest/api/token (needs X-aws-ec2-metadata-token-ttl-seconds)
      returns a session token; GET /latest/meta-data/iam/security-credentials/
      and .../<role> need X-aws-ec2-metadata-token, else 401.

  tls --cert PEM --key PEM
      HTTPS server answering 200 "ok" to every GET/POST.
"""

import argparse
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer


def log(line):
    print(line, flush=True)


def stop_after(seconds):
    t = threading.Timer(seconds, lambda: os._exit(0))
    t.daemon = True
    t.start()


class QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


def serve(server, lifetime):
    stop_after(lifetime)
    log("READY port=%d" % server.server_address[1])
    server.serve_forever()


def sts_json_answer(app, environ, start_response):
    """Runs an STS query-protocol request through moto asking for JSON
    (moto's ContentType=JSON) and rewrites Expiration from moto's ISO 8601
    string to epoch seconds, the number real STS sends."""
    import datetime
    import io
    body = environ["wsgi.input"].read()
    body += b"&ContentType=JSON"
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"] = status
        captured["headers"] = headers
        return lambda data: None

    data = b"".join(app(environ, capture))
    try:
        doc = json.loads(data)
        for response in doc.values():
            if not isinstance(response, dict):
                continue
            for result in response.values():
                creds = result.get("Credentials") if isinstance(result, dict) else None
                if isinstance(creds, dict) and isinstance(creds.get("Expiration"), str):
                    when = datetime.datetime.fromisoformat(creds["Expiration"].replace("Z", "+00:00"))
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=datetime.timezone.utc)
                    creds["Expiration"] = when.timestamp()
        data = json.dumps(doc).encode()
    except ValueError:
        pass  # not JSON: pass moto's answer through unchanged
    headers = [(k, v) for k, v in captured["headers"]
               if k.lower() not in ("content-length", "content-type")]
    headers += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(captured["status"], headers)
    return [data]


def cmd_moto(args):
    from werkzeug.serving import make_server
    from moto import settings
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)
    auth_on = [False]

    def wrapper(environ, start_response):
        # Single-threaded server: switching the setting per request is safe.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        import io
        environ["wsgi.input"] = io.BytesIO(body)
        unsigned_web_identity = ("HTTP_AUTHORIZATION" not in environ and
                                 b"Action=AssumeRoleWithWebIdentity" in body)
        settings.INITIAL_NO_AUTH_ACTION_COUNT = (
            0 if auth_on[0] and not unsigned_web_identity else float("inf"))
        wants_json = "application/json" in environ.get("HTTP_ACCEPT", "")
        log("REQUEST %s %s target=%s auth=%s%s" % (
            environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
            environ.get("HTTP_X_AMZ_TARGET", "-"),
            "on" if settings.INITIAL_NO_AUTH_ACTION_COUNT == 0 else "off",
            " accept=json" if unsigned_web_identity and wants_json else ""))
        if unsigned_web_identity and wants_json:
            return sts_json_answer(app, environ, start_response)
        return app(environ, start_response)

    server = make_server("127.0.0.1", 0, wrapper, threaded=False)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d" % port

    import boto3
    kw = dict(region_name="us-east-1", endpoint_url=endpoint,
              aws_access_key_id="setup", aws_secret_access_key="setup")
    iam = boto3.client("iam", **kw)
    allow = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*"}]})
    iam.create_user(UserName="writer")
    key = iam.create_access_key(UserName="writer")["AccessKey"]
    iam.put_user_policy(UserName="writer", PolicyName="ddb", PolicyDocument=allow)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.test"},
        "Action": "sts:AssumeRoleWithWebIdentity"}]})
    role = iam.create_role(RoleName="writer-role", AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(RoleName="writer-role", PolicyName="ddb", PolicyDocument=allow)
    ddb = boto3.client("dynamodb", **kw)
    ddb.create_table(TableName="events",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    sts = boto3.client("sts", **kw)
    temp = sts.assume_role_with_web_identity(
        RoleArn=role["Arn"], RoleSessionName="standin", WebIdentityToken="setup-jwt")["Credentials"]
    out = {
        "endpoint": endpoint,
        "access_key_id": key["AccessKeyId"],
        "secret_access_key": key["SecretAccessKey"],
        "role_arn": role["Arn"],
        "temporary": {
            "AccessKeyId": temp["AccessKeyId"],
            "SecretAccessKey": temp["SecretAccessKey"],
            "Token": temp["SessionToken"],
            "Expiration": temp["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f)
    os.rename(args.out + ".tmp", args.out)
    auth_on[0] = True
    stop_after(args.lifetime)
    log("READY port=%d" % port)
    while True:
        time.sleep(3600)


def cmd_scan(args):
    import boto3
    creds = json.load(open(args.creds))
    ddb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=args.endpoint,
                       aws_access_key_id=creds["access_key_id"],
                       aws_secret_access_key=creds["secret_access_key"])
    for item in ddb.scan(TableName=args.table)["Items"]:
        print(json.dumps(item, sort_keys=True))


def cmd_container(args):
    creds = json.load(open(args.creds))["temporary"]

    class Handler(QuietHandler):
        def do_GET(self):
            ok = self.headers.get("Authorization") == args.auth_token
            log("REQUEST GET %s authorization=%s" % (self.path, "ok" if ok else "bad"))
            if self.path != "/creds":
                return self.send_body(404, '{"code":"NotFound","message":"no such path"}')
            if not ok:
                return self.send_body(401, '{"code":"AccessDenied","message":"bad token"}')
            self.send_body(200, json.dumps(creds))

    serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), args.lifetime)


def cmd_imds(args):
    creds = dict(json.load(open(args.creds))["temporary"])
    creds.update({"Code": "Success", "Type": "AWS-HMAC",
                  "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    tokens = set()
    prefix = "/latest/meta-data/iam/security-credentials/"

    class Handler(QuietHandler):
        def do_PUT(self):
            self.drain()
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            log("REQUEST PUT %s ttl=%s" % (self.path, ttl))
            if self.path != "/latest/api/token" or not ttl:
                return self.send_body(400, "", "text/plain")
            token = secrets.token_urlsafe(24)
            tokens.add(token)
            self.send_body(200, token, "text/plain")

        def do_GET(self):
            ok = self.headers.get("X-aws-ec2-metadata-token") in tokens
            log("REQUEST GET %s token=%s" % (self.path, "ok" if ok else "missing"))
            if not ok:
                return self.send_body(401, "", "text/plain")
            if self.path == prefix:
                return self.send_body(200, args.role, "text/plain")
            if self.path == prefix + args.role:
                return self.send_body(200, json.dumps(creds))
            self.send_body(404, "", "text/plain")

    serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler), args.lifetime)


def cmd_tls(args):
    class Handler(QuietHandler):
        def do_GET(self):
            log("REQUEST GET %s" % self.path)
            self.send_body(200, "ok", "text/plain")

        def do_POST(self):
            self.drain()
            log("REQUEST POST %s" % self.path)
            self.send_body(200, "ok", "text/plain")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    serve(server, args.lifetime)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("moto")
    m.add_argument("--out", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--creds", required=True)
    s.add_argument("--table", required=True)
    c = sub.add_parser("container")
    c.add_argument("--creds", required=True)
    c.add_argument("--auth-token", required=True)
    i = sub.add_parser("imds")
    i.add_argument("--creds", required=True)
    i.add_argument("--role", default="writer-role")
    t = sub.add_parser("tls")
    t.add_argument("--cert", required=True)
    t.add_argument("--key", required=True)
    for sp in (m, c, i, t):
        sp.add_argument("--lifetime", type=float, default=600)
    args = p.parse_args()
    {"moto": cmd_moto, "scan": cmd_scan, "container": cmd_container, "imds": cmd_imds,
     "tls": cmd_tls}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
