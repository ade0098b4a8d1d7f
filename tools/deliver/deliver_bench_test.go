package deliver

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// BenchmarkBuffer measures the buffering and compression path of one shard: a batch of
// records of JSON-like text (half of each record random letters) added to the open object
// with a newline delimiter, then the object's key made and its body compressed, in each
// format, for records of 100 B and 1 KiB in 1 MiB objects. Bytes are record bytes.
func BenchmarkBuffer(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for c := Uncompressed; c <= HadoopSnappy; c++ {
			b.Run(fmt.Sprintf("%s/%dB", c, size), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				n := (1 << 20) / size
				recs := make([]client.Record, n)
				for i := range recs {
					recs[i] = client.Record{Data: benchRecord(rng, i, size), Position: uint64(i), Arrival: time.Unix(1.7e9, 0)}
				}
				cfg := Config{Name: "bench", Version: 1, Compression: c, Extension: c.Extension(), Delimiter: []byte("\n"), Location: time.UTC}
				var err error
				if cfg.Prefix, cfg.ErrorPrefix, err = parsePrefixes(nil, nil); err != nil {
					b.Fatal(err)
				}
				d := &Delivery{cfg: cfg}
				sb := &shardBuffer{z: compressor{c: c}}
				b.SetBytes(int64(n * size))
				b.ReportAllocs()
				stored := 0
				for b.Loop() {
					for i := range recs {
						d.add(sb, &recs[i])
					}
					_, name := d.objectKey(sb, &sb.data, "data", &cfg.Prefix)
					body, err := sb.z.compress(sb.data.b, name, sb.data.oldest)
					if err != nil {
						b.Fatal(err)
					}
					stored = len(body)
					sb.data = part{b: sb.data.b[:0]}
				}
				b.ReportMetric(float64(stored)/float64(n*size), "ratio")
			})
		}
	}
}

// benchRecord returns record i of size bytes of JSON-like text, half of it random letters,
// which gzip takes to about half its size.
func benchRecord(rng *rand.Rand, i, size int) []byte {
	data := fmt.Appendf(nil, `{"seq":%d,"user":"u%d","payload":"`, i, i%97)
	for len(data) < size-2 {
		if len(data)%2 == 0 {
			data = append(data, 'a'+byte(rng.IntN(26)))
		} else {
			data = append(data, "event"[len(data)%5])
		}
	}
	return append(data, '"', '}')
}
