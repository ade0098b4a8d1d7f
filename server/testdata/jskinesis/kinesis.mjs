// The AWS SDK for JavaScript v3 against a sluice server, over HTTP/2 (prior knowledge, h2c):
// server/js_e2e_test.go runs it. It creates a stream, puts records with PutRecords, reads them
// back with GetRecords and with SubscribeToShard (an event stream: HTTP/2 only in this SDK),
// and prints one JSON line with what it saw. With MODE=wrong-secret it makes one call and
// prints the error's name instead.
//
// Environment: ENDPOINT (http://127.0.0.1:PORT), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
// STREAM, RECORDS (how many to put), MODE ("" or "wrong-secret").
import {
  KinesisClient, CreateStreamCommand, PutRecordsCommand, ListShardsCommand,
  GetShardIteratorCommand, GetRecordsCommand, RegisterStreamConsumerCommand,
  SubscribeToShardCommand, ListStreamsCommand,
} from "@aws-sdk/client-kinesis";
import { NodeHttp2Handler } from "@smithy/node-http-handler";

const endpoint = process.env.ENDPOINT;
const stream = process.env.STREAM || "js";
const count = Number(process.env.RECORDS || "10");

const client = new KinesisClient({
  endpoint,
  region: "us-east-1",
  credentials: {
    accessKeyId: process.env.AWS_ACCESS_KEY_ID,
    secretAccessKey: process.env.MODE === "wrong-secret" ? "not-the-secret" : process.env.AWS_SECRET_ACCESS_KEY,
  },
  requestHandler: new NodeHttp2Handler({ requestTimeout: 20000, sessionTimeout: 20000 }),
  maxAttempts: 1,
});

async function main() {
  if (process.env.MODE === "wrong-secret") {
    try {
      await client.send(new ListStreamsCommand({}));
      console.log(JSON.stringify({ error: "" }));
    } catch (e) {
      console.log(JSON.stringify({ error: e.name }));
    }
    return;
  }
  await client.send(new CreateStreamCommand({ StreamName: stream, ShardCount: 1 }));
  const records = [];
  for (let i = 0; i < count; i++) {
    records.push({ PartitionKey: `key-${i}`, Data: new TextEncoder().encode(`js record ${i}`) });
  }
  const put = await client.send(new PutRecordsCommand({ StreamName: stream, Records: records }));

  const shards = await client.send(new ListShardsCommand({ StreamName: stream }));
  const shardId = shards.Shards[0].ShardId;
  const it = await client.send(new GetShardIteratorCommand({
    StreamName: stream, ShardId: shardId, ShardIteratorType: "TRIM_HORIZON",
  }));
  const got = await client.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator, Limit: 1000 }));
  const read = got.Records.map((r) => new TextDecoder().decode(r.Data));

  const arn = `arn:aws:kinesis:us-east-1:${process.env.ACCOUNT}:stream/${stream}`;
  const consumer = await client.send(new RegisterStreamConsumerCommand({ StreamARN: arn, ConsumerName: "js" }));
  const sub = await client.send(new SubscribeToShardCommand({
    ConsumerARN: consumer.Consumer.ConsumerARN, ShardId: shardId,
    StartingPosition: { Type: "TRIM_HORIZON" },
  }));
  const pushed = [];
  for await (const event of sub.EventStream) {
    if (event.SubscribeToShardEvent) {
      for (const r of event.SubscribeToShardEvent.Records) {
        pushed.push(new TextDecoder().decode(r.Data));
      }
      if (pushed.length >= count) {
        break;
      }
    }
  }
  console.log(JSON.stringify({
    failed: put.FailedRecordCount, put: put.Records.length, read, pushed,
  }));
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  console.log(JSON.stringify({ error: e.name || String(e) }));
  process.exit(1);
});
