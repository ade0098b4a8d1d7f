import json, datetime, urllib.request, urllib.error, time
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
port = open('/tmp/sec12/port').read().strip()
url = 'http://127.0.0.1:%s/' % port
def send(req, label):
    r = urllib.request.Request(req.url, data=req.body if req.body else None, headers=dict(req.headers), method=req.method)
    try:
        resp = urllib.request.urlopen(r); print(label, resp.status, resp.read()[:200])
    except urllib.error.HTTPError as e:
        print(label, e.code, e.read()[:250])
def mk(target, body, headers=None, u=url):
    h = {'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': 'Kinesis_20131202.' + target}
    if headers: h.update(headers)
    return AWSRequest(method='POST', url=u, data=json.dumps(body).encode(), headers=h)
c = Credentials('AKIDADMIN', 'adminsecret')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-west-2').add_auth(r); send(r, 'region')
r = mk('ListStreams', {}); SigV4Auth(c, 'dynamodb', 'us-east-1').add_auth(r); send(r, 'service')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); r.data=b'{"Limit":1}'; send(r, 'body-tampered')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); r.headers['X-Amz-Target']='Kinesis_20131202.DeleteStream'; send(r, 'target-tampered')
r = mk('ListStreams', {}); SigV4Auth(Credentials('AKIDADMIN','adminsecret','tok'), 'kinesis', 'us-east-1').add_auth(r); send(r, 'session-token')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); a=r.headers['Authorization']; del r.headers['X-Amz-Date']; send(r, 'no-date')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); a=r.headers['Authorization']; r.headers.replace_header('Authorization', a.replace('Signature=','Signature=').replace(a[-64:], a[-64:].upper())); send(r, 'upper-sig')
r = mk('ListStreams', {}); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); a=r.headers['Authorization']; r.headers.replace_header('Authorization', a.replace('SignedHeaders=content-type;host;','SignedHeaders=content-type;')); send(r, 'host-unsigned (sig wrong)')
# host not signed, correctly signed otherwise
class NoHost(SigV4Auth):
    def headers_to_sign(self, request):
        h = super().headers_to_sign(request); del h['host']; return h
r = mk('ListStreams', {}); NoHost(c, 'kinesis', 'us-east-1').add_auth(r); send(r, 'host-not-signed')
class NoTarget(SigV4Auth):
    def headers_to_sign(self, request):
        h = super().headers_to_sign(request); del h['x-amz-target']; return h
r = mk('ListStreams', {}); NoTarget(c, 'kinesis', 'us-east-1').add_auth(r); send(r, 'target-not-signed')
# presigned: expired (X-Amz-Expires=1 and wait)
r = mk('ListStreams', {}); SigV4QueryAuth(c, 'kinesis', 'us-east-1', expires=1).add_auth(r); time.sleep(2.2); send(r, 'presigned-expired')
r = mk('ListStreams', {}); SigV4QueryAuth(c, 'kinesis', 'us-east-1', expires=604801).add_auth(r); send(r, 'presigned-too-long')
# query string with extra params, presigned
r = mk('ListStreams', {}, u=url+'?a=b%20c&z=1&a=a'); SigV4QueryAuth(c, 'kinesis', 'us-east-1', expires=60).add_auth(r); send(r, 'presigned-extra-params')
r = mk('ListStreams', {}, u=url+'?a=b%20c&z=1&a=a'); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); send(r, 'header-extra-params')
r = mk('ListStreams', {}, u=url+'foo/../'); SigV4Auth(c, 'kinesis', 'us-east-1').add_auth(r); send(r, 'dot-path')
# both header and query
r = mk('ListStreams', {}); SigV4QueryAuth(c, 'kinesis', 'us-east-1', expires=60).add_auth(r); r.headers['Authorization']='AWS4-HMAC-SHA256 Credential=AKIDADMIN/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature='+'0'*64; send(r, 'both')
# future date 6 min
