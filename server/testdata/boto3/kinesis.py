"""Drives a sluice server that verifies SigV4 with boto3 (botocore's signer).

TestBoto3Signed (server/boto3_e2e_test.go) runs it with ENDPOINT, the stream to use in STREAM,
and three users' keys: ADMIN_* (allowed every Kinesis action), READER_* (allowed to read, not
to put). It prints one JSON object: what each call returned, or the AWS error code it raised.
"""

import json
import os
import urllib.error
import urllib.request

import boto3
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["ENDPOINT"]
STREAM = os.environ["STREAM"]
REGION = "us-east-1"


def client(key, secret):
    return boto3.client("kinesis", endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": 1}))


def code(call):
    """Runs call and returns the AWS error code it raised, or "" when it succeeded."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"]
    return ""


class JSONQueryAuth(SigV4QueryAuth):
    """botocore's query-string signer for a JSON protocol: SigV4QueryAuth moves a body's
    parameters into the query, as the query protocols want; a JSON body stays the body, and
    its SHA-256 is the canonical request's payload hash."""

    def _modify_request_before_signing(self, request):
        data, request.data = request.data, b""
        super()._modify_request_before_signing(request)
        request.data = data


def presigned(key, secret, target, body):
    """Sends a request signed in its query string by botocore's signer, the reference, and
    returns its HTTP status and decoded JSON answer."""
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Kinesis_20131202." + target})
    JSONQueryAuth(Credentials(key, secret), "kinesis", REGION, expires=300).add_auth(req)
    prepared = req.prepare()
    body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
    r = urllib.request.Request(prepared.url, data=body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def main():
    out = {}
    admin = client(os.environ["ADMIN_KEY"], os.environ["ADMIN_SECRET"])
    reader = client(os.environ["READER_KEY"], os.environ["READER_SECRET"])

    admin.create_stream(StreamName=STREAM, ShardCount=1)
    put = admin.put_record(StreamName=STREAM, PartitionKey="k", Data=b"boto3 record")
    out["putShard"] = put["ShardId"]
    it = reader.get_shard_iterator(StreamName=STREAM, ShardId=put["ShardId"],
                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out["read"] = [r["Data"].decode() for r in reader.get_records(ShardIterator=it)["Records"]]

    out["readerPut"] = code(lambda: reader.put_record(StreamName=STREAM, PartitionKey="k", Data=b"denied"))
    out["readerDelete"] = code(lambda: reader.delete_stream(StreamName=STREAM))
    wrong = client(os.environ["ADMIN_KEY"], "not-the-secret")
    out["wrongSecretPut"] = code(lambda: wrong.put_record(StreamName=STREAM, PartitionKey="k", Data=b"forged"))
    out["wrongSecretList"] = code(lambda: wrong.list_streams())

    status, answer = presigned(os.environ["ADMIN_KEY"], os.environ["ADMIN_SECRET"], "PutRecord",
                               {"StreamName": STREAM, "PartitionKey": "k", "Data": "cHJlc2lnbmVk"})
    out["presignedPut"] = [status, answer.get("ShardId", answer.get("__type"))]
    status, answer = presigned(os.environ["ADMIN_KEY"], "not-the-secret", "PutRecord",
                               {"StreamName": STREAM, "PartitionKey": "k", "Data": "Zm9yZ2Vk"})
    out["presignedWrongSecret"] = [status, answer.get("__type")]
    status, answer = presigned(os.environ["READER_KEY"], os.environ["READER_SECRET"], "DeleteStream",
                               {"StreamName": STREAM})
    out["presignedReaderDelete"] = [status, answer.get("__type")]

    it = admin.get_shard_iterator(StreamName=STREAM, ShardId=put["ShardId"],
                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    out["after"] = [r["Data"].decode() for r in admin.get_records(ShardIterator=it)["Records"]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
