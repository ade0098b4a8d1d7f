package cli_test

import (
	"fmt"
	"os"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/tools/cli"
)

// A record prints as one line: shard, sequence number, arrival time, partition key, data;
// data that is not printable text prints as base64 after a marker.
func ExampleAppendRecordLine() {
	r := client.Record{Key: []byte("user1"), Data: []byte("hello"), Shard: 0, Position: 1,
		Arrival: time.Date(2024, 5, 4, 20, 21, 32, 123e6, time.UTC)}
	os.Stdout.Write(cli.AppendRecordLine(nil, &r))
	r.Data = []byte{0, 1, 2, 0xff}
	os.Stdout.Write(cli.AppendRecordLine(nil, &r))
	fmt.Println(string(cli.AppendData(nil, []byte("line one\nline two"))))
	// Output:
	// shardId-000000000000 10000000000000000000000000000000000000000000000000000001 2024-05-04T20:21:32.123Z user1 hello
	// shardId-000000000000 10000000000000000000000000000000000000000000000000000001 2024-05-04T20:21:32.123Z user1 base64:AAEC/w==
	// base64:bGluZSBvbmUKbGluZSB0d28=
}
